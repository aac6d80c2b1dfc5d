"""safetensors: the header is one segment, then one segment per tensor in offset order.

The header is parsed with bounds checks before any offset is trusted
(DESIGN D9): its length must fit in the file and under a cap, every tensor's
``data_offsets`` must be ordered, inside the data area, agree with
dtype x shape, and not overlap another tensor. Holes and trailing bytes (the
reference library rejects them, but a file may have them) become ``gap``
segments, so reassembly stays byte-exact.

Hostile headers: integers longer than ``MAX_INT_DIGITS`` digits are refused
while parsing (no 5,000-digit number reaches ``int``), and nesting deeper
than the JSON parser's recursion guard (a header is three levels deep) is a
:class:`FormatError`, not a crash.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

from gitsnap.errors import FormatError
from gitsnap.formats.base import Layout, Segment, TensorInfo

NAME = "safetensors"
MAX_HEADER = 100 * 1024 * 1024  # the reference implementation's limit
ITEM_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32, "I64": 64, "U64": 64, "F64": 64,
    "C64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}  # fmt: skip


MAX_INT_DIGITS = 20  # offsets and dimensions fit in 64 bits


class _BadNumber(ValueError):
    pass


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _BadNumber(f"an integer of {len(text)} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _constant(text: str) -> float:
    raise _BadNumber(f"{text} is not JSON")


def sniff(head: bytes, size: int) -> bool:
    """Content test: an 8-byte little-endian length that fits, then a JSON object."""
    if len(head) < 9 or size < 10:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 2 <= n <= min(MAX_HEADER, size - 8) and head[8:9] == b"{"


def _fail(path: Path, what: str) -> FormatError:
    return FormatError(
        f"{path}: not a valid safetensors file: {what}",
        hint="the file may be truncated or still being written; re-export it "
        "(safetensors.torch.save_file) and save again",
    )


def read_layout(path: Path) -> Layout:
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        f.seek(0)
        if size < 8:
            raise _fail(path, f"file is {size} bytes, too short for a header")
        (n,) = struct.unpack("<Q", f.read(8))
        if n > MAX_HEADER:
            raise _fail(path, f"header length {n} exceeds the {MAX_HEADER}-byte limit")
        if 8 + n > size:
            raise _fail(path, f"header length {n} runs past the end of the file ({size} bytes)")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"), parse_int=_int, parse_constant=_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, _BadNumber) as exc:
        raise _fail(path, f"header is not valid JSON ({exc})") from None
    except RecursionError:
        # json's C scanner guards its recursion: a deep header ends here, never in a crash.
        raise _fail(path, "header nests too deeply (a safetensors header is 3 levels)") from None
    if not isinstance(header, dict):
        raise _fail(path, "header is not a JSON object")
    data_start = 8 + n
    data_len = size - data_start
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise _fail(path, "__metadata__ must map strings to strings")
    tensors: list[tuple[int, int, TensorInfo]] = []
    for name, info in header.items():
        tensors.append(_tensor(path, name, info, data_len))
    tensors.sort(key=lambda t: (t[0], t[1]))
    segments = [Segment(0, data_start, "header")]
    pos = 0
    prev = None
    for begin, end, info in tensors:
        if begin < pos:
            raise _fail(
                path, f"tensor {info.name!r} overlaps tensor {prev!r} (offset {begin} < {pos})"
            )
        if begin > pos:
            segments.append(Segment(data_start + pos, begin - pos, "gap"))
        segments.append(Segment(data_start + begin, end - begin, "tensor", info))
        pos, prev = end, info.name
    if pos < data_len:
        segments.append(Segment(data_start + pos, data_len - pos, "gap"))
    return Layout(NAME, size, segments, dict(sorted(metadata.items())))


def _tensor(path: Path, name: str, info: Any, data_len: int) -> tuple[int, int, TensorInfo]:
    if not isinstance(info, dict):
        raise _fail(path, f"entry {name!r} is not an object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(dtype, str):
        raise _fail(path, f"tensor {name!r} has no dtype")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise _fail(path, f"tensor {name!r} has a bad shape {shape!r}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets)
    ):
        raise _fail(path, f"tensor {name!r} has bad data_offsets {offsets!r}")
    begin, end = offsets
    if begin > end:
        raise _fail(path, f"tensor {name!r} has out-of-order data_offsets [{begin}, {end}]")
    if end > data_len:
        raise _fail(
            path,
            f"tensor {name!r} ends at byte {end} of a {data_len}-byte data area (past end of file)",
        )
    bits = ITEM_BITS.get(dtype)
    if bits is not None:
        expected = (math.prod(shape) * bits + 7) // 8
        if end - begin != expected:
            raise _fail(
                path,
                f"tensor {name!r}: {dtype}{shape} needs {expected} bytes, "
                f"offsets give {end - begin}",
            )
    return begin, end, TensorInfo(name, dtype, tuple(shape))
