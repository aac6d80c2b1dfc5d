"""One gitsnap process at a time changes a store: an advisory lock with a timeout.

Commands that write or delete objects, or write checkpoints and pointers
(``save``, ``checkout``, ``fetch``/``pull``, ``gc``, ``resolve``), hold an
exclusive ``flock`` on ``<cache dir>/gitsnap/lock`` while they work. The
lock file lives beside the store it guards, so every worktree of a
repository, and every project sharing a DVC cache, meets the same lock. A
second command waits for it (``GITSNAP_LOCK_TIMEOUT`` seconds, default 60),
then stops with :class:`~gitsnap.errors.Busy` naming the process that holds
it. The kernel drops a lock when its process dies: a killed run never leaves
a stale one. Read-only commands (``status``, ``diff``, ``log``, ``push``)
take no lock: objects are written whole and renamed into place, and ``gc``
keeps every object a snapshot can reach, so a reader never meets half an
object and never loses one it needs.

Re-entrant within a process: ``pull`` (fetch then checkout) takes it once.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from gitsnap.errors import Busy

ENV_TIMEOUT = "GITSNAP_LOCK_TIMEOUT"
DEFAULT_TIMEOUT = 60.0
_POLL = 0.05

_held: dict[str, int] = {}  # lock path -> depth, in this process
_guard = threading.Lock()


def timeout_from_env() -> float:
    text = os.environ.get(ENV_TIMEOUT, "")
    try:
        value = float(text)
    except ValueError:
        return DEFAULT_TIMEOUT
    return value if value >= 0 else DEFAULT_TIMEOUT


@contextlib.contextmanager
def exclusive(path: Path, what: str, timeout: float | None = None) -> Iterator[None]:
    """Hold the lock at ``path`` (created if needed) for the ``with`` block.

    ``what`` names the command for the message another process would see.
    Without a writable folder (a read-only shared cache) nothing can be
    written there either: the block runs unlocked.
    """
    key = os.fspath(path)
    with _guard:
        if key in _held:
            _held[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _guard:
                _held[key] -= 1
        return
    import fcntl

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        yield  # read-only: this command cannot change the store either
        return
    try:
        wait = timeout_from_env() if timeout is None else timeout
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    raise _busy(fd, path, wait) from None
                time.sleep(_POLL)
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {what}\n".encode(), 0)
        with _guard:
            _held[key] = 1
        try:
            yield
        finally:
            with _guard:
                del _held[key]
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _busy(fd: int, path: Path, waited: float) -> Busy:
    try:
        holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        holder = ""
    pid, _, what = holder.partition(" ")
    who = f" (pid {pid}: git snap {what})" if pid.isdigit() and what.isprintable() else ""
    return Busy(
        f"another gitsnap process is working here{who}; waited {waited:g} s for {path}",
        hint=f"wait for it to finish, then run the command again "
        f"({ENV_TIMEOUT}=SECONDS waits longer)",
    )
