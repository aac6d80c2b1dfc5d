"""Lossless, dtype-aware stored forms of one object (DESIGN D18); the format is in
``docs/storage-format.md``.

An object's id is the BLAKE3 of its raw bytes whatever its stored form. A
stored (encoded) object is a 64-byte header followed by a body:

- ``raw`` (codec 0): the raw bytes;
- ``planes+zstd`` (codec 1): the raw bytes cut into blocks (4 MiB); in each
  block the bytes of every element are split into byte planes (plane *j*
  holds byte *j* of every element: for F32 the sign/exponent byte apart from
  the mantissa bytes), and each plane is zstd-compressed on its own or kept
  as it is where zstd does not pay;
- ``xor-delta`` (codec 2): the same, applied to the raw bytes XOR the raw
  bytes of a *base* object of the same size (a tensor of the parent
  snapshot). A dense fine-tune changes every weight but mostly in the low
  mantissa bits: the XOR is mostly zero bytes in the high planes.

Memory stays flat (D11): encoding and decoding go block by block, a few
blocks in flight on a small thread pool (zstd and numpy release the GIL), so
a 1 GiB tensor needs a few blocks of memory, not 1 GiB. Decoding re-hashes
the raw bytes and checks them against the id: a damaged header, body or
delta base is an :class:`~gitsnap.errors.ObjectCorrupt` naming the object
(and the base), never wrong bytes handed on.

Delta chains are bounded: an object is at most :data:`MAX_DEPTH` deltas away
from a non-delta object. :func:`encode` ignores a base that would make the
chain longer, so every read costs at most ``MAX_DEPTH + 1`` decompressions.

Entry points (all below): :func:`encode` (into a seekable file),
:func:`encode_bytes`, :func:`open_raw` / :func:`iter_decoded` /
:func:`decode_bytes` (reading, verified), :func:`read_header`,
:func:`chain_depth`, :func:`dtype_of_name`.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any

from gitsnap.errors import RESAVE, GitsnapError, ObjectCorrupt
from gitsnap.hashing import ReadInto, hasher

MAGIC = b"GSOB"
VERSION = 1
HEADER_SIZE = 64
_HEADER = struct.Struct("<4sBBBBQII32sI")  # + crc32 (u32) = 64 bytes
assert _HEADER.size + 4 == HEADER_SIZE

RAW, PLANES, XOR = 0, 1, 2
CODEC_NAMES = {RAW: "raw", PLANES: "planes+zstd", XOR: "xor-delta"}
# Not an object header's codec but a pack index entry's: the object is a slice of a group
# member, one planes+zstd stored form of several small objects' bytes end to end
# (docs/storage-format.md). Small objects encoded together pay one zstd frame and one
# plane cut per group, not per object, and their exponent planes compress better.
GROUP = 3
GROUP_NAME = "planes+zstd (grouped)"
GROUP_DELTA_NAME = "xor-delta (grouped)"  # a grouped object stored as XOR with its base

# 4 MiB blocks: large enough that zstd and the per-block Python work amortise
# (measured: 1 MiB blocks cost ~10 % more CPU on MiniLM), small enough that
# the few blocks in flight per stream stay far below the memory budget.
BLOCK = 4 * 1024 * 1024
MIN_BLOCK = 4096
MAX_BLOCK = 64 * 1024 * 1024
# git's pack.depth is 50, but each level here is a full decompression of the
# object: 8 keeps a restore of the deepest chain within ~9x a plain decode,
# and a training run of ten checkpoints still pays one full copy per nine.
MAX_DEPTH = 8
MAX_RAW_SIZE = 1 << 48  # 256 TiB: a size above it is a damaged header, not a tensor
LEVEL = 1  # zstd level: see docs/benchmarks.md (level 3 gains <1 % for 2x the CPU)
# Blocks compressed/decompressed ahead of the one being consumed: one per core
# keeps both busy; each costs ~3 blocks of memory while in flight.
_IN_FLIGHT = 2
_STORED = 1 << 31  # plane word flag: payload kept as is (zstd did not pay)
_WORD = struct.Struct("<I")  # a plane's length word
# Blocks up to this size are cut into planes by bytes slicing (no numpy call per small
# object), larger ones by numpy, which releases the GIL on the copy: a 256 KiB group cut
# by slicing holds the GIL ~100 us, by numpy it runs beside the other transfer thread
# (measured, 20,000 x 16 KiB in groups of 16, 2 threads: encode 18.1 -> 17.3 us an
# object, decode 10.9 -> 7.9).
_SLICE_MAX = 64 * 1024
# A group member holds at most this many raw bytes (one block): small objects (up to
# GROUP_OBJECT bytes each) share one zstd frame and one plane cut per group.
GROUP_MAX = 256 * 1024
GROUP_OBJECT = 64 * 1024
_ZERO_OID = b"\0" * 32

# Frozen table (docs/storage-format.md): dtype code -> (safetensors name, element width).
DTYPES: dict[int, tuple[str, int]] = {
    0: ("bytes", 1),
    1: ("BOOL", 1),
    2: ("U8", 1),
    3: ("I8", 1),
    4: ("F8_E5M2", 1),
    5: ("F8_E4M3", 1),
    6: ("I16", 2),
    7: ("U16", 2),
    8: ("F16", 2),
    9: ("BF16", 2),
    10: ("I32", 4),
    11: ("U32", 4),
    12: ("F32", 4),
    13: ("I64", 8),
    14: ("U64", 8),
    15: ("F64", 8),
}
_DTYPE_CODES = {name: code for code, (name, _) in DTYPES.items()}


def dtype_of_name(name: str | None) -> int:
    """The dtype code of a safetensors dtype name; unknown names (and None) are plain bytes."""
    return _DTYPE_CODES.get(name or "bytes", 0)


@dataclass(frozen=True)
class Header:
    codec: int
    dtype: int
    depth: int  # 0, or 1 + the base's depth for a delta
    raw_size: int
    block_size: int  # 0 for raw
    blocks: int
    base: str | None  # the base object's id (hex) for a delta

    @property
    def width(self) -> int:
        return DTYPES[self.dtype][1]

    @property
    def codec_name(self) -> str:
        return CODEC_NAMES[self.codec]

    def pack(self) -> bytes:
        if self.base is None:  # the same few (codec, dtype, size) over and over: cached
            key = (self.codec, self.dtype, self.depth, self.raw_size, self.block_size,
                   self.blocks)  # fmt: skip
            head = _PACKED.get(key)
            if head is None:
                head = self._pack()
                if len(_PACKED) < _HEADER_CACHE:
                    _PACKED[key] = head
            return head
        return self._pack()

    def _pack(self) -> bytes:
        base = bytes.fromhex(self.base) if self.base else _ZERO_OID
        head = _HEADER.pack(
            MAGIC,
            VERSION,
            self.codec,
            self.dtype,
            self.depth,
            self.raw_size,
            self.block_size,
            self.blocks,
            base,
            0,
        )
        return head + struct.pack("<I", zlib.crc32(head))


# Headers without a base, by fields (packing) and by bytes (parsing, once checked): a
# push or fetch of 20,000 tensors of a few shapes meets a few distinct headers.
_HEADER_CACHE = 4096
_PACKED: dict[tuple[int, ...], bytes] = {}
_PARSED: dict[bytes, Header] = {}


def _blocks(size: int, block_size: int) -> int:
    return -(-size // block_size) if block_size else 0


def read_header(data: bytes | bytearray | memoryview, oid: str, label: str = "object") -> Header:
    """Parse and check a stored object's header; ObjectCorrupt naming ``oid`` if it is bad."""

    def bad(why: str) -> ObjectCorrupt:
        return corrupt(oid, label, f"its header {why}")

    if len(data) < HEADER_SIZE:
        raise bad(f"is cut short ({len(data)} of {HEADER_SIZE} bytes)")
    whole = bytes(data[:HEADER_SIZE])
    seen = _PARSED.get(whole)
    if seen is not None:
        return seen
    head = whole[:-4]
    magic, version, codec, dtype, depth, raw_size, block_size, blocks, base, reserved = (
        _HEADER.unpack(head)
    )
    if magic != MAGIC:
        raise bad("does not start with the gitsnap object magic")
    (crc,) = struct.unpack("<I", whole[-4:])
    if crc != zlib.crc32(head):
        raise bad("fails its checksum")
    if version != VERSION:
        raise ObjectCorrupt(
            f"object {oid[:12]}… ({label}) has stored-format version {version}, "
            f"this gitsnap reads version {VERSION}",
            hint="upgrade gitsnap (pip install -U gitsnap) to read it",
        )
    if codec not in CODEC_NAMES or dtype not in DTYPES or reserved:
        raise bad(f"names an unknown codec ({codec}) or dtype ({dtype})")
    if raw_size > MAX_RAW_SIZE:
        raise bad(f"claims {raw_size} raw bytes")
    if codec == RAW:
        ok = block_size == 0 and blocks == 0 and depth == 0 and base == _ZERO_OID
    else:
        ok = (
            MIN_BLOCK <= block_size <= MAX_BLOCK
            and block_size % 8 == 0
            and blocks == _blocks(raw_size, block_size)
            and (codec == PLANES) == (base == _ZERO_OID)
            and (depth == 0 if codec == PLANES else 1 <= depth <= MAX_DEPTH)
        )
    if not ok:
        raise bad("is inconsistent (block size, block count, base or chain depth)")
    h = Header(codec, dtype, depth, raw_size, block_size, blocks, base.hex() if depth else None)
    if h.base is None and len(_PARSED) < _HEADER_CACHE:
        _PARSED[whole] = h
    return h


