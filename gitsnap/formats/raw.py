"""Any other file: content-defined chunks (FastCDC, see :mod:`gitsnap.formats.cdc`).

A file up to ``cdc.MIN`` bytes (a config.json, a tokenizer file) is one
``file`` segment. A larger one is cut into ``chunk`` segments of about
``cdc.AVG`` bytes at boundaries chosen by its content, so a small edit or an
insertion in the middle of a big file stores about one new chunk. Nothing in
the file is interpreted: this is also how legacy (non-zip) PyTorch pickles
are stored -- as opaque bytes, never loaded.
"""

from __future__ import annotations

import os
from pathlib import Path

from gitsnap.formats import cdc
from gitsnap.formats.base import Layout, Segment

NAME = "raw"


def segments(fd: int, start: int, end: int, *, role: str = "chunk") -> list[Segment]:
    """Segments tiling ``[start, end)`` of an open file: one if small, else CDC chunks."""
    if end - start <= cdc.MIN:
        return [Segment(start, end - start, role)] if end > start else []
    return [Segment(off, size, role) for off, size in cdc.chunk_fd(fd, start, end)]


def read_layout(path: Path, name: str = NAME) -> Layout:
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size <= cdc.MIN:
            return Layout(name, size, [Segment(0, size, "file")], {})
        return Layout(name, size, segments(fd, 0, size), {})
    finally:
        os.close(fd)
