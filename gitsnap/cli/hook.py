"""``git snap hook NAME ARGS...``: what the hook shims run, answered without typer.

The shims run it on every commit, push, checkout and merge, so it skips
typer's start-up and renders without the render package (DESIGN D10: a
checkout with nothing to restore must stay well under 0.3 s). It runs
through the same funnel as every command, each message's first line tagged
``gitsnap:`` because git interleaves the output of several programs there.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from gitsnap.cli import funnel
from gitsnap.cli.invocation import Invocation
from gitsnap.errors import UsageError

if TYPE_CHECKING:
    from gitsnap.render.text import TransferProgress

TAG = "gitsnap: "
# git's work is done when these run: they warn, never fail it.
_AFTER = ("post-checkout", "post-merge", "post-commit", "post-rewrite", "restore")


def route(inv: Invocation) -> funnel.Route:
    """The hook ``inv`` names (``hook NAME ARGS...``); its exit code is what git sees."""
    words = inv.words[1:]  # a hook takes git's arguments verbatim, a "--" included
    name, args = (words[0], words[1:]) if words else ("", [])

    def work() -> int:
        from gitsnap import hooks

        if name in ("", "-h", "--help"):
            usage = f"git snap hook NAME [ARGS]...  (NAME: {', '.join(hooks.NAMES)})"
            if not name:
                raise UsageError("which hook?", hint=usage)
            sys.stdout.write(f"usage: {usage}\n")
            return 0
        stdin = b""
        if hooks.reads_stdin(name) and not sys.stdin.isatty():
            stdin = sys.stdin.buffer.read()
        result = hooks.run(name, args, stdin=stdin, progress=_progress)
        for m in result.messages:
            funnel.say("" if m.level == "info" else m.level, m.text, m.hint, tag=TAG)
        return result.exit_code

    return funnel.Route(
        work, tag=TAG, what=f"the {name} hook", error_exit=0 if name in _AFTER else None
    )


def _progress() -> TransferProgress | None:
    from gitsnap.cli.output import progress

    return progress("gitsnap upload")