def corrupt(oid: str, label: str, why: str, base: str | None = None) -> ObjectCorrupt:
    of_base = f" (its delta base {base[:12]}…)" if base else ""
    return ObjectCorrupt(
        f"stored object {oid[:12]}… ({label}){of_base} is corrupt: {why}",
        hint="the stored copy is damaged; delete it (or the pack that holds it) and fetch it "
        f"again (git snap fetch), or {RESAVE}",
    )


# -- the block transform ------------------------------------------------------------

_local = threading.local()
_pool_lock = threading.Lock()
_pool: list[ThreadPoolExecutor] = []  # one shared pool, made on first use


def _executor() -> ThreadPoolExecutor:
    with _pool_lock:
        if not _pool:
            _pool.append(
                ThreadPoolExecutor(
                    max_workers=max(2, min(4, os.cpu_count() or 2)),
                    thread_name_prefix="gitsnap-codec",
                )
            )
        return _pool[0]


def _zstd() -> Any:
    import zstandard

    return zstandard


def _compressor(level: int) -> Any:
    # zstd contexts are not thread-safe: one per thread (and level), reused.
    key = f"cctx{level}"
    c = getattr(_local, key, None)
    if c is None:
        zstandard = _zstd()
        # No zstd checksum: the BLAKE3 of the decoded bytes checks everything.
        params = zstandard.ZstdCompressionParameters.from_level(
            level, write_content_size=1, write_checksum=0, **_TUNING
        )
        c = zstandard.ZstdCompressor(compression_params=params)
        setattr(_local, key, c)
    return c


# Byte planes are short-range data: the sign/exponent plane has a few distinct
# values and few long repeats, the mantissa planes are near noise. zstd's fast
# strategy with a 64-entry match table and long minimum matches spends its time
# on entropy coding, not on match finding, and finds fewer matches that cost
# more than the literals they replace. Measured on all-MiniLM-L6-v2 against the
# level-1 defaults with a 4,096-entry table (docs/benchmarks.md): float32 planes
# 0.8215 of raw (was 0.8249), bfloat16 0.6707 (0.6775), XOR deltas unchanged,
# for ~40 % less CPU; 4 KiB exponent planes 10.4 us each (13.5 us).
_TUNING: dict[str, int] = {"strategy": 1, "min_match": 7, "window_log": 17, "hash_log": 6}
# strategy 1 is ZSTD_fast (zstandard.STRATEGY_FAST): zstd is imported only when used.


