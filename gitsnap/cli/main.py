"""``git snap``'s entry point: the hot paths without typer, everything else through it.

The commands live in :mod:`gitsnap.cli.commands`, a typer app. Building it
(importing typer and click, creating the command tree) costs 60-90 ms, a
third of a clean status's budget and most of a no-op hook's, so
:func:`main` answers the paths that run most often before it loads typer:
the hooks' shims (``git snap hook NAME``), a plain ``git snap status``, and
a ``git snap diff`` whose arguments are plainly well formed. Anything else,
including help and usage errors, goes to typer.

One error funnel (:func:`main`) maps exceptions to exit codes (DESIGN §3):
0 ok, 1 differences / failed check (only where asked), 2 usage, 3 a gitsnap
error (message + ``hint:``), 128 not in a git repository, 130 interrupted.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Any

_state = {"traceback": False}


def _clean(text: object) -> str:
    """A message that may quote a pointer or checkpoint (a tensor name): escaped for stderr.

    Line breaks stay: some messages list items one per line.
    """
    from gitsnap.render.escape import escape

    return "\n".join(escape(line) for line in str(text).split("\n"))


def _print(text: str) -> None:
    if text:
        sys.stdout.write(text + "\n")


def _json(value: Any) -> None:
    from gitsnap.render import json as render_json

    _print(render_json.dumps(value))


def _local_status(paths: list[Path], json_: bool) -> None:
    from gitsnap import api
    from gitsnap.render import text

    result = api.status(paths)
    _json(result) if json_ else _print(text.status(result))


# `git snap status` as typed most often: answered without building the typer app
# (~30 ms of click objects for every command), inside the same error funnel.
_FAST_STATUS = (["status"], ["status", "--json"])


def _progress(label: str) -> Any:
    """A progress line on stderr when it is a terminal; nothing otherwise."""
    if not sys.stderr.isatty():
        return None
    from gitsnap.render import text

    return text.TransferProgress(sys.stderr, label)


# main() records the raw arguments: click drops the "--" that separates
# revisions from paths, and `git snap diff A -- B` must not read B as a revision.
_RAW_ARGV: list[str] = []


class DiffFormat(str, Enum):
    table = "table"
    json = "json"
    markdown = "markdown"
    html = "html"


def _diff_args(args: list[str]) -> tuple[list[str], list[str]]:
    """(revisions, paths).

    After ``--`` everything is a path; before it, like git: a path if it exists.
    """
    from gitsnap.errors import UsageError

    if "--" in _RAW_ARGV:
        n_paths = len(_RAW_ARGV) - _RAW_ARGV.index("--") - 1
        split = max(0, len(args) - n_paths)
        revs, paths = args[:split], args[split:]
    else:
        revs = []
        i = 0
        while (
            i < len(args)
            and len(revs) < 2
            and not (Path(args[i]).exists() or Path(args[i] + ".snap").exists())
        ):
            revs.append(args[i])
            i += 1
        paths = args[i:]
    if len(revs) > 2:
        raise UsageError(
            f"at most two revisions, got {', '.join(revs)}",
            hint="git snap diff [REV_A [REV_B]] [-- PATH...]",
        )
    return revs, paths


def run_diff(
    args: list[str] | None = None,
    *,
    values: bool = False,
    fmt: DiffFormat = DiffFormat.table,
    json_: bool = False,
    top: int = 10,
    depth: int | None = None,
    all_: bool = False,
    fail_on: list[str] | None = None,
    exit_code: bool = False,
    allow_missing: bool = False,
) -> int:
    """The ``diff`` command's work; returns its exit code.

    1 when the metric gate failed, or with ``exit_code`` when anything changed.
    """
    import gc
    import os

    # A diff allocates tens of thousands of small, acyclic objects; the cyclic
    # collector would rescan them all again and again (~10% of a 2,000-tensor
    # diff). The process ends right after.
    gc.disable()
    from gitsnap import api

    revs, paths = _diff_args(args or [])
    rev_a = revs[0] if revs else None
    rev_b = revs[1] if len(revs) > 1 else None
    result = api.diff(
        rev_a, rev_b, paths, values=values, depth=depth, fail_on=fail_on or [],
        allow_missing=allow_missing,
    )  # fmt: skip
    kind = "json" if json_ else fmt.value
    if kind == "json":
        from gitsnap.render import json as render_json

        _print(render_json.dumps_diff(render_json.diff_dict(result)))
    elif kind == "markdown":
        from gitsnap.render import markdown

        sys.stdout.write(markdown.diff(result, top=top))
    elif kind == "html":
        from gitsnap.render import html

        sys.stdout.write(html.diff(result, top=top))
    else:
        from gitsnap.render import table

        width = table.width_for(sys.stdout)  # None when piped: full width, as git
        color = width is not None and not os.environ.get("NO_COLOR")
        _print(table.diff(result, top=top, all_tensors=all_, color=color, width=width))
    for check in result.gate:
        state = "FAILED" if check.failed else ("ok" if check.evaluated else "not checked")
        sys.stderr.write(f"gate {state}: {_clean(check.message)}\n")
    if result.failed:
        failed = [c.condition for c in result.gate if c.failed]
        sys.stderr.write(f"error: metric gate failed: {_clean(', '.join(failed))}\n")
        return 1
    if exit_code and result.changed:
        return 1
    return 0


_DIFF_FLAGS = {"--values": "values", "--json": "json_", "--all": "all_", "--exit-code": "exit_code",
              "--allow-missing": "allow_missing"}  # fmt: skip
_DIFF_INTS = {"--top": "top", "--depth": "depth"}


def _diff_fast(argv: list[str]) -> dict[str, Any] | None:
    """:func:`diff`'s parameters for plainly well-formed arguments, else None (typer parses).

    Building typer's command tree costs ~30 ms of a structural diff's 0.4 s
    budget (issue 5). Only what click would read the same way is accepted:
    the options above (``--opt value`` or ``--opt=value``, a value not
    starting with ``-``), revisions, ``--`` and paths. Anything else (help,
    a typo, a bad number) goes to typer, which words the usage error.
    """
    kw: dict[str, Any] = {"args": [], "fail_on": []}
    rest = iter(argv)
    for arg in rest:
        if arg == "--":
            kw["args"].extend(rest)
            break
        if not arg.startswith("-"):
            kw["args"].append(arg)
            continue
        name, eq, value = arg.partition("=")
        if name in _DIFF_FLAGS and not eq:
            kw[_DIFF_FLAGS[name]] = True
            continue
        if not eq:
            value = next(rest, "-")
        if value.startswith("-"):
            return None
        if name == "--format" and value in DiffFormat.__members__:
            kw["fmt"] = DiffFormat(value)
        elif name == "--fail-on":
            kw["fail_on"].append(value)
        elif name in _DIFF_INTS and value.isascii() and value.isdigit() and int(value) >= 1:
            kw[_DIFF_INTS[name]] = int(value)
        else:
            return None
    return kw


def _diff_now(kw: dict[str, Any], *, exit_now: bool) -> int:
    """Run :func:`diff`; as a command (``exit_now``), end the process as soon as it is done.

    Python's own shutdown (tearing down ~400 modules) costs ~20 ms of the
    0.4 s budget and there is nothing left to do: the output is flushed, the
    diff's threads are joined and its files closed. Errors still go through
    main(); tests, which call main() with arguments, return normally.
    """
    import os

    code = run_diff(**kw)
    if exit_now:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:  # a reader that went away (git snap diff | head): nothing to tell
            pass
        os._exit(code)
    return code


def _run_hook(argv: list[str]) -> int:
    """``git snap hook NAME ARGS...``, parsed by hand.

    The shims run it on every commit, push, checkout and merge, so it skips
    typer's start-up and renders without the render package (DESIGN D10:
    a checkout with nothing to restore must stay well under 0.3 s).
    """
    import os

    from gitsnap import hooks
    from gitsnap.errors import GitsnapError

    if not argv or argv[0] in ("-h", "--help"):
        sys.stderr.write(f"usage: git snap hook NAME [ARGS]...  (NAME: {', '.join(hooks.NAMES)})\n")
        return 2 if not argv else 0
    name, args = argv[0], argv[1:]
    stdin = b""
    if hooks.reads_stdin(name) and not sys.stdin.isatty():
        stdin = sys.stdin.buffer.read()
    after = name in (
        "post-checkout",
        "post-merge",
        "restore",
    )  # git's work is done: warn, never fail it
    try:
        result = hooks.run(name, args, stdin=stdin, progress=lambda: _progress("gitsnap upload"))
    except GitsnapError as err:
        sys.stderr.write(
            f"gitsnap: error: {_clean(err)}\n" + (f"hint: {_clean(err.hint)}\n" if err.hint else "")
        )
        return 0 if after else err.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("gitsnap: interrupted\n")
        return 130
    except Exception as exc:  # a bug must still stop a commit or push, with a readable line
        if _state["traceback"] or os.environ.get("GITSNAP_TRACEBACK"):
            raise
        sys.stderr.write(
            f"gitsnap: internal error in the {name} hook: {type(exc).__name__}: {exc}\n"
            "hint: please report it with the output of: GITSNAP_TRACEBACK=1 git snap hook "
            + " ".join(argv)
            + "\n"
        )
        return 0 if after else 3
    for m in result.messages:
        label = "" if m.level == "info" else f"{m.level}: "
        sys.stderr.write(
            f"gitsnap: {label}{_clean(m.text)}\n" + (f"hint: {_clean(m.hint)}\n" if m.hint else "")
        )
    return result.exit_code


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0911 - one exit per route and error class
    """Console entry point; returns the exit code (also used by tests)."""
    from gitsnap.errors import GitsnapError

    _RAW_ARGV[:] = sys.argv[1:] if argv is None else argv  # ---- review: see _diff_args
    if _RAW_ARGV[:1] == ["hook"]:  # ---- hooks: the shims' hot path, without typer
        return _run_hook(_RAW_ARGV[1:])
    try:
        if _RAW_ARGV in _FAST_STATUS:  # ---- status: the clean path's budget (issue 2)
            _local_status([], json_=len(_RAW_ARGV) == 2)
            return 0
        if _RAW_ARGV[:1] == ["diff"] and (kw := _diff_fast(_RAW_ARGV[1:])) is not None:
            return _diff_now(kw, exit_now=argv is None)  # ---- diff: issue 5's budget
        return _run_app(argv)
    except GitsnapError as err:
        if _state["traceback"]:
            import traceback

            traceback.print_exc()
        sys.stderr.write(f"error: {_clean(err)}\n")
        if err.hint:
            sys.stderr.write(f"hint: {_clean(err.hint)}\n")
        return err.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except Exception as exc:
        return _click_or_crash(exc)


def _run_app(argv: list[str] | None) -> int:
    import typer

    from gitsnap.cli.commands import app

    try:
        # Without standalone mode click returns (not raises) a typer.Exit's code.
        code = app(args=argv, prog_name="git snap", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    return code if isinstance(code, int) and not isinstance(code, bool) else 0


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
    sys.stderr.write(
        "hint: please report this with the output of: git snap --traceback <command>\n"
    )
    if "pytest" in sys.modules:
        traceback.print_exc()
    return 3


def entry() -> None:
    sys.exit(main())


def __getattr__(name: str) -> Any:
    # ``gitsnap.cli.main.app``, as before the commands moved to gitsnap.cli.commands.
    if name == "app":
        from gitsnap.cli.commands import app

        return app
    raise AttributeError(name)


if __name__ == "__main__":
    entry()
