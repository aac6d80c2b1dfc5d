"""The one error funnel: every route's exceptions become one wording and one exit code.

Wording (on stderr)::

    error: <what went wrong>
    hint: <the fix>

Inside a git hook, the first line is tagged ``gitsnap: `` (git interleaves
the output of several programs there, as ``remote:`` lines do). Exit codes
(DESIGN §3, :mod:`gitsnap.errors`): a :class:`~gitsnap.errors.GitsnapError`
its own ``exit_code`` (2 usage, 3 gitsnap error, 128 not a git repository),
130 when interrupted (^C), 141 when the reader of stdout went away
(``| head``), :data:`INTERNAL_ERROR` for anything unexpected (a bug). With
the traceback switch (``git snap --traceback`` or ``GITSNAP_TRACEBACK=1``,
which the hooks git runs inherit) the traceback is printed first; the
message and the exit code stay the same.

typer-free: the hooks and the fast paths run through it before typer is
imported.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

from gitsnap.cli.invocation import TRACEBACK_ENV
from gitsnap.errors import GitsnapError

INTERRUPTED = 130  # 128 + SIGINT, as a shell reports ^C
# A bug in gitsnap, distinct from 3 (an error gitsnap understood and explained):
# sysexits.h's EX_SOFTWARE, "an internal software error has been detected".
INTERNAL_ERROR = 70
BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for git log | head


def say(level: str, text: str, hint: str = "", *, tag: str = "") -> None:
    """Write ``LEVEL: TEXT`` (and ``hint: HINT``) to stderr: the one wording of every message."""
    label = f"{level}: " if level else ""
    text, hint = clean(text), clean(hint)
    sys.stderr.write(f"{tag}{label}{text}\n" + (f"hint: {hint}\n" if hint else ""))


def clean(text: str) -> str:
    """A message that may quote a pointer or checkpoint (a tensor name), escaped for stderr.

    Line breaks stay: some messages list items one per line.
    """
    if text.isascii() and text.isprintable():
        return text  # the common case: nothing to escape, nothing to import
    from gitsnap.render.escape import escape

    return "\n".join(escape(line) for line in text.split("\n"))


@dataclass(frozen=True)
class Route:
    """What a route runs and how its failures read.

    ``work`` returns the exit code; ``what`` names the failing part in an
    internal error (``the pre-commit hook``); ``tag`` starts each message's
    first line; ``error_exit`` replaces the exit code of an error (a hook that
    runs after git's work is done warns, never fails it).
    """

    work: Callable[[], int]
    tag: str = ""
    what: str = ""
    error_exit: int | None = None


def run(route: Route, *, traceback: bool, rerun: str) -> int:
    """Run ``route``; turn what it raises into the one wording and an exit code.

    ``rerun`` is the command line the internal-error hint tells the user to
    repeat with ``GITSNAP_TRACEBACK=1``.
    """
    tag = route.tag
    try:
        return route.work()
    except GitsnapError as err:
        _traceback(traceback)
        say("error", str(err), err.hint, tag=tag)
        return err.exit_code if route.error_exit is None else route.error_exit
    except KeyboardInterrupt:
        _traceback(traceback)
        say("", "interrupted", tag=tag)
        return INTERRUPTED
    except BrokenPipeError:  # the reader went away (git snap log | head): nothing to tell
        _drop_stdout()
        return BROKEN_PIPE
    except Exception as exc:  # a bug: still one readable line, and a way to see more
        _traceback(traceback)
        where = f" in {route.what}" if route.what else ""
        say(
            "error",
            f"internal error{where}: {type(exc).__name__}: {exc}",
            "this is a bug in gitsnap: run it again with the traceback shown "
            f"({TRACEBACK_ENV}=1 {rerun}) and report what it prints",
            tag=tag,
        )
        return INTERNAL_ERROR if route.error_exit is None else route.error_exit


def _drop_stdout() -> None:
    # Point stdout at /dev/null, or the interpreter's last flush of the
    # buffered rest fails again on the closed pipe ("Exception ignored ...").
    import contextlib
    import os

    # ValueError: no file descriptor behind stdout (an in-process caller's capture)
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _traceback(enabled: bool) -> None:
    if enabled:
        import traceback

        traceback.print_exc()