def _decompressor() -> Any:
    d = getattr(_local, "dctx", None)
    if d is None:
        d = _local.dctx = _zstd().ZstdDecompressor()
    return d


# PlaneMemo: a plane position that zstd did not shrink for this many objects in a row is
# stored as it is, without trying, for the next _SKIP objects; then tried again.
_MISSES = 4
_SKIP = 31


class PlaneMemo:
    """Which byte planes zstd did not pay for lately, per (dtype, raw size) (one push group).

    Random-looking planes (the low mantissa bytes of float weights) never shrink, and
    trying costs as much zstd time as the plane that does: after :data:`_MISSES` misses in
    a row a plane position is stored as it is for the next :data:`_SKIP` objects of that
    dtype and size, then tried again (one in 32: a plane that starts to pay is found).
    The stored form stays valid (a plane stored as it is, flag bit 31); only which form is
    chosen changes. Not thread-safe: one per thread (a push group).
    """

    def __init__(self) -> None:
        self._state: dict[tuple[int, int], list[int]] = {}

    def state(self, dtype: int, size: int) -> list[int]:
        """``[misses per plane..., skips left per plane...]`` for this dtype and size."""
        st = self._state.get((dtype, size))
        if st is None:
            st = self._state[dtype, size] = [0] * (2 * DTYPES[dtype][1])
        return st


def _encode_block(
    data: Any, width: int, base: Any, level: int, memo: list[int] | None = None
) -> bytes:
    """One block: XOR with the base's block (a delta), split into planes, compress each
    (but the planes ``memo`` -- a :meth:`PlaneMemo.state` -- says to store as they are)."""
    return b"".join(_encode_parts(data, width, base, level, memo))


def _encode_parts(
    data: Any, width: int, base: Any, level: int, memo: list[int] | None = None
) -> list[Any]:
    """:func:`_encode_block`'s bytes as the buffers they are made of, not yet joined (a
    group member goes into its pack without being copied whole twice)."""
    m = len(data) // width
    planes: list[Any]
    if base is None and len(data) <= _SLICE_MAX:
        # A small block: planes cut by bytes slicing, no numpy call per object (a push
        # of 20,000 small tensors is bound by the per-object overhead under the GIL).
        src = data if type(data) is bytes else bytes(data)
        planes = [src[j : m * width : width] for j in range(width)] if width > 1 else [src]
        tail: Any = src[m * width :]
    else:
        import numpy as np

        a = np.frombuffer(data, dtype=np.uint8)
        if base is not None:
            a = np.bitwise_xor(a, np.frombuffer(base, dtype=np.uint8))
        cut = a[: m * width].reshape(m, width).T.copy() if width > 1 else a
        # memoryviews, not arrays: ``bytearray += array`` would be numpy's addition.
        planes = [cut[j].data for j in range(width)] if width > 1 else [a.data]
        tail = a[m * width :].data
    out: list[Any] = []
    cctx = _compressor(level)
    word = _WORD.pack
    for j, plane in enumerate(planes):
        if memo is not None and memo[width + j] > 0:
            memo[width + j] -= 1
            out += (word(_STORED | m), plane)
            continue
        packed = cctx.compress(plane) if m else b""
        if len(packed) >= m:
            out += (word(_STORED | m), plane)
            if memo is not None and m:
                memo[j] += 1
                if memo[j] >= _MISSES:
                    memo[width + j] = _SKIP
        else:
            out += (word(len(packed)), packed)
            if memo is not None:
                memo[j] = 0
    if len(tail):
        out.append(tail)
    return out


def _decode_block(
    payloads: list[tuple[bool, Any]], tail: bytes | memoryview, n: int, width: int
) -> Any:
    """The inverse of :func:`_encode_block` without the XOR; ValueError on damage."""
    import numpy as np

    m = n // width
    out = np.empty(n, dtype=np.uint8)
    body = out[: m * width].reshape(m, width) if width > 1 else out
    for j, (stored, payload) in enumerate(payloads):
        src = np.frombuffer(_plane(stored, payload, m), dtype=np.uint8)
        if width > 1:
            body[:, j] = src
        else:
            body[:] = src
    out[m * width :] = np.frombuffer(tail, dtype=np.uint8)
    return out


def _plane(stored: bool, payload: Any, m: int) -> Any:
    """One plane's ``m`` bytes from its payload; ValueError on damage."""
    if stored:
        return payload
    # A frame must state its size, and exactly the plane's: a damaged one claiming
    # terabytes is refused before anything is allocated.
    if _zstd().frame_content_size(payload) != m:
        raise ValueError("a plane's compressed frame has the wrong size")
    plane = _decompressor().decompress(payload, max_output_size=m)
    if len(plane) != m:
        raise ValueError("a plane decompressed to the wrong size")
    return plane


def _decode_small_block(
    payloads: list[tuple[bool, Any]], tail: bytes | memoryview, n: int, width: int
) -> bytearray:
    """:func:`_decode_block` for one small block (:func:`decode_small`): planes put in
    place by slice assignment, no numpy call per object."""
    m = n // width
    out = bytearray(n)
    for j, (stored, payload) in enumerate(payloads):
        plane = _plane(stored, payload, m)
        if width > 1:
            out[j : m * width : width] = plane
        else:
            out[:] = plane
    out[m * width :] = tail
    return out


# -- encoding -----------------------------------------------------------------------

ReadAt = Callable[[int, memoryview], int]
"""Fill (a prefix of) the view with the bytes at this offset; return how many, 0 at the end.

A ``ReadAt`` whose bytes are already in memory may also have a method
``view(offset, n)`` returning those ``n`` bytes without a copy (a buffer that
stays valid and unchanged while it is referenced), or None where it cannot:
decoding then takes block payloads as views, not copies (:func:`bytes_reader`,
and the remote's read windows, :class:`gitsnap.remote.large.Window`).
"""


