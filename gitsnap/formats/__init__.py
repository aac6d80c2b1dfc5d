"""Format registry: pick a reader by content (magic bytes / structure), then by extension.

A file named ``*.safetensors`` must parse as safetensors (a malformed one is an
error, not silently stored as opaque bytes); any file whose first bytes look
like a safetensors header is read as one whatever its name.
"""

from __future__ import annotations

from pathlib import Path

from gitsnap.formats import raw, safetensors
from gitsnap.formats.base import Layout, Segment, TensorInfo

__all__ = ["Layout", "Segment", "TensorInfo", "read_layout"]


def read_layout(path: Path) -> Layout:
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(16)
    if path.suffix == ".safetensors" or safetensors.sniff(head, size):
        return safetensors.read_layout(path)
    return raw.read_layout(path)
