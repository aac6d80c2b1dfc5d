"""The interface every checkpoint format implements.

A format reader turns a file into an ordered list of byte :class:`Segment` s
that tile the file exactly (DESIGN D1). Segments that hold one tensor carry a
:class:`TensorInfo`; the others (headers, gaps, chunks) are plain blobs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str  # safetensors spelling: F32, BF16, F8_E4M3, I64, BOOL, ...
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Segment:
    offset: int
    size: int
    role: str  # "tensor", "header", "gap", "chunk", "file"
    tensor: TensorInfo | None = None


@dataclass(frozen=True)
class Layout:
    """What a format reader found: the segments in file order, plus format metadata."""

    format: str
    size: int
    segments: list[Segment]
    metadata: dict[str, str]