class _BytesReader:
    """:func:`bytes_reader`: a ReadAt over bytes in memory, with a zero-copy ``view``."""

    __slots__ = ("_view",)

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._view = memoryview(data).cast("B")

    def __call__(self, offset: int, dst: memoryview) -> int:
        piece = self._view[offset : offset + len(dst)]
        dst[: len(piece)] = piece
        return len(piece)

    def view(self, offset: int, n: int) -> memoryview | None:
        piece = self._view[offset : offset + n]
        return piece if len(piece) == n else None


def bytes_reader(data: bytes | bytearray | memoryview) -> ReadAt:
    return _BytesReader(data)


def fd_read_at(fd: int, start: int = 0) -> ReadAt:
    def read_at(offset: int, dst: memoryview) -> int:
        return os.preadv(fd, [dst], start + offset)

    return read_at


@dataclass(frozen=True)
class Base:
    """A delta base: its id, chain depth, raw size, and how to read its raw bytes from the start.

    :func:`base_from` makes one for an object a :data:`Lookup` finds.
    """

    oid: str
    depth: int
    open: Callable[[], ReadInto]
    size: int


@dataclass(frozen=True)
class Encoded:
    codec: int
    stored_size: int  # header + body
    raw_size: int
    depth: int
    base: str | None

    @property
    def codec_name(self) -> str:
        return CODEC_NAMES[self.codec]


def _fill(read: Callable[[memoryview], int], view: memoryview) -> int:
    got = 0
    while got < len(view):
        n = read(view[got:])
        if not n:
            break
        got += n
    return got


class _Input:
    """The raw bytes being encoded, read block by block and hashed on the way."""

    def __init__(self, read_at: ReadAt, size: int) -> None:
        self.read_at, self.size, self.pos = read_at, size, 0
        self.h = hasher(size)

    def next(self, n: int) -> bytearray:
        buf = bytearray(n)
        start = self.pos
        got = _fill(lambda v: self.read_at(start + (n - len(v)), v), memoryview(buf))
        self.pos += got
        if got < n:
            del buf[got:]
        self.h.update(buf)
        return buf


class _BaseInput:
    def __init__(self, base: Base, size: int) -> None:
        self.base, self.read, self.size = base, base.open(), size
        self.h, self.seen = hasher(size), 0

    def next(self, n: int) -> bytearray:
        buf = bytearray(n)
        got = _fill(self.read, memoryview(buf))
        if got < n:
            del buf[got:]
        self.h.update(buf)
        self.seen += got
        return buf

    def finish(self, oid: str, label: str) -> None:
        extra = bytearray(1)
        if _fill(self.read, memoryview(extra)) or self.h.hexdigest() != self.base.oid:
            raise corrupt(
                self.base.oid, f"delta base of {label} {oid[:12]}…", "its bytes do not match its id"
            )


def block_ratio(
    first: bytes | bytearray | memoryview, dtype: int, base_first: Any = None, level: int = LEVEL
) -> float:
    """The smallest stored size of one block (byte planes; with ``base_first``, the base's
    block of the same length, the XOR delta too) over its raw size: what :func:`encode`
    judges a large object by (its first block), for a caller that must choose before."""
    if not first or dtype not in DTYPES:
        return 1.0
    if base_first is not None and len(base_first) != len(first):
        base_first = None
    best, _, _ = _first_block_forms(first, DTYPES[dtype][1], base_first, level)
    return best / len(first)


def _first_block_forms(first: Any, width: int, base_first: Any, level: int) -> tuple[int, int, Any]:
    """The smallest form of a first block: ``(stored size, codec, stored block)`` among
    raw, byte planes and (with ``base_first``, the base's block of the same length) the
    XOR delta; on a tie the lower codec."""
    candidates: list[tuple[int, int, Any]] = [(len(first), RAW, first)]
    if first:
        plain = _encode_block(first, width, None, level)
        candidates.append((len(plain), PLANES, plain))
        if base_first is not None:
            delta = _encode_block(first, width, base_first, level)
            candidates.append((len(delta), XOR, delta))
    return min(candidates, key=lambda c: (c[0], c[1]))


def encode(
    read_at: ReadAt,
    size: int,
    oid: str,
    out: IO[bytes],
    *,
    dtype: int = 0,
    base: Base | None = None,
    label: str = "object",
    level: int = LEVEL,
    block_size: int = BLOCK,
    truncate: bool = True,
) -> Encoded:
    """Write the smallest stored form of an object at ``out``'s position; return what was chosen.

    ``read_at`` reads the object's raw bytes (``size`` of them, which must
    hash to ``oid``: they are hashed on the way and a mismatch is
    ObjectCorrupt, like a ``base`` whose bytes do not hash to its id). A base
    of another size, or one already :data:`MAX_DEPTH` deep, is not used.

    The choice: an object of one block is encoded every way and the smallest
    kept; a larger one is judged on its first block (each candidate codec
    compresses it, the smallest wins, ``raw`` where compression saves under 2 %),
    then streamed in that codec; if it still comes out larger than raw, it is
    rewritten raw (``out`` must be seekable; it is truncated after the object,
    unless ``truncate`` is False and it was not rewritten: a caller appending at
    the end of a file, as a pack writer, saves the ``ftruncate``).
    """
    if block_size % 8 or not MIN_BLOCK <= block_size <= MAX_BLOCK:
        raise ValueError(f"block size {block_size} is not a multiple of 8 in [4 KiB, 64 MiB]")
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype code {dtype}")
    width = DTYPES[dtype][1]
    if base is not None and (base.depth >= MAX_DEPTH or base.oid == oid or base.size != size):
        base = None
    start = out.tell()
    src = _Input(read_at, size)
    binput = _BaseInput(base, size) if base is not None else None
    first = src.next(min(size, block_size))
    base_first = binput.next(len(first)) if binput is not None else None
    if base_first is not None and len(base_first) != len(first):
        binput = base_first = None  # a base of another size: no delta
    best_size, codec, block0 = _first_block_forms(first, width, base_first, level)
    if codec != RAW and len(first) < size and best_size > 0.98 * len(first):
        codec, block0 = RAW, first
    if codec != XOR:
        binput = None
    header = Header(
        codec,
        dtype,
        base.depth + 1 if codec == XOR and base is not None else 0,
        size,
        block_size if codec != RAW else 0,
        _blocks(size, block_size) if codec != RAW else 0,
        base.oid if codec == XOR and base is not None else None,
    )
    out.write(header.pack())
    out.write(block0)
    written = HEADER_SIZE + len(block0)
    if codec == RAW:
        # Raw: copy the rest through in blocks (hashed on the way).
        while src.pos < size:
            chunk = src.next(min(block_size, size - src.pos))
            if not chunk:
                break
            out.write(chunk)
            written += len(chunk)
    else:
        pool = _executor()
        pending: deque[Future[bytes]] = deque()
        while src.pos < size or pending:
            while src.pos < size and len(pending) < _IN_FLIGHT:
                chunk = src.next(min(block_size, size - src.pos))
                if not chunk:
                    break
                bchunk = None
                if binput is not None:
                    bchunk = binput.next(len(chunk))
                if binput is not None and bchunk is not None and len(bchunk) != len(chunk):
                    raise corrupt(
                        binput.base.oid,
                        f"delta base of {label} {oid[:12]}…",
                        "it is shorter than its object",
                    )
                pending.append(pool.submit(_encode_block, chunk, width, bchunk, level))
            if not pending:
                break
            piece = pending.popleft().result()
            out.write(piece)
            written += len(piece)
    if src.pos != size or src.h.hexdigest() != oid:
        raise ObjectCorrupt(
            f"{label} {oid[:12]}…: the bytes read for it do not match its id "
            f"({src.pos} of {size} bytes read)",
            hint="the source changed or is damaged; delete the damaged object and fetch it "
            f"again (git snap fetch), or {RESAVE}",
        )
    if binput is not None:
        binput.finish(oid, label)
    if codec != RAW and written >= HEADER_SIZE + size:
        # The first block misjudged the rest: raw is smaller. Rewrite it raw.
        out.seek(start)
        codec, header = RAW, Header(RAW, dtype, 0, size, 0, 0, None)
        out.write(header.pack())
        written = HEADER_SIZE + _copy(read_at, size, out, block_size)
        truncate = True
    if truncate:
        out.truncate()
    return Encoded(codec, written, size, header.depth, header.base)


