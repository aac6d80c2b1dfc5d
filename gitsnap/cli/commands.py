"""``git snap``'s commands: a thin typer app. Each command parses, calls one api function, renders.

:func:`gitsnap.cli.main.main` runs it inside the error funnel, after the
routing table has answered the hot paths (hooks, a plain status, a plain
diff) without it, and hands it the words before the first ``--``; the words
after it reach a command as :attr:`Invocation.rest <gitsnap.cli.invocation.Invocation.rest>`
(``ctx.obj``). Heavy modules are imported inside the commands so ``--help``
stays fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from gitsnap.cli import diff as diff_cmd
from gitsnap.cli.diff import DiffFormat, DiffOptions
from gitsnap.cli.invocation import Invocation
from gitsnap.cli.output import echo as _print
from gitsnap.cli.output import emit_json as _json
from gitsnap.cli.output import local_status as _local_status
from gitsnap.cli.output import progress as _progress
from gitsnap.cli.output import report_problems as _report_problems
from gitsnap.errors import UsageError

if TYPE_CHECKING:
    from gitsnap.commands.compare import CompareResult

T = TypeVar("T")

app = typer.Typer(
    name="git snap",
    help="Version ML model checkpoints inside git: tensor-level storage on DVC remotes, "
    "reviewable diffs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]

# Commands whose arguments may follow a "--": diff, checkout and pull take paths
# there (revisions before it); the others take it as the end of their options,
# as git does. Any other command refuses words after "--".
_TAKES_REST = {"save", "status", "checkout", "pull", "diff", "log", "push", "fetch", "fsck"}
_TAKES_REST |= {"metrics", "install", "uninstall", "eval", "compare"}


def _rest(ctx: typer.Context) -> tuple[str, ...] | None:
    """The words after the command line's first ``--`` (None: there was none)."""
    return ctx.obj.rest if isinstance(ctx.obj, Invocation) else None


def _with_rest(ctx: typer.Context, words: list[str] | None) -> list[str]:
    return [*(words or []), *(_rest(ctx) or ())]


def _show_version(value: bool) -> None:
    # Eager: runs while the options are parsed, before click asks for a command.
    if value:
        from gitsnap import __version__

        _print(f"gitsnap {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Show the version and exit.", is_eager=True, callback=_show_version
        ),
    ] = False,
) -> None:
    # (--traceback, the hidden global option, is read before typer runs: gitsnap.cli.invocation.)
    if _rest(ctx) and ctx.invoked_subcommand not in _TAKES_REST:
        raise UsageError(
            f"git snap {ctx.invoked_subcommand} takes no arguments after --",
            hint=f"git snap {ctx.invoked_subcommand} -h",
        )


