"""gitsnap.remote.large: members decoded from ranged-read windows, byte-exact.

Block payloads are taken as views of a window where one window holds them and
copied where they straddle two; both paths must give the same bytes, and
damage anywhere must be refused, never handed on.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from gitsnap import codec
from gitsnap.errors import ObjectCorrupt
from gitsnap.hashing import ReadInto, oid_of
from gitsnap.remote.large import Window

BLOCK = 4096  # many blocks on little data


def _weights(n: int, seed: int) -> bytes:
    x = np.random.default_rng(seed).standard_normal(n // 4) * 0.02
    return x.astype(np.float32).tobytes()


def _encode(raw: bytes, base: bytes | None = None) -> bytes:
    out = io.BytesIO()
    b = None
    if base is not None:
        b_oid = oid_of(base)
        b = codec.Base(b_oid, 0, lambda: _stream(base), len(base))
    codec.encode(
        codec.bytes_reader(raw), len(raw), oid_of(raw), out,
        dtype=codec.dtype_of_name("F32"), base=b, block_size=BLOCK,
    )  # fmt: skip
    return out.getvalue()


def _stream(data: bytes) -> ReadInto:
    read_at, pos = codec.bytes_reader(data), [0]

    def read_into(view: memoryview) -> int:
        n = read_at(pos[0], view)
        pos[0] += n
        return n

    return read_into


class _Counting:
    """A Window over bytes in memory that counts views given and refused."""

    def __init__(self, blob: bytes, window: int) -> None:
        self.fetches = 0

        def fetch(a: int, b: int) -> bytes:
            self.fetches += 1
            return blob[a:b]

        self.w = Window(fetch, len(blob), window)
        self.views = self.copies = 0

    def __call__(self, offset: int, dst: memoryview) -> int:
        return self.w.read_at(offset, dst)

    def view(self, offset: int, n: int) -> memoryview | None:
        v = self.w.view(offset, n)
        if v is None:
            self.copies += 1
        else:
            self.views += 1
        return v


def _decode(blob: bytes, oid: str, window: int, others: dict[str, bytes] | None = None) -> bytes:
    me = _Counting(blob, window)

    def lookup(want: str) -> codec.Stored:
        if want == oid:
            return codec.Stored(len(blob), me)
        raw = (others or {})[want]  # a base as a local store keeps it: raw, v1 style
        return codec.Stored(len(raw), codec.bytes_reader(raw), encoded=False)

    out = b"".join(bytes(c) for c in codec.iter_decoded(lookup, oid, bytearray(1000)))
    assert me.views and me.copies, "both the view and the copy path must run"
    return out


@pytest.mark.parametrize("window", [3001, 8192, 65536])
def test_windowed_decode_is_byte_exact_with_views_and_straddling_copies(window: int) -> None:
    raw = _weights(40 * BLOCK + 12, seed=1)  # 41 blocks, a short last one
    blob = _encode(raw)
    assert codec.read_header(blob, oid_of(raw)).codec == codec.PLANES
    assert _decode(blob, oid_of(raw), window) == raw


def test_windowed_delta_decodes_byte_exact_through_its_base() -> None:
    base = _weights(24 * BLOCK, seed=2)
    tuned = (np.frombuffer(base, np.float32) * np.float32(1.0001)).astype(np.float32).tobytes()
    blob = _encode(tuned, base=base)
    h = codec.read_header(blob, oid_of(tuned))
    assert h.codec == codec.XOR and h.base == oid_of(base)
    assert _decode(blob, oid_of(tuned), 5000, {oid_of(base): base}) == tuned


def test_windowed_decode_refuses_every_damaged_byte_it_is_shown() -> None:
    raw = _weights(8 * BLOCK, seed=3)
    blob = _encode(raw)
    oid = oid_of(raw)
    rng = np.random.default_rng(4)
    for pos in sorted({*rng.integers(codec.HEADER_SIZE, len(blob), 40).tolist(), len(blob) - 1}):
        bad = bytearray(blob)
        bad[pos] ^= 0x40
        me = codec.Stored(len(bad), _Counting(bytes(bad), 3001))
        with pytest.raises(ObjectCorrupt, match=oid[:12]):
            for _ in codec.iter_decoded(lambda _o, s=me: s, oid, bytearray(1000)):
                pass