def _copy(read_at: ReadAt, size: int, out: IO[bytes], block_size: int) -> int:
    buf = bytearray(min(size, block_size))
    done = 0
    while done < size:
        view = memoryview(buf)[: min(len(buf), size - done)]
        n = read_at(done, view)
        if not n:
            break
        out.write(view[:n])
        done += n
    return done


def encode_bytes(
    data: bytes | bytearray | memoryview,
    oid: str | None = None,
    *,
    dtype: int = 0,
    base: tuple[str, int, bytes] | None = None,
    level: int = LEVEL,
) -> bytes:
    """The stored form of an object held in memory; ``base`` is ``(oid, depth, raw bytes)``."""
    import io

    from gitsnap.hashing import oid_of

    oid = oid or oid_of(data)
    b = None
    if base is not None:
        b_oid, b_depth, b_raw = base
        b = Base(b_oid, b_depth, lambda: _stream_of(b_raw), len(b_raw))
    out = io.BytesIO()
    encode(bytes_reader(data), len(data), oid, out, dtype=dtype, base=b, level=level)
    return out.getvalue()


def encode_small(
    data: bytes | bytearray | memoryview,
    oid: str,
    *,
    dtype: int = 0,
    level: int = LEVEL,
    label: str = "object",
    memo: PlaneMemo | None = None,
) -> tuple[Header, bytes]:
    """The stored form :func:`encode` writes for an object of at most one block and no
    delta base (its header, and header + body), from memory: byte for byte the same,
    without the streaming machinery (a push of 20,000 small tensors pays it 20,000 times).
    With a ``memo`` (:class:`PlaneMemo`), planes that did not pay for the objects of this
    dtype and size before are stored as they are without trying zstd: a valid stored
    form, byte for byte :func:`encode`'s whenever those planes would not have paid.

    ``data`` is hashed here: ObjectCorrupt unless it hashes to ``oid``.
    """
    from gitsnap.hashing import oid_of

    size = len(data)
    if size > BLOCK or dtype not in DTYPES:
        raise ValueError(f"encode_small takes at most one block of a known dtype, not {size} B")
    if oid_of(data) != oid:
        raise ObjectCorrupt(
            f"{label} {oid[:12]}…: the bytes read for it do not match its id "
            f"({size} of {size} bytes read)",
            hint="the source changed or is damaged; delete the damaged object and fetch it "
            f"again (git snap fetch), or {RESAVE}",
        )
    return encode_checked(data, dtype=dtype, level=level, memo=memo)


def encode_checked(
    data: bytes | bytearray | memoryview,
    *,
    dtype: int = 0,
    level: int = LEVEL,
    memo: PlaneMemo | None = None,
) -> tuple[Header, bytes]:
    """:func:`encode_small` of bytes the caller has hashed to their id already."""
    size = len(data)
    if size:
        state = memo.state(dtype, size) if memo is not None else None
        body = _encode_block(data, DTYPES[dtype][1], None, level, state)
        if len(body) < size:
            header = Header(PLANES, dtype, 0, size, BLOCK, 1, None)
            return header, header.pack() + body
    header = Header(RAW, dtype, 0, size, 0, 0, None)
    return header, header.pack() + bytes(data)


def encode_group(
    items: Sequence[tuple[str, bytes | bytearray | memoryview]],
    *,
    dtype: int,
    level: int = LEVEL,
    memo: PlaneMemo | None = None,
) -> list[Any] | None:
    """One group member (header + body, :data:`GROUP`) holding the raw bytes of ``items``
    end to end, planes+zstd as one block, as the buffers that make it (to be written one
    after the other); None where it does not shrink them.

    Each item is ``(oid, raw bytes)``, already hashed to its id by the caller, of a size
    that is a multiple of the dtype's width (so every element stays whole in its plane);
    together at most :data:`GROUP_MAX` bytes.
    """
    data = b"".join(d for _, d in items)
    size = len(data)
    width = DTYPES[dtype][1]
    if size > GROUP_MAX or any(len(d) % width for _, d in items):
        raise ValueError("a group holds whole elements, at most GROUP_MAX bytes")
    state = memo.state(dtype, size) if memo is not None else None
    parts = _encode_parts(data, width, None, level, state)
    if sum(len(p) for p in parts) >= size:
        return None
    return [Header(PLANES, dtype, 0, size, BLOCK, 1, None).pack(), *parts]