@app.command()
def init(
    remote: Annotated[
        str | None, typer.Option(help="Add this URL as the default DVC remote.")
    ] = None,
    hooks: Annotated[
        bool,
        typer.Option(
            "--hooks/--no-hooks", help="Also install the git hooks (as git snap install)."
        ),
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Set up gitsnap here: dvc init if needed, optionally a default remote and the git hooks."""
    from gitsnap import api
    from gitsnap.render import text

    result = api.init(remote=remote, hooks=hooks)
    _json(result) if json_ else _print(text.init(result))


@app.command()
def save(
    ctx: typer.Context,
    paths: Annotated[
        list[str] | None,
        typer.Argument(metavar="PATH...", help="Checkpoint files to snapshot.", show_default=False),
    ] = None,
    message: Annotated[
        str | None, typer.Option("-m", "--message", help="Describe this snapshot.")
    ] = None,
    metrics_file: Annotated[
        Path | None, typer.Option("--metrics", help="JSON/YAML file of metrics.")
    ] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option("-M", "--metric", help="A metric, key=value (repeatable)."),
    ] = None,
    params_file: Annotated[
        Path | None, typer.Option("--params", help="JSON/YAML file of params.")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("-P", "--param", help="A param, key=value (repeatable).")
    ] = None,
    allow_unsafe_pickle: Annotated[
        bool,
        typer.Option(
            "--allow-unsafe-pickle",
            help="Save a checkpoint whose pickle would run code when loaded with torch.load "
            "(recorded in its pointer).",
        ),
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Record a snapshot: tensors to the store, a .snap pointer beside each checkpoint."""
    from gitsnap import api
    from gitsnap.render import text
    from gitsnap.render.escape import escape

    if not (paths := _with_rest(ctx, paths)):
        raise UsageError("which checkpoint?", hint="git snap save PATH... [-m MSG]")
    results = api.save(
        paths,
        message=message,
        metrics_file=metrics_file,
        metrics=metric or [],
        params_file=params_file,
        params=param or [],
        allow_unsafe_pickle=allow_unsafe_pickle,
    )
    for r in results:
        for warning in r.warnings:
            sys.stderr.write(f"warning: {escape(warning)}\n")
    _json(results) if json_ else _print(text.save(results))


@app.command()
def status(
    ctx: typer.Context,
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Limit to these checkpoints or folders.")
    ] = None,
    remote: Annotated[
        bool,
        typer.Option("--remote", help="Check the DVC remote instead: snapshots not fully on it."),
    ] = False,
    remote_name: Annotated[
        str | None,
        typer.Option(
            "-r", "--remote-name", metavar="NAME", help="Which DVC remote (implies --remote)."
        ),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Checkpoints changed since their pointer, absent, or with objects missing locally."""
    from gitsnap import api
    from gitsnap.render import text

    paths = [Path(p) for p in _with_rest(ctx, [str(p) for p in paths or []])]
    if remote or remote_name:  # dvc is imported only on this branch
        remote_result = api.remote_status(paths, remote=remote_name)
        _json(remote_result) if json_ else _print(text.remote_status(remote_result))
        return
    code = _local_status(paths, json_)
    if code:
        raise typer.Exit(code)


@app.command()
def checkout(
    ctx: typer.Context,
    args: Annotated[
        list[str] | None,
        typer.Argument(metavar="[REV] [PATH]...", help="A revision, then checkpoints."),
    ] = None,
    to: Annotated[
        Path | None,
        typer.Option(
            "--to",
            help="Export into this folder, each checkpoint at its repository path "
            "(DIR/models/model.safetensors); leave the work tree alone.",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("-f", "--force", help="Overwrite checkpoints with unsaved changes.")
    ] = False,
    snapshot: Annotated[
        str | None,
        typer.Option(
            "--snapshot",
            metavar="ID",
            help="Restore this save of PATH from the snapshot journal, committed or not "
            "(ids: git snap log --all-saves PATH).",
        ),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Restore checkpoints byte-exactly (from the work tree's pointers, or REV's)."""
    from gitsnap import api
    from gitsnap.render import text

    args = args or []
    if snapshot is not None and _rest(ctx) is None:
        rev, paths = None, args  # --snapshot ID PATH: no revision
    else:
        rev, paths = _split_rev(args, _rest(ctx))
    results = api.checkout(rev, paths, to=to, force=force, snapshot=snapshot)
    _json(list(results)) if json_ else _print(text.checkout(results))
    if code := _report_problems(results.problems):
        raise typer.Exit(code)


def _split_rev(args: list[str], rest: tuple[str, ...] | None) -> tuple[str | None, list[str]]:
    """``[REV] [PATH]... [-- PATH...]``: (revision, paths), like git.

    Before ``--`` the first word is the revision; without ``--``, it is one
    unless it names an existing path (or pointer).
    """
    if rest is not None:
        return (args[0] if args else None), [*args[1:], *rest]
    if not args:
        return None, []
    first = Path(args[0])
    if first.exists() or Path(args[0] + ".snap").exists():
        return None, args
    return args[0], args[1:]


class LogFormat(str, Enum):
    text = "text"
    json = "json"
    html = "html"


@app.command()
def log(
    ctx: typer.Context,
    path: Annotated[Path | None, typer.Argument(help="A checkpoint (default: all).")] = None,
    json_: JsonOpt = False,
    fmt: Annotated[
        LogFormat, typer.Option("--format", help="text, json, or html (a chart per metric).")
    ] = LogFormat.text,
    all_saves: Annotated[
        bool,
        typer.Option(
            "--all-saves",
            help="Every save in the snapshot journal, committed or not (marked which).",
        ),
    ] = False,
) -> None:
    """Snapshot history through both sides of merges, newest first: messages, metrics (the
    pointer's and the commit's note's), registry tags and stages."""
    from gitsnap import api
    from gitsnap.render import text

    if rest := _rest(ctx):  # git log -- PATH
        if path is not None or len(rest) > 1:
            raise UsageError("git snap log takes one checkpoint", hint="git snap log [PATH]")
        path = Path(rest[0])
    if all_saves:
        if fmt == LogFormat.html:
            raise UsageError("--all-saves has no html view", hint="use --json or the text view")
        saves = api.all_saves(path)
        _json(list(saves)) if json_ or fmt == LogFormat.json else _print(text.saves(saves))
        if code := _report_problems(saves.problems):
            raise typer.Exit(code)
        return
    entries = api.log(path)
    if fmt == LogFormat.html:
        from gitsnap.render import html

        _print(html.render_log_html(entries))
    elif json_ or fmt == LogFormat.json:
        _json(list(entries))
    else:
        _print(text.log(entries))
    if code := _report_problems(entries.problems):
        raise typer.Exit(code)


@app.command()
def show(
    spec: Annotated[
        str, typer.Argument(metavar="[REV:]PATH", help="A checkpoint, optionally at a revision.")
    ],
    json_: JsonOpt = False,
) -> None:
    """One snapshot: tensors with stats, metrics, params."""
    from gitsnap import api
    from gitsnap.render import text

    result = api.show(spec)
    _json(result) if json_ else _print(text.show(result))


# ---------------------------------------------------------------- remotes (push / fetch / pull)

RemoteOpt = Annotated[
    str | None,
    typer.Option("-r", "--remote", metavar="NAME", help="DVC remote (default: core.remote)."),
]
AllOpt = Annotated[
    bool, typer.Option("--all", "-a", help="Every commit reachable from a branch or tag.")
]
RevsArg = Annotated[
    list[str] | None,
    typer.Argument(metavar="[REV]...", help="Commits (default: HEAD and the work tree)."),
]
JobsOpt = Annotated[
    int | None, typer.Option("-j", "--jobs", min=1, metavar="N", help="Parallel transfers.")
]


def _transfer_json_on_error(json_: bool, fn: Callable[[], T]) -> T:
    # A transfer that failed part-way still owes --json its summary.
    from gitsnap.errors import TransferFailed

    try:
        return fn()
    except TransferFailed as err:
        if json_:
            _json(err.result)
        raise


def _transfer(
    direction: str,
    revs: list[str],
    *,
    remote: str | None,
    all_refs: bool,
    jobs: int | None,
    json_: bool,
) -> None:
    """push or fetch: the same options, the same summary."""
    from gitsnap import api
    from gitsnap.render import text

    move = api.push if direction == "push" else api.fetch
    result = _transfer_json_on_error(
        json_,
        lambda: move(
            revs, remote=remote, all_refs=all_refs, jobs=jobs, progress=_progress(direction)
        ),
    )
    _json(result) if json_ else _print(text.transfer(result))


@app.command()
def push(
    ctx: typer.Context,
    revs: RevsArg = None,
    remote: RemoteOpt = None,
    all_: AllOpt = False,
    jobs: JobsOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Upload the weights the DVC remote lacks (and the metrics notes to origin)."""
    _transfer("push", _with_rest(ctx, revs), remote=remote, all_refs=all_, jobs=jobs, json_=json_)


@app.command()
def fetch(
    ctx: typer.Context,
    revs: RevsArg = None,
    remote: RemoteOpt = None,
    all_: AllOpt = False,
    jobs: JobsOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Download the weights the local store lacks, verified; the work tree is not touched."""
    _transfer("fetch", _with_rest(ctx, revs), remote=remote, all_refs=all_, jobs=jobs, json_=json_)


@app.command()
def pull(
    ctx: typer.Context,
    args: Annotated[
        list[str] | None,
        typer.Argument(metavar="[REV] [PATH]...", help="A revision, then checkpoints."),
    ] = None,
    remote: RemoteOpt = None,
    all_: AllOpt = False,
    jobs: JobsOpt = None,
    force: Annotated[
        bool, typer.Option("-f", "--force", help="Overwrite checkpoints with unsaved changes.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """fetch, then checkout: restore the weights of the work tree (or REV) byte-exactly."""
    from gitsnap import api
    from gitsnap.render import text

    rev, paths = _split_rev(args or [], _rest(ctx))
    result = _transfer_json_on_error(
        json_,
        lambda: api.pull(
            rev,
            paths,
            remote=remote,
            all_refs=all_,
            jobs=jobs,
            force=force,
            progress=_progress("pull"),
        ),
    )
    _json(result) if json_ else _print(text.pull(result))


# ------------------------------------------------------- review (diff / metrics / textconv)


@app.command()
def diff(
    ctx: typer.Context,
    args: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[REV_A[:PATH] [REV_B[:PATH]]] [-- PATH...]",
            help="No revision: HEAD vs the working checkpoints; one: it vs the work tree; "
            "two: those commits. REV:PATH on either side compares two checkpoints "
            "(a bare PATH beside it: the work tree's).",
        ),
    ] = None,
    values: Annotated[
        bool,
        typer.Option(
            "--values",
            help="Also compare the numbers of modified tensors (reads, or fetches, the weights).",
        ),
    ] = False,
    fmt: Annotated[
        DiffFormat,
        typer.Option(
            "--format",
            help="table (terminal), json (docs/json-output.md), "
            "markdown (a pull-request comment) or html (one self-contained page).",
        ),
    ] = DiffFormat.table,
    json_: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    top: Annotated[
        int, typer.Option("--top", min=1, help="How many of the most-changed layers to list.")
    ] = 10,
    depth: Annotated[
        int | None,
        typer.Option(
            "--depth",
            min=1,
            help="Group tensors by their first N name components (default: up to the layer index).",
        ),
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Table: list every tensor (default: the 30 most changed).")
    ] = False,
    fail_on: Annotated[
        list[str] | None,
        typer.Option(
            "--fail-on",
            metavar="'NAME OP NUMBER[%]'",
            help="Exit 1 when a metric's change meets this, "
            "e.g. 'accuracy < -0.01' or 'loss > 5%' (repeatable).",
        ),
    ] = None,
    exit_code: Annotated[
        bool,
        typer.Option("--exit-code", help="Exit 1 when anything changed, as git diff --exit-code."),
    ] = False,
    allow_missing: Annotated[
        bool,
        typer.Option("--allow-missing", help="A --fail-on metric found on neither side passes."),
    ] = False,
) -> None:
    """Compare snapshots: tensors (structure, stats, values), metrics and params."""
    opts = DiffOptions(
        args=args or [], values=values, fmt=fmt, json_=json_, top=top, depth=depth, all_=all_,
        fail_on=fail_on or [], exit_code=exit_code, allow_missing=allow_missing,
    )  # fmt: skip
    if code := diff_cmd.run(opts, _rest(ctx)):
        raise typer.Exit(code)


class CompareFormat(str, Enum):
    table = "table"
    json = "json"
    markdown = "markdown"
    html = "html"


@app.command()
def compare(
    ctx: typer.Context,
    revs: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="REV REV... [-- PATH...]",
            help="Revisions (commits, branches, NAME@vX.Y.Z, NAME#stage); the first is the "
            "reference. After --: the checkpoints.",
        ),
    ] = None,
    metric: Annotated[
        str | None, typer.Option("--metric", metavar="NAME", help="Mark the best by this metric.")
    ] = None,
    best: Annotated[
        str | None,
        typer.Option(
            "--best",
            metavar="max|min",
            help="Which value of --metric is best (default: the direction .gitsnap.yaml declares).",
        ),
    ] = None,
    tag: Annotated[
        tuple[str, str] | None,
        typer.Option(
            "--tag", metavar="NAME VERSION", help="Register the best as NAME@VERSION (a GTO tag)."
        ),
    ] = None,
    stage: Annotated[
        str | None,
        typer.Option("--stage", metavar="STAGE", help="Assign STAGE to the best (NAME#STAGE#N)."),
    ] = None,
    message: Annotated[
        str | None, typer.Option("-m", "--message", help="Message of the registry tag.")
    ] = None,
    values: Annotated[
        bool,
        typer.Option(
            "--values", help="Measure ‖ΔW‖/‖W‖ from the first exactly (reads, or fetches, weights)."
        ),
    ] = False,
    fmt: Annotated[
        CompareFormat,
        typer.Option("--format", help="table, json (docs/json-output.md), markdown or html."),
    ] = CompareFormat.table,
    json_: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
) -> None:
    """Snapshots side by side: metrics, params, training state, size, drift; the best marked."""
    from gitsnap import api

    result = api.compare(
        revs or [], _rest(ctx) or [], metric=metric, best=best, tag=tag, stage=stage,
        values=values, message=message,
    )  # fmt: skip
    _show_compare(result, "json" if json_ else fmt.value)
    if code := _report_problems(result.problems):
        raise typer.Exit(code)


def _show_compare(result: CompareResult, kind: str) -> None:
    if kind == "json":
        from gitsnap.render import json as render_json

        _print(render_json.dumps_data(render_json.compare_dict(result)))
    elif kind in ("markdown", "html"):
        from gitsnap.render import html, markdown

        sys.stdout.write(markdown.compare(result) if kind == "markdown" else html.compare(result))
    else:
        import os

        from gitsnap.render import table

        width = table.width_for(sys.stdout)  # None when piped: full width, as git
        color = width is not None and not os.environ.get("NO_COLOR")
        _print(table.compare(result, color=color, width=width))


metrics_app = typer.Typer(
    help="Metrics attached to commits as git notes (refs/notes/gitsnap).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(metrics_app, name="metrics")


@metrics_app.command("add")
def metrics_add(
    ctx: typer.Context,
    items: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="(FILE | key=value)...",
            help="A JSON/YAML file (flat, or with metrics:/params:) or key=value pairs.",
            show_default=False,
        ),
    ] = None,
    rev: Annotated[str, typer.Option("--rev", help="The commit to annotate.")] = "HEAD",
    param: Annotated[
        list[str] | None, typer.Option("-P", "--param", help="A param, key=value (repeatable).")
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Attach metrics measured after the commit (merged into its note)."""
    from gitsnap import api
    from gitsnap.render import text

    if not (items := _with_rest(ctx, items)):
        raise UsageError("which metrics?", hint="git snap metrics add (FILE | key=value)...")
    result = api.metrics_add(items, rev=rev, params=param or [])
    _json(result) if json_ else _print(text.metrics_add(result))


@metrics_app.command("show")
def metrics_show(
    ctx: typer.Context,
    rev: Annotated[str, typer.Argument(metavar="[REV]", help="A commit (default HEAD).")] = "HEAD",
    json_: JsonOpt = False,
) -> None:
    """Metrics and params of a commit: each pointer's, with its note's values on top."""
    from gitsnap import api
    from gitsnap.render import text

    if _rest(ctx):
        raise UsageError("git snap metrics show takes no arguments after --")
    result = api.metrics_show(rev)
    if json_:
        from gitsnap.render import json as render_json

        _print(render_json.dumps_data(render_json.metrics_show_dict(result)))
    else:
        _print(text.metrics_show(result))


@app.command("eval")
def eval_(
    ctx: typer.Context,
    revs: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[REV]... [-- PATH] -- CMD ARGS...",
            help="Snapshots to evaluate (default HEAD), then the command.",
        ),
    ] = None,
    no_note: Annotated[
        bool, typer.Option("--no-note", help="Print the metrics; attach no git note.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Run CMD on each snapshot (restored apart from the work tree); attach its metrics as notes.

    git snap eval [REV...] [-- PATH] -- CMD ARGS...: CMD sees the checkpoint at
    $GITSNAP_CHECKPOINT (and in place of {}), and writes its metrics as JSON to
    $GITSNAP_METRICS or prints them as a JSON object on its last line.
    """
    from gitsnap import api
    from gitsnap.render import text

    rest = list(_rest(ctx) or ())
    if "--" in rest:
        cut = rest.index("--")
        paths, command = rest[:cut], rest[cut + 1 :]
    else:
        paths, command = [], rest
    if len(paths) > 1:
        raise UsageError(
            "git snap eval evaluates one checkpoint at a time",
            hint="git snap eval [REV...] -- PATH -- CMD...",
        )

    def forward(chunk: bytes) -> None:  # the command's output, kept apart from our table
        sys.stderr.flush()
        sys.stderr.buffer.write(chunk)
        sys.stderr.buffer.flush()

    result = api.eval_snapshots(
        revs or [], command, path=paths[0] if paths else None, note=not no_note,
        output=forward,
    )  # fmt: skip
    _json(result) if json_ else _print(text.eval_(result))
    if result.failed:
        if not json_:
            sys.stderr.write(text.eval_failures(result) + "\n")
        raise typer.Exit(3)


@app.command(hidden=True)
def textconv(
    path: Annotated[Path, typer.Argument(help="A pointer file (git passes a temporary copy).")],
) -> None:
    """git's textconv driver for *.snap: a readable summary of a pointer."""
    from gitsnap import api
    from gitsnap.render import text

    result = api.textconv(path)
    if isinstance(result, bytes):
        sys.stdout.flush()
        sys.stdout.buffer.write(result)
    else:
        _print(text.textconv(result))


# ---------------------------------------- registry and storage (tag / ls / gc / du / fsck)


@app.command()
def tag(
    name: Annotated[
        str,
        typer.Argument(
            help="Model name: from .gitsnap.yaml, or the checkpoint's file name without suffix."
        ),
    ],
    args: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[VERSION] [REV]",
            help="vX.Y.Z to register (not with --stage), then the commit (default HEAD).",
        ),
    ] = None,
    stage: Annotated[
        str | None,
        typer.Option(
            "--stage",
            "-s",
            help="Assign this stage (NAME#STAGE#N) instead of registering a version.",
        ),
    ] = None,
    message: Annotated[str | None, typer.Option("-m", "--message", help="Tag message.")] = None,
    push: Annotated[bool, typer.Option("--push", help="Push the tag to origin.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Register a model version (NAME@vX.Y.Z) or assign a stage (NAME#STAGE#N).

    Both are GTO-compatible git tags.
    """
    from gitsnap import api
    from gitsnap.render import text

    args = args or []
    if len(args) > (1 if stage else 2):
        raise UsageError(
            f"too many arguments: {' '.join(args)}",
            hint="git snap tag NAME VERSION [REV] | git snap tag NAME --stage STAGE [REV]",
        )
    padded: list[str | None] = [*args, None, None]
    version, rev = (None, padded[0]) if stage else (padded[0], padded[1])
    result = api.tag(name, version, rev, stage=stage, message=message, push=push)
    _json(result) if json_ else _print(text.tag(result))


@app.command("ls")
def ls_(
    name: Annotated[str | None, typer.Argument(help="One model (default: all).")] = None,
    history: Annotated[
        bool, typer.Option("--history", help="Every registry event of NAME, newest first.")
    ] = False,
    pre: Annotated[
        bool, typer.Option("--pre", help="A pre-release (v1.2.0-rc.1) may be the latest version.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Models: latest version, stages, key metrics and commit (GTO tags)."""
    from gitsnap import api
    from gitsnap.render import text

    if history:
        if name is None:
            raise UsageError("--history needs a model name", hint="git snap ls NAME --history")
        hist = api.ls_history(name, pre=pre)
        _json(hist) if json_ else _print(text.ls_history(hist))
        return
    models = api.ls(name, pre=pre)
    _json(models) if json_ else _print(text.ls(models))


@app.command()
def gc(
    dry_run: Annotated[
        bool, typer.Option("-n", "--dry-run", help="List what would be deleted; delete nothing.")
    ] = False,
    remote: Annotated[
        bool,
        typer.Option(
            "--remote",
            help="Collect on the DVC remote instead (needs --all-commits, and --force to delete).",
        ),
    ] = False,
    remote_name: Annotated[
        str | None,
        typer.Option(
            "-r", "--remote-name", metavar="NAME", help="Which DVC remote (implies --remote)."
        ),
    ] = None,
    all_commits: Annotated[
        bool,
        typer.Option(
            "--all-commits",
            help="Remote scope: keep every snapshot any commit of this clone "
            "or its git remotes reaches.",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "-f",
            "--force",
            help="Really delete from the remote (or from a cache outside the project).",
        ),
    ] = False,
    grace: Annotated[
        str | None,
        typer.Option(
            "--grace",
            metavar="DURATION",
            help="Keep unreferenced objects younger than this "
            "(default 1h; 14d on a remote; 'now' for none).",
        ),
    ] = None,
    projects: Annotated[
        list[Path] | None,
        typer.Option(
            "-p",
            "--projects",
            metavar="DIR",
            help="Other projects sharing this cache: keep their snapshots too (repeatable).",
        ),
    ] = None,
    keep_last: Annotated[
        int | None,
        typer.Option(
            "--keep-last",
            metavar="N",
            help="Of the uncommitted saves in the snapshot journal, keep the newest N "
            "per checkpoint (default 10, with --keep-within 14d).",
        ),
    ] = None,
    keep_within: Annotated[
        str | None,
        typer.Option(
            "--keep-within",
            metavar="DURATION",
            help="Keep every uncommitted save younger than this "
            "(default 14d, with --keep-last 10).",
        ),
    ] = None,
    ignore_git_remotes: Annotated[
        bool,
        typer.Option(
            "--ignore-git-remotes",
            help="With --remote: do not require the git remotes' branches and tags to be fetched.",
        ),
    ] = False,
    jobs: JobsOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Delete objects that no snapshot needs.

    Kept: what a ref, the reflog, the stash, the index or the work tree reaches,
    and the snapshot journal's uncommitted saves under --keep-last/--keep-within.
    """
    from gitsnap import api
    from gitsnap.render import text

    result = api.gc(
        dry_run=dry_run, remote=remote, remote_name=remote_name, all_commits=all_commits,
        force=force, grace=grace, projects=projects or [],
        check_git_remotes=not ignore_git_remotes, jobs=jobs,
        keep_last=keep_last, keep_within=keep_within,
    )  # fmt: skip
    _json(result) if json_ else _print(text.gc(result))


@app.command()
def du(
    remote: Annotated[
        bool,
        typer.Option(
            "--remote",
            help="Measure the DVC remote: bytes stored there (compressed, deltas), "
            "each stored form's share, packs, garbage.",
        ),
    ] = False,
    remote_name: Annotated[
        str | None,
        typer.Option(
            "-r", "--remote-name", metavar="NAME", help="Which DVC remote (implies --remote)."
        ),
    ] = None,
    jobs: JobsOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Storage per model and in total: logical size over history, bytes stored, dedup ratio."""
    from gitsnap import api
    from gitsnap.render import text

    if remote or remote_name:
        on_remote = api.du_remote(remote_name=remote_name, jobs=jobs)
        _json(on_remote) if json_ else _print(text.du_remote(on_remote))
        return
    result = api.du()
    _json(result) if json_ else _print(text.du(result))


@app.command()
def repack(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Say what would be packed; change nothing.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Compact the local store: small loose objects and small packs into packs of up to 64 MiB."""
    from gitsnap import api
    from gitsnap.render import text

    result = api.repack(dry_run=dry_run)
    _json(result) if json_ else _print(text.repack(result))


@app.command()
def fsck(
    ctx: typer.Context,
    revs: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[REV]...",
            help="Snapshots that must be complete (default: the work tree and HEAD).",
        ),
    ] = None,
    remote: Annotated[
        bool,
        typer.Option(
            "--remote", help="Check the DVC remote's objects (streamed) instead of the local store."
        ),
    ] = False,
    remote_name: Annotated[
        str | None,
        typer.Option(
            "-r", "--remote-name", metavar="NAME", help="Which DVC remote (implies --remote)."
        ),
    ] = None,
    all_commits: Annotated[
        bool, typer.Option("--all-commits", help="Every reachable snapshot must be complete.")
    ] = False,
    jobs: JobsOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Re-hash every object; report corrupt or missing ones by snapshot and tensor.

    Exits 1 when any is.
    """
    from gitsnap import api
    from gitsnap.render import text

    result = api.fsck(
        _with_rest(ctx, revs),
        remote=remote,
        remote_name=remote_name,
        all_commits=all_commits,
        jobs=jobs,
        progress=_progress("fsck"),
    )
    _json(result) if json_ else _print(text.fsck(result))
    if not result.ok:
        raise typer.Exit(1)


# ------------------------------------------------------------- hooks (install / uninstall)

HookNames = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="[HOOK]...",
        help="pre-commit, pre-push, post-checkout, post-merge, post-commit, post-rewrite "
        "(default: all).",
    ),
]


@app.command()
def install(
    ctx: typer.Context,
    names: HookNames = None,
    force: Annotated[
        bool,
        typer.Option("-f", "--force", help="Also replace gitsnap shims that have local edits."),
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Set up this clone: the git hooks, and the diff and merge drivers .gitattributes names.

    The hooks check commits, upload weights before git push and restore them on
    checkout; the drivers make git diff of a pointer readable and merge pointers
    tensor by tensor. Run it once after git clone; git snap doctor says what is missing.
    """
    from gitsnap import api
    from gitsnap.render import text

    result = api.install(hooks=_with_rest(ctx, names), force=force)
    _json(result) if json_ else _print(text.install(result))
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def doctor(
    offline: Annotated[
        bool, typer.Option("--offline", help="Do not open the DVC remote to check it answers.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """What this clone is missing, with the fix for each (exit 1 when something is).

    Hooks, the diff and merge drivers (and their .gitattributes lines), the DVC
    project and object store, the default remote, the DVC plugin its scheme needs,
    and whether it answers with the credentials configured.
    """
    from gitsnap import api
    from gitsnap.render import text

    result = api.doctor(remote=not offline)
    _json(result) if json_ else _print(text.doctor(result))
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def uninstall(
    ctx: typer.Context,
    names: HookNames = None,
    force: Annotated[
        bool, typer.Option("-f", "--force", help="Also remove gitsnap shims that have local edits.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Remove gitsnap's git hooks (only those) and put back the hooks they chained."""
    from gitsnap import api
    from gitsnap.render import text

    result = api.uninstall(hooks=_with_rest(ctx, names), force=force)
    _json(result) if json_ else _print(text.install(result))
    if not result.ok:
        raise typer.Exit(1)


@app.command("merge-driver", hidden=True)
def merge_driver(
    base: Annotated[str, typer.Argument(help="git's %O: the common ancestor's pointer.")],
    ours: Annotated[str, typer.Argument(help="git's %A: ours; the result is written here.")],
    theirs: Annotated[str, typer.Argument(help="git's %B: theirs.")],
    path: Annotated[str, typer.Argument(help="git's %P: the pointer's path.")] = "",
) -> None:
    """git's merge driver for *.snap: merge tensor by tensor; exit 1 leaves a conflict."""
    from gitsnap.commands.resolve import merge_driver as run_driver
    from gitsnap.render.escape import escape

    r = run_driver(base, ours, theirs, path)
    if r.merged:
        sys.stderr.write(
            f"gitsnap: merged {escape(r.path)} tensor by tensor ({len(r.from_ours)} changes "
            f"from ours, {len(r.from_theirs)} from theirs): snapshot {(r.snapshot_id or '')[:12]}\n"
        )
        return
    sys.stderr.write(f"gitsnap: cannot merge {escape(r.path)} tensor by tensor:\n")
    sys.stderr.writelines(f"  {escape(c)}\n" for c in r.conflicts[:20])
    sys.stderr.write(f"hint: git snap resolve {escape(r.path)} --ours | --theirs | --base\n")
    raise typer.Exit(1)


@app.command()
def resolve(
    path: Annotated[Path, typer.Argument(help="The checkpoint (or its .snap) in conflict.")],
    ours: Annotated[bool, typer.Option("--ours", help="Keep this branch's weights.")] = False,
    theirs: Annotated[bool, typer.Option("--theirs", help="Take the merged branch's.")] = False,
    base: Annotated[bool, typer.Option("--base", help="Go back to the common ancestor's.")] = False,
    force: Annotated[
        bool, typer.Option("-f", "--force", help="Overwrite a checkpoint with unsaved changes.")
    ] = False,
) -> None:
    """End a pointer merge conflict: stage one side's pointer and restore its weights."""
    from gitsnap.commands.resolve import resolve as run_resolve
    from gitsnap.errors import UsageError
    from gitsnap.render.escape import escape

    chosen = [s for s, on in (("ours", ours), ("theirs", theirs), ("base", base)) if on]
    if len(chosen) != 1:
        raise UsageError(
            "choose exactly one side", hint="git snap resolve PATH --ours|--theirs|--base"
        )
    r = run_resolve(path, chosen[0], force=force)
    _print(
        f"resolved {escape(r.path)} with {r.side} (snapshot {r.snapshot_id[:12]}, "
        f"{'weights restored' if r.action == 'restored' else 'weights already in place'}); "
        "staged: commit to conclude the merge"
    )
    for d in r.dropped:
        _print(f"  dropped (--force): {escape(d)}")
