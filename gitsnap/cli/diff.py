"""``git snap diff``: its options, the fast parser of plain arguments, and the run.

``git snap diff`` is a hot path (DESIGN D12): building typer's command tree
costs ~30 ms of a structural diff's 0.4 s budget, so :func:`parse_fast` reads
plainly well-formed arguments by hand and :mod:`gitsnap.cli.main` runs the
diff without typer. Anything else (help, a typo, a bad number) is left to
typer, which words the usage error. ``tests/cli/test_diff_parse.py`` proves
with a property over generated argument lists that whatever this parser
accepts, typer parses to the same parameters.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from gitsnap.errors import UsageError


class DiffFormat(str, Enum):
    table = "table"
    json = "json"
    markdown = "markdown"
    html = "html"


@dataclass
class DiffOptions:
    """The diff command's parameters, as typer names them (the property test compares them)."""

    args: list[str] = field(default_factory=list)
    values: bool = False
    fmt: DiffFormat = DiffFormat.table
    json_: bool = False
    top: int = 10
    depth: int | None = None
    all_: bool = False
    fail_on: list[str] = field(default_factory=list)
    exit_code: bool = False
    allow_missing: bool = False


_FLAGS = {"--values": "values", "--json": "json_", "--all": "all_", "--exit-code": "exit_code"}
_FLAGS |= {"--allow-missing": "allow_missing"}
_INTS = {"--top": "top", "--depth": "depth"}


def parse_fast(args: Sequence[str]) -> DiffOptions | None:
    """The options of ``git snap diff ARGS`` (words before any ``--``), or None: typer parses.

    Only what typer reads the same way is accepted: the options above
    (``--opt value`` or ``--opt=value``, a value not starting with ``-``) and
    revisions.
    """
    opts = DiffOptions()
    words = iter(args)
    for arg in words:
        if not arg.startswith("-"):
            opts.args.append(arg)
            continue
        name, eq, value = arg.partition("=")
        if name in _FLAGS and not eq:
            setattr(opts, _FLAGS[name], True)
            continue
        if not eq:
            value = next(words, "-")
        if value.startswith("-"):
            return None
        if name == "--format" and value in DiffFormat.__members__:
            opts.fmt = DiffFormat(value)
        elif name == "--fail-on":
            opts.fail_on.append(value)
        elif name in _INTS and value.isascii() and value.isdigit() and int(value) >= 1:
            setattr(opts, _INTS[name], int(value))
        else:
            return None
    return opts


def split_revisions(args: Sequence[str], rest: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """(revisions, paths) of ``diff ARGS [-- REST]``.

    After ``--`` everything is a path and before it everything a revision;
    without ``--``, like git: a word is a path if it exists (or its pointer does).
    When a word is ``REV:PATH``, every word before ``--`` is one side of the
    comparison (``REV:PATH``, or a work-tree ``PATH``):
    :func:`gitsnap.commands.diff.diff` compares the two checkpoints they name.
    """
    from gitsnap.revisions import split_rev_path

    if rest is not None:
        revs, paths = list(args), list(rest)
    elif any(split_rev_path(w) is not None and not _exists(w) for w in args):
        revs, paths = list(args), []
    else:
        revs, paths = [], list(args)
        while paths and len(revs) < 2 and not _exists(paths[0]):
            revs.append(paths.pop(0))
    if len(revs) > 2:
        raise UsageError(
            f"at most two revisions, got {', '.join(revs)}",
            hint="git snap diff [REV_A[:PATH] [REV_B[:PATH]]] [-- PATH...]",
        )
    return revs, paths


def _exists(word: str) -> bool:
    return Path(word).exists() or Path(word + ".snap").exists()


def run(opts: DiffOptions, rest: Sequence[str] | None) -> int:
    """Compare, render, and return the exit code.

    1 when the metric gate failed, or with ``--exit-code`` when anything changed.
    """
    import gc
    import os

    from gitsnap import api
    from gitsnap.cli import funnel
    from gitsnap.cli.output import echo, report_problems

    # A diff allocates tens of thousands of small, acyclic objects; the cyclic
    # collector would rescan them all again and again (~10% of a 2,000-tensor
    # diff). The process ends right after.
    gc.disable()
    revs, paths = split_revisions(opts.args, rest)
    rev_a = revs[0] if revs else None
    rev_b = revs[1] if len(revs) > 1 else None
    result = api.diff(
        rev_a, rev_b, paths, values=opts.values, depth=opts.depth, fail_on=opts.fail_on,
        allow_missing=opts.allow_missing,
    )  # fmt: skip
    kind = "json" if opts.json_ else opts.fmt.value
    if kind == "json":
        from gitsnap.render import json as render_json

        echo(render_json.dumps_diff(render_json.diff_dict(result)))
    elif kind == "markdown":
        from gitsnap.render import markdown

        sys.stdout.write(markdown.diff(result, top=opts.top))
    elif kind == "html":
        from gitsnap.render import html

        sys.stdout.write(html.diff(result, top=opts.top))
    else:
        from gitsnap.render import table

        width = table.width_for(sys.stdout)  # None when piped: full width, as git
        color = width is not None and not os.environ.get("NO_COLOR")
        echo(table.diff(result, top=opts.top, all_tensors=opts.all_, color=color, width=width))
    for check in result.gate:
        state = "FAILED" if check.failed else ("ok" if check.evaluated else "not checked")
        sys.stderr.write(f"gate {state}: {funnel.clean(check.message)}\n")
    if report_problems(result.problems):
        return 3  # the other checkpoints were compared; these could not be
    if result.failed:
        failed = [c.condition for c in result.gate if c.failed]
        sys.stderr.write(f"error: metric gate failed: {funnel.clean(', '.join(failed))}\n")
        return 1
    return 1 if opts.exit_code and result.changed else 0