def xor(a: bytes | bytearray | memoryview, b: bytes | bytearray | memoryview) -> bytes:
    """``a`` XOR ``b`` (equal lengths): a grouped delta's bytes, or back from them."""
    import numpy as np

    if len(a) != len(b):
        raise ValueError("xor of unequal lengths")
    return np.bitwise_xor(np.frombuffer(a, np.uint8), np.frombuffer(b, np.uint8)).tobytes()


def decode_group(
    stored: bytes | bytearray | memoryview, oid: str, label: str = "object"
) -> memoryview:
    """The raw bytes of a group member (:func:`encode_group`) that holds ``oid``, with
    every check of :func:`decode_small` but the final hash: each object in it is hashed
    on its own (:func:`group_slice`). ObjectCorrupt naming ``oid`` if it is damaged."""
    raw = _decode_one_block(memoryview(stored).cast("B"), oid, label, GROUP_MAX, True)
    if raw is None:
        raise corrupt(oid, label, "its group member is not one planes+zstd block")
    return memoryview(raw)


def group_slice(  # noqa: PLR0917 - the group, where the object is, what it is, its base
    group: memoryview,
    start: int,
    size: int,
    oid: str,
    label: str = "object",
    base: bytes | bytearray | memoryview | None = None,
) -> memoryview:
    """An object's bytes in a decoded group (XORed with ``base``, a grouped delta's base),
    verified against its id (ObjectCorrupt)."""
    from gitsnap.hashing import oid_of

    if start + size > len(group):
        raise corrupt(oid, label, f"its group member holds {len(group)} bytes, not {start + size}")
    piece = group[start : start + size]
    if base is not None:
        if len(base) != size:
            raise corrupt(oid, label, f"its delta base has {len(base)} bytes, not {size}")
        piece = memoryview(xor(piece, base))
    if oid_of(piece) != oid:
        raise corrupt(oid, label, "its decoded bytes do not match its id")
    return piece


def _stream_of(data: bytes | bytearray | memoryview) -> ReadInto:
    read_at, pos = bytes_reader(data), 0

    def read_into(view: memoryview) -> int:
        nonlocal pos
        n = read_at(pos, view)
        pos += n
        return n

    return read_into


# -- decoding -----------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """Where an object's stored bytes are: ``length`` of them, read by ``read_at``.

    ``encoded=False`` marks an object stored as v1 wrote it (its raw bytes, no
    header): loose objects of older stores and remotes, readable mixed with v2.
    """

    length: int
    read_at: ReadAt
    encoded: bool = True


Lookup = Callable[[str], Stored]
"""Find an object's stored bytes (loose file, pack member, ...); ObjectMissing if absent."""


def stored_header(stored: Stored, oid: str, label: str = "object") -> Header:
    """The header of a stored object (a v1 raw object gets a synthetic raw one)."""
    if not stored.encoded:
        return Header(RAW, 0, 0, stored.length, 0, 0, None)
    head = bytearray(HEADER_SIZE)
    n = _fill(lambda v: stored.read_at(HEADER_SIZE - len(v), v), memoryview(head))
    return read_header(head[:n], oid, label)


def chain_depth(lookup: Lookup, oid: str, label: str = "object") -> int:
    """How many deltas separate ``oid`` from a non-delta object; its bases' headers are checked.

    Reads headers only. Each base must record a depth below its delta's (a base
    may be shallower than recorded: stored raw, as a local store keeps a decoded
    base, it ends the chain early); a chain that breaks this, or is longer than
    :data:`MAX_DEPTH`, is ObjectCorrupt.
    """
    h = stored_header(lookup(oid), oid, label)
    for walked in range(MAX_DEPTH + 1):
        if h.base is None:
            return walked
        b = stored_header(lookup(h.base), h.base, label)
        if b.depth >= h.depth:
            raise corrupt(
                oid,
                label,
                f"its delta chain records depth {b.depth} at {h.base[:12]}…, "
                f"under a delta of depth {h.depth}",
            )
        h = b
    raise corrupt(oid, label, f"its delta chain is longer than {MAX_DEPTH}")


