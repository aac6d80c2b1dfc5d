"""The interface every checkpoint format implements.

A format reader turns a file into an ordered list of byte :class:`Segment` s
that tile the file exactly (DESIGN D1). Segments that hold one tensor carry a
:class:`TensorInfo`; the others (headers, gaps, chunks) are plain blobs.

Some tensors cannot be a segment of their own: in a PyTorch file two tensors
may share one storage (tied weights, slices, a transposed view). Those are
listed as :class:`View` s: they name the bytes they span, which other
segments already hold, and take no part in reassembly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str  # safetensors spelling: F32, BF16, F8_E4M3, I64, BOOL, ...
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Segment:
    offset: int
    size: int
    role: str  # "tensor", "header", "gap", "chunk", "file", "storage", "pickle", "zip"
    tensor: TensorInfo | None = None


@dataclass(frozen=True)
class View:
    """A tensor whose bytes lie inside other segments: ``[offset, offset + size)`` of the file.

    ``stride`` (in elements) is set only when the tensor is not contiguous;
    ``size`` then spans from its first to its last element.
    """

    tensor: TensorInfo
    offset: int
    size: int
    stride: tuple[int, ...] | None = None


@dataclass(frozen=True)
class PickleGlobal:
    """A ``module.qualname`` a pickle in the file names, and what loading it would do.

    ``kind`` is one of ``weights_only``, ``data``, ``unsafe``, ``unknown``
    (see :mod:`gitsnap.formats.pickle_globals`).
    """

    name: str
    kind: str


@dataclass(frozen=True)
class Layout:
    """What a format reader found: the segments in file order, plus format metadata.

    ``metadata`` holds scalars only (str, int, float, bool, None), keyed by
    flat dotted names: safetensors ``__metadata__``, or the non-tensor leaves
    of a PyTorch checkpoint (``epoch``, ``optimizer.param_groups.0.lr``).
    ``pickle_globals`` lists, for a file that holds pickles (PyTorch zip and
    legacy files), every global they name, sorted by name, each judged.
    """

    format: str
    size: int
    segments: list[Segment]
    metadata: dict[str, Any]
    views: list[View] = field(default_factory=list)
    pickle_globals: tuple[PickleGlobal, ...] = ()


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Element strides of a C-contiguous tensor of ``shape`` (a zero dimension counts as 1)."""
    out: list[int] = []
    acc = 1
    for d in reversed(shape):
        out.append(acc)
        acc *= max(d, 1)
    return tuple(reversed(out))
