"""NumPy ``.npz`` archives: each stored array is a tensor segment.

An ``.npz`` is a zip of ``<name>.npy`` members. ``np.savez`` stores them
uncompressed, so an array's bytes sit verbatim in the file after its ``.npy``
header: each array becomes one tensor segment (name = member name without
``.npy``), and its local zip header plus ``.npy`` header one small
``header`` segment; the central directory is a ``zip`` segment.
``np.savez_compressed`` deflates the members: their bytes then change
wholesale with any element, so they are stored as content-defined chunks of
the compressed stream and not listed as tensors.
Arrays of Python objects (``dtype=object``, stored as a pickle), structured
and big-endian arrays are kept as opaque ``npy`` segments: never unpickled,
never interpreted -- but an object array's pickle is run by gitsnap's pickle
VM (which calls nothing) so that the globals it names are recorded and
judged, as ``np.load(allow_pickle=True)`` would run them. The ``.npy``
header is parsed with :func:`ast.literal_eval`, which evaluates literals only.
"""

from __future__ import annotations

import ast
import math
import os
import struct
from pathlib import Path

from gitsnap.errors import FormatError, PickleError
from gitsnap.formats import _zip, pickle_globals, pickle_vm, raw
from gitsnap.formats._zip import Member
from gitsnap.formats.base import Layout, PickleGlobal, Segment, TensorInfo

NAME = "npz"
_NPY_MAGIC = b"\x93NUMPY"
MAX_NPY_HEADER = 1 << 20
MAX_OBJECT_PICKLE = 64 * 1024 * 1024

# numpy type code (after the byte-order mark) -> (safetensors dtype name, itemsize)
_DTYPES = {
    "f8": ("F64", 8), "f4": ("F32", 4), "f2": ("F16", 2),
    "i8": ("I64", 8), "i4": ("I32", 4), "i2": ("I16", 2), "i1": ("I8", 1),
    "u8": ("U64", 8), "u4": ("U32", 4), "u2": ("U16", 2), "u1": ("U8", 1),
    "b1": ("BOOL", 1), "c8": ("C64", 8),
}  # fmt: skip


def matches(members: list[Member]) -> bool:
    return bool(members) and all(m.name.endswith(".npy") for m in members)


def npy_header(fd: int, member: Member) -> tuple[int, TensorInfo | None]:  # noqa: PLR0911
    """(bytes of the ``.npy`` header, tensor info or None unless a plain numeric array)."""
    head = os.pread(fd, min(member.size, 12), member.data_offset)
    if len(head) < 10 or not head.startswith(_NPY_MAGIC):
        return 0, None
    major = head[6]
    if major == 1:
        (hlen,) = struct.unpack("<H", head[8:10])
        pre = 10
    elif major in (2, 3) and len(head) >= 12:
        (hlen,) = struct.unpack("<I", head[8:12])
        pre = 12
    else:
        return 0, None
    if hlen > MAX_NPY_HEADER or pre + hlen > member.size:
        return 0, None
    text = os.pread(fd, hlen, member.data_offset + pre)
    try:
        header = ast.literal_eval(text.decode("utf-8" if major == 3 else "latin1"))
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError):
        return 0, None
    if not isinstance(header, dict):
        return 0, None
    descr, shape = header.get("descr"), header.get("shape")
    if not isinstance(descr, str) or not isinstance(shape, tuple):
        return pre + hlen, None
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        return pre + hlen, None
    order, code = descr[:1], descr[1:]
    kind = _DTYPES.get(code)
    if kind is None or order not in ("<", "|") or (order == "|" and kind[1] != 1):
        return pre + hlen, None
    name = member.name[: -len(".npy")]
    if math.prod(shape) * kind[1] != member.size - pre - hlen:
        return pre + hlen, None
    return pre + hlen, TensorInfo(name, kind[0], tuple(shape))


def _object_pickle(fd: int, member: Member, path: Path) -> bytes | None:
    """The pickle of an object array (``descr`` ``|O``), inflated with a bound; else None."""
    head = _zip.read_head(fd, member, 12 + MAX_NPY_HEADER)
    if not head.startswith(_NPY_MAGIC) or len(head) < 10:
        return None
    if head[6] == 1:
        (hlen,) = struct.unpack("<H", head[8:10])
        pre = 10
    elif head[6] in (2, 3) and len(head) >= 12:
        (hlen,) = struct.unpack("<I", head[8:12])
        pre = 12
    else:
        return None
    if pre + hlen > len(head):
        return None
    try:
        header = ast.literal_eval(head[pre : pre + hlen].decode("latin1"))
    except (ValueError, SyntaxError, MemoryError, RecursionError, UnicodeDecodeError):
        return None
    if not isinstance(header, dict) or header.get("descr") != "|O":
        return None
    # Only an object array's bytes are read whole: they are a pickle to judge.
    return _zip.read_member(fd, member, MAX_OBJECT_PICKLE + pre + hlen, path)[pre + hlen :]


def _judge(fd: int, member: Member, path: Path, found: dict[str, PickleGlobal]) -> None:
    if not member.name.endswith(".npy"):
        return
    data = _object_pickle(fd, member, path)
    if data is None:
        return
    try:
        result = pickle_vm.run(data)
    except PickleError as exc:
        raise FormatError(
            f"{path}: the object array {member.name!r} holds a malformed pickle: {exc}",
            hint="write the archive again with np.savez (or without object arrays)",
        ) from None
    for pg in pickle_globals.judge(result):
        found.setdefault(pg.name, pg)


def read_layout(path: Path, fd: int, size: int, members: list[Member]) -> Layout:
    pieces: list[Segment] = []
    found: dict[str, PickleGlobal] = {}
    for m in members:
        if m.stored:
            hlen, info = npy_header(fd, m)
            if info is not None:
                # The member's local zip header and its .npy header: one small segment.
                pieces.append(
                    Segment(m.header_offset, m.data_offset + hlen - m.header_offset, "header")
                )
                pieces.append(Segment(m.data_offset + hlen, m.size - hlen, "tensor", info))
            else:
                pieces += raw.segments(fd, m.data_offset, m.end, role="npy")
                _judge(fd, m, path, found)
        else:
            pieces += raw.segments(fd, m.data_offset, m.end, role="chunk")
            _judge(fd, m, path, found)
    segments: list[Segment] = []
    pos = 0
    for seg in [*pieces, Segment(size, 0, "end")]:
        segments += raw.segments(fd, pos, seg.offset, role="zip")
        if seg.role != "end":
            segments.append(seg)
        pos = seg.offset + seg.size
    globals_ = tuple(sorted(found.values(), key=lambda pg: pg.name))
    return Layout(NAME, size, segments, {}, [], globals_)
