"""Small file-system helpers shared by the commands: atomic writes, the umask, temp files.

Temp files of big writes (a restore builds the whole checkpoint under a temp
name, then renames it into place) live in the repository's temp area,
``<git dir>/gitsnap/tmp``: git never stages anything below ``.git``, and a
run killed half-way (``kill -9``, a power cut) leaves its debris where the
next gitsnap command in that repository finds and removes it
(:func:`sweep`). Each run holds an ``flock`` on a marker file listing its
temp names, so a sweep never removes the temp files of a run that is still
going; the kernel drops the lock when the process dies, however it dies.
When the destination is on another filesystem than ``.git`` (a rename cannot
cross filesystems) the temp file goes next to the destination, and the
marker still names it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from gitsnap.errors import DiskFull

CHUNK = 8 * 1024 * 1024
WRITE_PIECE = 1024 * 1024


def copy_range(
    src_fd: int,
    dst_fd: int,
    size: int,
    *,
    src_offset: int = 0,
    dst_offset: int = 0,
    on_step: Callable[[int], None] | None = None,
) -> int:
    """Copy up to ``size`` bytes between files; returns how many (fewer only at the source's end).

    ``copy_file_range`` keeps the bytes in the kernel (a reflink where the
    filesystem can): ~0.5 s of CPU per GiB here, against 1.1-4.6 s for
    ``pwrite`` from Python buffers, whose cost also varied far more from run
    to run. Falls back to ``pread`` + ``pwrite`` where the kernel refuses
    (EXDEV on old kernels, EINVAL/ENOSYS on some filesystems). ``on_step``
    gets the bytes of every step of at most ``CHUNK`` (progress).
    """
    done = 0
    kernel = hasattr(os, "copy_file_range")
    buf: memoryview | None = None
    while done < size:
        want = min(CHUNK, size - done)
        n = 0
        if kernel:
            try:
                n = os.copy_file_range(src_fd, dst_fd, want, src_offset + done, dst_offset + done)
            except OSError:
                kernel = False
            # 0 is the end of the source -- or, on some filesystems (procfs, some
            # FUSE and network mounts), a copy the kernel would not do: read to tell.
            kernel = kernel and n > 0
        if not kernel:
            if buf is None:
                buf = memoryview(bytearray(min(WRITE_PIECE, size)))
            n = os.preadv(src_fd, [buf[: min(len(buf), want)]], src_offset + done)
            view, pos = buf[:n], dst_offset + done
            while view:
                w = os.pwrite(dst_fd, view, pos)
                view, pos = view[w:], pos + w
        if n == 0:
            break
        done += n
        if on_step is not None:
            on_step(n)
    return done


TMP_SUFFIX = ".gitsnap-tmp"
OLD_SUFFIX = ".gitsnap-old"
MARKER_SUFFIX = ".lock"
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
STALE_MARKER_S = 60  # a marker is named within microseconds of being created


def pwrite_all(fd: int, pieces: list[memoryview], pos: int) -> None:
    """Write ``pieces`` one after another at ``pos`` (``pwritev``: one call for many
    small buffers, at most ``IOV_MAX`` each), whatever a call leaves unwritten."""
    limit = min(getattr(os, "IOV_MAX", 1024), 1024)
    pieces = list(pieces)
    while pieces:
        n = os.pwritev(fd, pieces[:limit], pos)
        if n <= 0:
            raise OSError(f"pwritev wrote nothing at offset {pos}")
        pos += n
        k = 0
        while k < len(pieces) and n >= len(pieces[k]):
            n -= len(pieces[k])
            k += 1
        pieces = pieces[k:]
        if n:
            pieces[0] = pieces[0][n:]


def umask() -> int:
    """The process umask (reading it means setting it; it is put back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def is_disk_full(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in FULL_ERRNOS


def disk_full(err: OSError, where: Path | str, untouched: str) -> DiskFull:
    """The error for a write that failed with ENOSPC/EDQUOT: what, where, and what was kept."""
    what = "the disk quota is used up" if err.errno == errno.EDQUOT else "the disk is full"
    return DiskFull(
        f"{where}: {what}; {untouched}",
        hint=f"free some space on the disk holding {where} (df -h shows it), "
        "then run the command again",
    )


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to a temp file next to ``path`` and rename it into place.

    A reader sees the old file or the new one, never a part. ``mode`` is
    narrowed by the umask, as for any new file, but the owner keeps the
    read (and, for an executable mode, run) bits. A full disk is a
    :class:`DiskFull` error and leaves the old file as it was.
    """
    import tempfile  # here, not at the top: a clean status never writes (DESIGN D10)

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    except OSError as err:
        if is_disk_full(err):
            raise disk_full(err, path, "it was left as it was") from None
        raise
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        Path(tmp).chmod((mode & ~umask()) | (mode & 0o500))
        Path(tmp).replace(path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if is_disk_full(err):
            assert isinstance(err, OSError)
            raise disk_full(err, path, "it was left as it was") from None
        raise


# ------------------------------------------------------------------ temp area


def add_lines(path: Path, lines: list[str]) -> bool:
    """Append the ``lines`` that ``path`` (a text file, or absent) lacks; True if it was written.

    ``.gitignore``, ``.gitattributes``, ``info/exclude``: the caller makes
    sure ``path`` is a regular file or absent (:func:`gitsnap.paths.regular_or_absent`).
    """
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    present = set(old.splitlines())
    missing = [line for line in lines if line not in present]
    if not missing:
        return False
    sep = "\n" if old and not old.endswith("\n") else ""
    write_atomic(path, (old + sep + "\n".join(missing) + "\n").encode())
    return True


def git_dir_of(root: Path) -> Path | None:
    """The git dir of work tree ``root`` (``.git``, or where a ``.git`` file points), no git run."""
    dot = root / ".git"
    if dot.is_dir():
        return dot
    try:
        text = dot.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    if text.startswith("gitdir:"):
        target = Path(text[len("gitdir:") :].strip())
        return target if target.is_absolute() else (root / target)
    return None


def temp_area(git_dir: Path) -> Path:
    return git_dir / "gitsnap" / "tmp"


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _ours(path: Path) -> bool:
    """Only names gitsnap gives its temp files are ever removed by a sweep."""
    return path.name.endswith((TMP_SUFFIX, OLD_SUFFIX))


class Scratch:
    """The temp names of one run, listed in a locked marker in the temp area (see module doc).

    Use as a context manager; :meth:`path` gives a temp path on the
    filesystem of a destination. On a clean exit the marker goes; the caller
    removes (or renames away) its temp files itself.
    """

    def __init__(self, area: Path | None) -> None:
        import secrets

        self.area = area
        self.tag = secrets.token_hex(6)
        self._count = 0
        self._marker: int | None = None

    def __enter__(self) -> Scratch:
        if self.area is None:
            return self
        import fcntl
        import tempfile

        try:
            if not self.area.is_dir():
                exclude_temp_names(self.area.parent.parent)
                self.area.mkdir(parents=True, exist_ok=True)
            # Locked before it gets the name a sweep looks at: a sweep never sees it unlocked.
            fd, tmp = tempfile.mkstemp(dir=self.area, prefix=".marker.")
            fcntl.flock(fd, fcntl.LOCK_EX)
            Path(tmp).replace(self.area / (self.tag + MARKER_SUFFIX))
            self._marker = fd
        except OSError:
            self.area = None  # a read-only .git: temp files go next to their destination
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._marker is not None and self.area is not None:
            (self.area / (self.tag + MARKER_SUFFIX)).unlink(missing_ok=True)
            os.close(self._marker)
            self._marker = None

    def path(self, dest: Path, suffix: str = TMP_SUFFIX) -> Path:
        """A fresh temp name that can be renamed onto ``dest`` (whose parent must exist)."""
        self._count += 1
        name = f"{self.tag}-{self._count}.{dest.name[:100]}{suffix}"
        if self.area is not None:
            try:
                same = self.area.stat().st_dev == dest.parent.stat().st_dev
            except OSError:
                same = False
            if same:
                return self.area / name
        tmp = dest.parent / f".{name}"
        if self._marker is not None:
            os.write(self._marker, (str(tmp) + "\n").encode("utf-8", "surrogateescape"))
        return tmp


def common_git_dir(git_dir: Path) -> Path:
    """The git dir all worktrees of a repository share (``git rev-parse --git-common-dir``).

    Read from a linked worktree's ``commondir`` file, as git does, without a
    git process: the hooks and a clean ``status`` pass here (DESIGN D10).
    """
    try:
        text = (git_dir / "commondir").read_text(encoding="utf-8").strip()
    except OSError:
        return git_dir
    if not text:
        return git_dir
    common = Path(text) if Path(text).is_absolute() else git_dir / text
    return Path(os.path.normpath(common))


EXCLUDE_LINES = (f"*{TMP_SUFFIX}", f"*{OLD_SUFFIX}")


def exclude_temp_names(git_dir: Path) -> None:
    """List gitsnap's temp names in ``info/exclude``: ``git add -A`` never stages one.

    Most temp files live below ``.git`` anyway; this covers the few written
    next to their destination (a pointer's atomic write, another filesystem).
    """
    exclude = common_git_dir(git_dir) / "info" / "exclude"
    # Read-only: temp files mostly live below .git, where git never looks.
    with contextlib.suppress(OSError, DiskFull):
        add_lines(exclude, list(EXCLUDE_LINES))


def sweep(area: Path) -> int:
    """Remove what killed runs left in temp area ``area``; return how many names went.

    A marker nobody holds locked belongs to a dead run: the temp files it
    names (only names ending in gitsnap's temp suffixes) and the temp files
    in the area that carry its tag are removed, then the marker. Never raises:
    a read-only repository just keeps its debris.
    """
    import fcntl

    removed = 0
    try:
        entries = sorted(os.scandir(area), key=lambda e: e.name)
    except OSError:
        return 0
    live: set[str] = set()
    for entry in entries:
        if not entry.name.endswith(MARKER_SUFFIX):
            continue
        tag = entry.name[: -len(MARKER_SUFFIX)]
        try:
            fd = os.open(entry.path, os.O_RDWR)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                live.add(tag)  # its run is still going
                continue
            with os.fdopen(os.dup(fd), "rb") as f:
                listed = f.read(1 << 20).decode("utf-8", "surrogateescape").splitlines()
            for line in listed:
                path = Path(line)
                if line and path.is_absolute() and _ours(path) and os.path.lexists(path):
                    _remove(path)
                    removed += 1
            Path(entry.path).unlink(missing_ok=True)
        finally:
            os.close(fd)
    for entry in entries:
        name = entry.name
        if name.startswith(".marker."):
            # A run killed between creating its marker and naming it: old and unheld, it goes.
            try:
                if time.time() - entry.stat(follow_symlinks=False).st_mtime > STALE_MARKER_S:
                    Path(entry.path).unlink(missing_ok=True)
            except OSError:
                pass
            continue
        if name.endswith(MARKER_SUFFIX) or not _ours(Path(name)):
            continue
        if name.split("-", 1)[0] in live:
            continue
        _remove(Path(entry.path))
        removed += 1
    return removed


def sweep_repository(root: Path, git_dir: Path | None = None) -> None:
    """:func:`sweep` the temp area of the work tree at ``root``, if there is one (cheap if not)."""
    gd = git_dir if git_dir is not None else git_dir_of(root)
    if gd is None:
        return
    area = temp_area(gd)
    if area.is_dir():
        sweep(area)
