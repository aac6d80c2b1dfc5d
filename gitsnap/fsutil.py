"""Small file-system helpers shared by the commands: atomic writes and the process umask."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def umask() -> int:
    """The process umask (reading it means setting it; it is put back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to a temp file next to ``path`` and rename it into place.

    A reader sees the old file or the new one, never a part. ``mode`` is
    narrowed by the umask, as for any new file, but the owner keeps the
    read (and, for an executable mode, run) bits.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".gitsnap-tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        Path(tmp).chmod((mode & ~umask()) | (mode & 0o500))
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
