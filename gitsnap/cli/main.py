"""``git snap``: a thin typer app. Each command parses, calls one api function, renders.

One error funnel (:func:`main`) maps exceptions to exit codes (DESIGN §3):
0 ok, 1 differences / failed check (only where asked), 2 usage, 3 a gitsnap
error (message + ``hint:``), 128 not in a git repository, 130 interrupted.
Heavy modules are imported inside the commands so ``--help`` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

app = typer.Typer(
    name="git snap",
    help="Version ML model checkpoints inside git: tensor-level storage on DVC remotes, reviewable diffs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_state = {"traceback": False}

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _print(text: str) -> None:
    if text:
        sys.stdout.write(text + "\n")


def _json(value: Any) -> None:
    from gitsnap.render import json as render_json

    _print(render_json.dumps(value))


@app.callback()
def _root(
    traceback: Annotated[bool, typer.Option("--traceback", hidden=True)] = False,
    version: Annotated[bool, typer.Option("--version", help="Show the version and exit.")] = False,
) -> None:
    _state["traceback"] = traceback
    if version:
        from gitsnap import __version__

        _print(f"gitsnap {__version__}")
        raise typer.Exit(0)


@app.command()
def init(
    remote: Annotated[Optional[str], typer.Option(help="Add this URL as the default DVC remote.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Set up gitsnap here: dvc init if needed, and optionally a default remote."""
    from gitsnap import api
    from gitsnap.render import text

    result = api.init(remote=remote)
    _json(result) if json_ else _print(text.init(result))


@app.command()
def save(
    paths: Annotated[list[Path], typer.Argument(help="Checkpoint files to snapshot.")],
    message: Annotated[Optional[str], typer.Option("-m", "--message", help="Describe this snapshot.")] = None,
    metrics_file: Annotated[Optional[Path], typer.Option("--metrics", help="JSON/YAML file of metrics.")] = None,
    metric: Annotated[Optional[list[str]], typer.Option("-M", "--metric", help="A metric, key=value (repeatable).")] = None,
    params_file: Annotated[Optional[Path], typer.Option("--params", help="JSON/YAML file of params.")] = None,
    param: Annotated[Optional[list[str]], typer.Option("-P", "--param", help="A param, key=value (repeatable).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Record a snapshot: tensors to the store, a .snap pointer beside each checkpoint."""
    from gitsnap import api
    from gitsnap.render import text

    results = api.save(
        paths,
        message=message,
        metrics_file=metrics_file,
        metrics=metric or [],
        params_file=params_file,
        params=param or [],
    )
    _json(results) if json_ else _print(text.save(results))


@app.command()
def status(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Limit to these checkpoints or folders.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Checkpoints changed since their pointer, absent, or with objects missing locally."""
    from gitsnap import api
    from gitsnap.render import text

    result = api.status(paths or [])
    _json(result) if json_ else _print(text.status(result))


@app.command()
def checkout(
    args: Annotated[Optional[list[str]], typer.Argument(metavar="[REV] [PATH]...", help="A revision, then checkpoints.")] = None,
    to: Annotated[Optional[Path], typer.Option("--to", help="Export into this folder; leave the work tree alone.")] = None,
    force: Annotated[bool, typer.Option("-f", "--force", help="Overwrite checkpoints with unsaved changes.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Restore checkpoints byte-exactly (from the work tree's pointers, or REV's)."""
    from gitsnap import api
    from gitsnap.render import text

    rev, paths = _split_rev(args or [])
    results = api.checkout(rev, paths, to=to, force=force)
    _json(results) if json_ else _print(text.checkout(results))


def _split_rev(args: list[str]) -> tuple[str | None, list[str]]:
    """Like git: the first argument is a revision unless it names an existing path (``--`` separates)."""
    if "--" in args:
        i = args.index("--")
        before, after = args[:i], args[i + 1 :]
        return (before[0] if before else None), [*before[1:], *after]
    if not args:
        return None, []
    first = Path(args[0])
    if first.exists() or Path(args[0] + ".snap").exists():
        return None, args
    return args[0], args[1:]


@app.command()
def log(
    path: Annotated[Optional[Path], typer.Argument(help="A checkpoint (default: all).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Snapshot history with messages and metrics, newest first."""
    from gitsnap import api
    from gitsnap.render import text

    entries = api.log(path)
    _json(entries) if json_ else _print(text.log(entries))


@app.command()
def show(
    spec: Annotated[str, typer.Argument(metavar="[REV:]PATH", help="A checkpoint, optionally at a revision.")],
    json_: JsonOpt = False,
) -> None:
    """One snapshot: tensors with stats, metrics, params."""
    from gitsnap import api
    from gitsnap.render import text

    result = api.show(spec)
    _json(result) if json_ else _print(text.show(result))


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit code (also used by tests)."""
    from gitsnap.errors import GitsnapError

    try:
        app(args=argv, prog_name="git snap", standalone_mode=False)
    except GitsnapError as err:
        if _state["traceback"]:
            import traceback

            traceback.print_exc()
        sys.stderr.write(f"error: {err}\n")
        if err.hint:
            sys.stderr.write(f"hint: {err.hint}\n")
        return err.exit_code
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except Exception as exc:
        return _click_or_crash(exc)
    return 0


def _click_or_crash(exc: Exception) -> int:
    # typer ships click; its usage errors carry exit code 2 and know how to show themselves.
    show_ = getattr(exc, "show", None)
    code = getattr(exc, "exit_code", None)
    if callable(show_) and isinstance(code, int):
        show_()
        return code
    if type(exc).__name__ == "Abort":
        sys.stderr.write("aborted\n")
        return 130
    if _state["traceback"]:
        raise exc
    import traceback

    sys.stderr.write(f"internal error: {type(exc).__name__}: {exc}\n")
    sys.stderr.write("hint: please report this with the output of: git snap --traceback <command>\n")
    if "pytest" in sys.modules:
        traceback.print_exc()
    return 3


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