class _Level:
    """One object of a delta chain, decoded as a stream of raw bytes (read_into)."""

    def __init__(
        self,
        lookup: Lookup,
        oid: str,
        label: str,
        *,
        of: str | None = None,
        expect_depth: int | None = None,
        expect_size: int | None = None,
    ) -> None:
        self.oid, self.label, self.of = oid, label, of
        try:
            self.stored = lookup(oid)
            self.header = stored_header(self.stored, oid, label)
        except ObjectCorrupt as exc:
            if of is None:
                raise
            raise corrupt(of, label, exc.message, base=oid) from None
        except GitsnapError as exc:
            if of is None:
                raise
            raise type(exc)(
                f"{label} {of[:12]}… is stored as a delta against {oid[:12]}…, which "
                f"cannot be read: {exc.message}",
                hint=exc.hint,
            ) from None
        h = self.header
        # A base may be shallower than its delta records (stored raw, as a local store
        # keeps a decoded base): depths only have to fall, so every chain ends.
        if expect_depth is not None and h.depth > expect_depth:
            raise self.bad(f"its recorded chain depth is {h.depth}, at most {expect_depth} was due")
        if expect_size is not None and h.raw_size != expect_size:
            raise self.bad(f"it has {h.raw_size} raw bytes, its delta {expect_size}")
        self.offset = HEADER_SIZE if self.stored.encoded else 0
        if h.codec == RAW and self.stored.length != self.offset + h.raw_size:
            raise self.bad(
                f"it holds {self.stored.length - self.offset} bytes, its header says {h.raw_size}"
            )
        self.base = (
            _Level(
                lookup,
                h.base,
                label,
                of=of or oid,
                expect_depth=h.depth - 1,
                expect_size=h.raw_size,
            )
            if h.base is not None
            else None
        )
        self.served = 0  # raw bytes handed out
        self.block = 0  # next block to read
        self.cur: Any = b""
        self.cur_pos = 0
        self.pending: deque[Future[Any]] = deque()
        self.hash = hasher(h.raw_size) if of is not None else None
        # Payloads are taken as views where the stored bytes are in memory (no copy).
        self._view: Callable[[int, int], Any] | None = getattr(self.stored.read_at, "view", None)
        self._base_buf: bytearray | None = None  # reused for a delta's base bytes

    def bad(self, why: str) -> ObjectCorrupt:
        if self.of is None:
            return corrupt(self.oid, self.label, why)
        return corrupt(self.of, self.label, why, base=self.oid)

    def _read_block(self) -> Future[Any]:
        h, i = self.header, self.block
        n = min(h.block_size, h.raw_size - i * h.block_size)
        width = h.width
        m = n // width
        payloads: list[tuple[bool, Any]] = []
        for _ in range(width):
            (w,) = struct.unpack("<I", self._take(4, i))
            stored, length = bool(w & _STORED), w & ~_STORED
            # zstd's bound for m bytes is m + m/256 + a little: anything longer is damage.
            if (stored and length != m) or length > m + (m >> 7) + 1024:
                raise self.bad(f"block {i} names an impossible plane length {length}")
            payloads.append((stored, self._take(length, i)))
        tail = self._take(n - m * width, i)
        self.block += 1
        if h.blocks == 1:  # a small object: a thread hop costs more than decoding it here
            done: Future[Any] = Future()
            try:
                done.set_result(_decode_block(payloads, tail, n, width))
            except Exception as exc:
                done.set_exception(exc)
            return done
        return _executor().submit(_decode_block, payloads, tail, n, width)

    def _take(self, n: int, block: int) -> Any:
        """The next ``n`` stored bytes (``n`` is bounded by the caller), or ObjectCorrupt:
        a view where the reader has them in memory, else one copy."""
        if self.offset + n > self.stored.length:
            raise self.bad(f"block {block} is cut short")
        if self._view is not None:
            piece = self._view(self.offset, n)
            if piece is not None:
                self.offset += n
                return piece
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            k = self.stored.read_at(self.offset + got, view[got:])
            if not k:
                raise self.bad(f"block {block} is cut short")
            got += k
        self.offset += n
        return buf

    def _next(self) -> None:
        """Make the next decoded block current."""
        h = self.header
        while self.block < h.blocks and len(self.pending) < _IN_FLIGHT:
            self.pending.append(self._read_block())
        try:
            arr = self.pending.popleft().result()
        except Exception as exc:
            if isinstance(exc, GitsnapError):
                raise
            raise self.bad(f"a block does not decompress ({exc})") from None
        if self.base is not None:
            import numpy as np

            if self._base_buf is None or len(self._base_buf) < len(arr):
                self._base_buf = bytearray(len(arr))
            base = memoryview(self._base_buf)[: len(arr)]
            if _fill(self.base.read_into, base) != len(arr):
                raise self.bad("its base ended early")
            np.bitwise_xor(arr, np.frombuffer(base, dtype=np.uint8), out=arr)
        self.cur, self.cur_pos = memoryview(arr), 0

    def chunk(self, buf: memoryview) -> memoryview:
        """The next raw bytes (empty at the end): a decoded block as it is (no copy; valid
        until the next call), or, for a raw object, as many as ``buf`` holds, read into it."""
        h = self.header
        left = h.raw_size - self.served
        if left <= 0:
            return memoryview(b"")
        if h.codec == RAW:
            want = buf[: min(len(buf), left)]
            n = self.stored.read_at(self.offset + self.served, want)
            if n == 0:
                raise self.bad("it is cut short")
            piece = want[:n]
        else:
            if self.cur_pos >= len(self.cur):
                self._next()
            piece = self.cur[self.cur_pos :]
            self.cur_pos = len(self.cur)
        self._served(piece)
        return piece

    def read_into(self, view: memoryview) -> int:
        h = self.header
        left = h.raw_size - self.served
        if left <= 0 or not len(view):
            return 0
        if h.codec == RAW:
            n = self.stored.read_at(self.offset + self.served, view[: min(len(view), left)])
            if n == 0:
                raise self.bad("it is cut short")
            piece = view[:n]
        else:
            if self.cur_pos >= len(self.cur):
                self._next()
            n = min(len(view), len(self.cur) - self.cur_pos)
            piece = self.cur[self.cur_pos : self.cur_pos + n]
            view[:n] = piece
            self.cur_pos += n
        self._served(piece)
        return n

    def _served(self, piece: memoryview) -> None:
        if self.hash is not None:
            self.hash.update(piece)
        self.served += len(piece)
        if self.served == self.header.raw_size:
            self._finish()

    def _finish(self) -> None:
        if self.header.codec != RAW and self.offset != self.stored.length:
            raise self.bad(f"{self.stored.length - self.offset} bytes follow its last block")
        if self.base is not None and self.base.served != self.base.header.raw_size:
            raise self.bad("its base is longer than it")
        if self.hash is not None and self.hash.hexdigest() != self.oid:
            raise self.bad("its decoded bytes do not match its id")


def base_from(lookup: Lookup, oid: str, label: str = "object") -> Base:
    """A :class:`Base` for a stored object (its header gives depth and size; v1 objects: 0)."""
    header = stored_header(lookup(oid), oid, label)
    return Base(oid, header.depth, lambda: open_raw(lookup, oid, label).read_into, header.raw_size)


@dataclass
class RawReader:
    """An object's raw bytes, decoded through its chain; see :func:`open_raw`."""

    oid: str
    size: int
    header: Header
    read_into: ReadInto


