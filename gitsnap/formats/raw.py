"""Any other file: opaque bytes, stored as one segment (content-defined chunking comes later)."""

from __future__ import annotations

from pathlib import Path

from gitsnap.formats.base import Layout, Segment

NAME = "raw"


def read_layout(path: Path) -> Layout:
    size = path.stat().st_size
    return Layout(NAME, size, [Segment(0, size, "file")], {})
