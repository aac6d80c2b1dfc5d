"""``git snap``'s entry point: split the command line once, route it, funnel its errors.

Building the typer app (importing typer and click, creating the command
tree) costs 60-90 ms, a third of a clean status's budget and most of a no-op
hook's (DESIGN D12), so a small routing table answers the paths that run
most often before typer is imported:

==========================  ===============================================
``hook NAME ARGS...``       the hook shims (:mod:`gitsnap.cli.hook`)
``status`` / ``status --json``  a plain status (:func:`gitsnap.cli.output.local_status`)
``diff ARGS [-- PATH...]``  a diff whose options are plainly well formed
                            (:func:`gitsnap.cli.diff.parse_fast`)
==========================  ===============================================

Everything else, help and usage errors included, goes to the typer app in
:mod:`gitsnap.cli.commands`. Every route runs inside the one error funnel
(:mod:`gitsnap.cli.funnel`), which maps exceptions to exit codes: 0 ok,
1 differences / failed check (only where asked), 2 usage, 3 a gitsnap error
(message + ``hint:``), 128 not in a git repository, 130 interrupted,
70 an internal error.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Sequence

from gitsnap.cli import funnel
from gitsnap.cli.invocation import Invocation


def _status(inv: Invocation) -> funnel.Route | None:
    if inv.rest is not None or inv.args not in (("status",), ("status", "--json")):
        return None
    from gitsnap.cli.output import local_status

    return funnel.Route(lambda: local_status([], json_=len(inv.args) == 2))


def _diff(inv: Invocation, *, exit_now: bool) -> funnel.Route | None:
    from gitsnap.cli import diff

    opts = diff.parse_fast(inv.args[1:])
    if opts is None:
        return None

    def work() -> int:
        code = diff.run(opts, inv.rest)
        if exit_now:
            _exit_now(code)
        return code

    return funnel.Route(work)


def _exit_now(code: int) -> None:
    """End the process at once: the diff's output is flushed, its threads joined, files closed.

    Python's own shutdown (tearing down ~400 modules) costs ~20 ms of a
    structural diff's 0.4 s budget, with nothing left to do.
    """
    import os

    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a reader that went away (git snap diff | head): nothing to tell
        pass
    os._exit(code)


def _hook(inv: Invocation) -> funnel.Route:
    from gitsnap.cli import hook

    return hook.route(inv)


def _typer(inv: Invocation) -> int:
    """Every other command line: the typer app parses it, runs one command, returns its code."""
    import typer

    from gitsnap.cli.commands import app

    try:
        # Without standalone mode click returns (not raises) a typer.Exit's code.
        code = app(args=list(inv.args), prog_name="git snap", standalone_mode=False, obj=inv)
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:  # click's word for ^C at a prompt
        raise KeyboardInterrupt from None
    except typer.TyperException as exc:  # click's usage errors, worded as ours
        raise _usage_error(exc) from exc
    if code == funnel.INTERRUPTED:  # typer's word for ^C (no command exits 130 itself)
        raise KeyboardInterrupt
    return code if isinstance(code, int) and not isinstance(code, bool) else 0


def _usage_error(exc: Exception) -> Exception:
    from gitsnap.errors import UsageError

    message = getattr(exc, "format_message", lambda: str(exc))()
    ctx = getattr(exc, "ctx", None)
    if ctx is None:
        return UsageError(message, hint="git snap -h")
    usage = ctx.get_usage().removeprefix("Usage: ")
    return UsageError(message, hint=f"{usage}  (more: {ctx.command_path} -h)")


def _refuse_nul() -> int:
    from gitsnap.errors import UsageError

    raise UsageError("an argument contains a NUL byte", hint="no path or revision can hold one")


# The routing table (DESIGN D12): a command's fast route, or None when the
# command line is not its plain form; then typer parses it.
_ROUTES: dict[str, Callable[[Invocation, bool], funnel.Route | None]] = {
    "hook": lambda inv, _: _hook(inv),
    "status": lambda inv, _: _status(inv),
    "diff": lambda inv, exit_now: _diff(inv, exit_now=exit_now),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``git snap ARGV`` and return its exit code.

    Without ``argv`` this is the process's own command line (the console
    script), which a fast diff may end with ``os._exit`` once its output is
    written; a caller that passes ``argv`` always gets the code back.
    """
    inv = Invocation.parse(sys.argv[1:] if argv is None else argv)
    fast = _ROUTES.get(inv.command or "")
    route = fast(inv, argv is None) if fast else None
    if any("\0" in word for word in inv.words):  # only main(argv) can pass one: no OS argv can
        route = funnel.Route(_refuse_nul)
    return funnel.run(
        route or funnel.Route(lambda: _typer(inv)),
        traceback=inv.traceback,
        rerun=shlex.join(["git", "snap", *inv.words]),
    )


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