def open_raw(lookup: Lookup, oid: str, label: str = "object") -> RawReader:
    """The raw bytes of a stored object as a stream (``read_into``), *not yet verified*.

    Delta bases are verified as they end (before the object itself ends);
    the object's own bytes are checked by :func:`iter_decoded` (or by the
    caller that hashes what it reads). Use it as a :class:`Base`'s ``open``.
    """
    level = _Level(lookup, oid, label)
    return RawReader(oid, level.header.raw_size, level.header, level.read_into)


def iter_decoded(
    lookup: Lookup, oid: str, buf: bytearray | memoryview, label: str = "object"
) -> Iterator[memoryview]:
    """Yield a stored object's raw bytes (a raw one in chunks of ``buf``, an encoded one a
    decoded block at a time: chunks of any size); at the end, ObjectCorrupt
    unless they hash to ``oid``. As with :func:`gitsnap.hashing.verified`, trust
    (or publish) nothing made of the chunks before the iteration ended cleanly."""
    level = _Level(lookup, oid, label)
    size = level.header.raw_size
    h = hasher(size)
    view = memoryview(buf)
    seen = 0
    while True:
        # An encoded object's blocks come as they were decoded (no copy into buf).
        chunk = level.chunk(view)
        if not chunk:
            break
        h.update(chunk)
        seen += len(chunk)
        yield chunk
    if seen != size or h.hexdigest() != oid:
        raise corrupt(oid, label, "its decoded bytes do not match its id")


def decode_small(
    stored: bytes | bytearray | memoryview,
    oid: str,
    label: str = "object",
    max_size: int = 1 << 30,
) -> memoryview | None:
    """The raw bytes of a stored object of at most one block that is no delta, decoded
    from memory and verified (ObjectCorrupt otherwise), with the checks of
    :func:`decode_bytes`; None for a delta or a multi-block object (use
    :func:`decode_bytes`). A fetch of 20,000 small tensors pays this, not the streaming
    machinery, per object."""
    from gitsnap.hashing import oid_of

    raw = _decode_one_block(memoryview(stored).cast("B"), oid, label, max_size, False)
    if raw is None:
        return None
    if oid_of(raw) != oid:
        raise corrupt(oid, label, "its decoded bytes do not match its id")
    return memoryview(raw)


def _decode_one_block(
    view: memoryview, oid: str, label: str, max_size: int, planes_only: bool
) -> Any:
    """:func:`decode_small`'s decoding, unverified: the raw bytes, or None for a delta or
    a multi-block object (or, ``planes_only``, anything but one planes+zstd block)."""
    h = read_header(view, oid, label)
    if h.base is not None or h.blocks > 1 or (h.codec != RAW and h.blocks == 0):
        return None
    if planes_only and h.codec != PLANES:
        return None
    if h.raw_size > max_size:
        raise corrupt(oid, label, f"it claims {h.raw_size} raw bytes (limit {max_size})")
    if h.codec == RAW:
        if len(view) != HEADER_SIZE + h.raw_size:
            raise corrupt(
                oid,
                label,
                f"it holds {len(view) - HEADER_SIZE} bytes, its header says {h.raw_size}",
            )
        raw: Any = view[HEADER_SIZE:]
    else:
        n, width = h.raw_size, h.width
        m = n // width
        pos = HEADER_SIZE
        payloads: list[tuple[bool, Any]] = []
        for _ in range(width):
            if pos + 4 > len(view):
                raise corrupt(oid, label, "block 0 is cut short")
            (w,) = struct.unpack_from("<I", view, pos)
            pos += 4
            is_stored, length = bool(w & _STORED), w & ~_STORED
            if (is_stored and length != m) or length > m + (m >> 7) + 1024:
                raise corrupt(oid, label, f"block 0 names an impossible plane length {length}")
            if pos + length > len(view):
                raise corrupt(oid, label, "block 0 is cut short")
            payloads.append((is_stored, view[pos : pos + length]))
            pos += length
        tail_n = n - m * width
        if pos + tail_n > len(view):
            raise corrupt(oid, label, "block 0 is cut short")
        tail = view[pos : pos + tail_n]
        pos += tail_n
        if pos != len(view):
            raise corrupt(oid, label, f"{len(view) - pos} bytes follow its last block")
        try:
            if n <= _SLICE_MAX:
                raw = _decode_small_block(payloads, tail, n, width)
            else:
                raw = memoryview(_decode_block(payloads, tail, n, width)).cast("B")
        except Exception as exc:
            raise corrupt(oid, label, f"a block does not decompress ({exc})") from None
    return raw


def decode_bytes(
    stored: bytes | bytearray | memoryview,
    oid: str,
    lookup: Lookup | None = None,
    label: str = "object",
    max_size: int = 1 << 30,
) -> bytes:
    """Decode (and verify) a stored object held in memory; ``lookup`` finds delta bases.

    The header's raw size is checked against ``max_size`` before anything is allocated.
    """
    me = Stored(len(stored), bytes_reader(stored))
    header = stored_header(me, oid, label)
    if header.raw_size > max_size:
        raise corrupt(oid, label, f"it claims {header.raw_size} raw bytes (limit {max_size})")

    def find(want: str) -> Stored:
        if want == oid:
            return me
        if lookup is None:
            raise corrupt(oid, label, "it is a delta and no base store was given", base=want)
        return lookup(want)

    out = bytearray(header.raw_size)
    view, got = memoryview(out), 0
    for chunk in iter_decoded(find, oid, bytearray(min(max(header.raw_size, 1), BLOCK)), label):
        view[got : got + len(chunk)] = chunk
        got += len(chunk)
    return bytes(out)


__all__ = [
    "BLOCK",
    "CODEC_NAMES",
    "DTYPES",
    "HEADER_SIZE",
    "MAX_DEPTH",
    "PLANES",
    "RAW",
    "XOR",
    "Base",
    "Encoded",
    "Header",
    "Lookup",
    "PlaneMemo",
    "RawReader",
    "Stored",
    "base_from",
    "bytes_reader",
    "chain_depth",
    "decode_bytes",
    "decode_small",
    "dtype_of_name",
    "encode",
    "encode_bytes",
    "encode_small",
    "fd_read_at",
    "iter_decoded",
    "open_raw",
    "read_header",
    "stored_header",
]
