"""FastCDC content-defined chunking, vectorised with numpy.

A file that no reader understands (ONNX, GGUF, HDF5, a legacy pickle, an
unknown binary) is cut into chunks whose boundaries depend on the bytes
around them, not on their offsets: inserting or changing bytes in the middle
of a file moves only the boundaries next to the edit, so a new version stores
roughly the chunks it touched (DESIGN D1).

The algorithm is FastCDC (Xia et al., USENIX ATC 2016) with normalised
chunking at level 2:

* a **gear hash** rolls over the bytes: ``h = (h << 1) + GEAR[byte]``. In 32
  bits, the byte ``k`` positions back has been shifted out after 32 steps,
  so ``h`` at position ``i`` depends only on the 32-byte window ending there:
  ``h_i = sum(GEAR[b[i-k]] << k for k in 0..31) mod 2**32``. That closed form
  is what makes it vectorisable: with ``S_1 = GEAR[b]`` and
  ``S_2m[i] = S_m[i] + (S_m[i-m] << m)``, five doubling passes give ``S_32``
  for a whole block at once, instead of a Python loop per byte;
* a position is a **cut candidate** when the top bits of ``h`` selected by a
  mask are all zero. Before the chunk reaches ``AVG`` bytes the mask is
  ``log2(AVG) + 2`` bits wide (cuts are rare), after it ``log2(AVG) - 2``
  (cuts are likely): chunk sizes bunch up around ``AVG`` instead of spreading
  geometrically, which is what bounds the bytes a small edit costs;
* a chunk is never shorter than ``MIN`` (except the file's last) nor longer
  than ``MAX``.

The window hash depends only on the last 32 bytes, never on where the chunk
started (the reference implementation restarts ``h`` at each chunk's ``MIN``
point; the first 32 positions after it are the only difference). The gear
table and the parameters are part of the on-disk contract: changing them
changes every boundary and so costs one full copy of every chunked file.
They are frozen as version 1.

Memory is bounded: the file is read in ``BLOCK``-byte pieces into reused
buffers; only the (few) candidate positions are kept.
"""

from __future__ import annotations

import bisect
import functools
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

MIN = 256 * 1024
AVG = 1024 * 1024
MAX = 4 * 1024 * 1024
WINDOW = 32
BLOCK = 1024 * 1024  # bytes hashed per vectorised step: arrays stay in cache

_AVG_BITS = AVG.bit_length() - 1
# Masks over the top bits of the 32-bit hash: those bits depend on every byte of the window.
MASK_S = ((1 << (_AVG_BITS + 2)) - 1) << (32 - (_AVG_BITS + 2))
MASK_L = ((1 << (_AVG_BITS - 2)) - 1) << (32 - (_AVG_BITS - 2))
assert MASK_S & MASK_L == MASK_L  # every "small" candidate is also a "large" one


@functools.cache
def gear_table() -> npt.NDArray[np.uint32]:
    """256 pseudo-random 32-bit words, derived from a fixed string (frozen: version 1)."""
    import blake3
    import numpy as np

    raw = blake3.blake3(b"gitsnap fastcdc gear table v1").digest(length=256 * 4)
    return np.frombuffer(raw, dtype="<u4").astype(np.uint32)


class _Hasher:
    """Window hashes of consecutive blocks, with reused scratch arrays."""

    def __init__(self) -> None:
        import numpy as np

        self.np = np
        self.gear = gear_table()
        n = BLOCK + WINDOW
        self.s = np.empty(n, dtype=np.uint32)
        self.t = np.empty(n, dtype=np.uint32)
        self.hit = np.empty(n, dtype=bool)

    def hashes(self, data: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint32]:
        """The gear hash at every position of ``data`` (at most ``BLOCK + WINDOW`` bytes).

        Exact from index ``WINDOW - 1`` on; before that the window is cut
        short by the start of ``data``. The result is a reused buffer.
        """
        np = self.np
        n = data.size
        s, t = self.s[:n], self.t[:n]
        np.take(self.gear, data, out=s)
        m = 1
        while m < WINDOW:  # S_2m[i] = S_m[i] + (S_m[i - m] << m)
            np.left_shift(s[: n - m], m, out=t[: n - m])
            np.add(s[m:], t[: n - m], out=s[m:])
            m *= 2
        return s

    def candidates(
        self, data: npt.NDArray[np.uint8], base: int, skip: int
    ) -> tuple[list[int], list[int]]:
        """Absolute positions (``base`` + index) in ``data[skip:]`` whose hash hits each mask.

        ``data[:skip]`` is context only: the last ``WINDOW - 1`` bytes before the block.
        """
        np = self.np
        s = self.hashes(data)[skip:]
        t = self.t
        hit = self.hit[: s.size]
        np.bitwise_and(s, MASK_L, out=t[: s.size])
        np.equal(t[: s.size], 0, out=hit)
        large = np.flatnonzero(hit)
        if large.size == 0:
            return [], []
        small = large[(s[large] & MASK_S) == 0]
        off = base + skip
        return (small + off).tolist(), (large + off).tolist()


def scan(
    fd: int, start: int, end: int, buf: bytearray | None = None
) -> tuple[list[int], list[int]]:
    """Cut candidates for the bytes ``[start, end)`` of ``fd``: (small-mask hits, large-mask hits).

    A position ``p`` is a candidate when the window ending at byte ``p`` hits
    the mask; a chunk cut there ends just after byte ``p``.
    """
    import numpy as np

    hasher = _Hasher()
    buf = buf if buf is not None and len(buf) >= BLOCK + WINDOW else bytearray(BLOCK + WINDOW)
    view = memoryview(buf)
    arr = np.frombuffer(buf, dtype=np.uint8)
    small: list[int] = []
    large: list[int] = []
    ctx = 0  # bytes of context at the front of buf
    pos = start
    while pos < end:
        want = min(BLOCK, end - pos)
        got = 0
        while got < want:
            n = os.preadv(fd, [view[ctx + got : ctx + want]], pos + got)
            if n == 0:
                from gitsnap.errors import ConcurrentChange

                raise ConcurrentChange("a file got shorter while it was being chunked")
            got += n
        s, lg = hasher.candidates(arr[: ctx + want], pos - ctx, ctx)
        small += s
        large += lg
        pos += want
        keep = min(WINDOW - 1, ctx + want)
        buf[:keep] = buf[ctx + want - keep : ctx + want]
        ctx = keep
    return small, large


def cuts(start: int, end: int, small: list[int], large: list[int]) -> Iterator[tuple[int, int]]:
    """Chunks ``(offset, size)`` tiling ``[start, end)`` by the FastCDC rules."""
    s = start
    while s < end:
        remaining = end - s
        if remaining <= MIN:
            yield s, remaining
            return
        # Normalised chunking: a chunk of length L ends after byte s+L-1. The
        # strict mask applies up to AVG bytes, the loose one up to MAX.
        lo, mid, hi = s + MIN - 1, s + min(AVG, remaining) - 1, s + min(MAX, remaining) - 1
        i = bisect.bisect_left(small, lo)
        if i < len(small) and small[i] < mid:
            cut = small[i] + 1
        else:
            j = bisect.bisect_left(large, mid)
            cut = large[j] + 1 if j < len(large) and large[j] < hi else hi + 1
        yield s, cut - s
        s = cut


def chunk_fd(fd: int, start: int, end: int, buf: bytearray | None = None) -> list[tuple[int, int]]:
    """Content-defined chunks ``(offset, size)`` that tile ``[start, end)`` of an open file."""
    if end - start <= MIN:
        return [(start, end - start)] if end > start else []
    small, large = scan(fd, start, end, buf)
    return list(cuts(start, end, small, large))


def chunk_file(
    path: str | os.PathLike[str], start: int = 0, end: int | None = None
) -> list[tuple[int, int]]:
    fd = os.open(path, os.O_RDONLY)
    try:
        if end is None:
            end = os.fstat(fd).st_size
        return chunk_fd(fd, start, end)
    finally:
        os.close(fd)


def chunk_bytes(data: bytes | bytearray | memoryview) -> list[tuple[int, int]]:
    """Chunks of an in-memory buffer (tests, small inputs); the same as :func:`chunk_fd`'s."""
    import numpy as np

    n = len(data)
    if n <= MIN:
        return [(0, n)] if n else []
    arr = np.frombuffer(data, dtype=np.uint8)
    hasher = _Hasher()
    small: list[int] = []
    large: list[int] = []
    for pos in range(0, n, BLOCK):
        ctx = min(WINDOW - 1, pos)
        s, lg = hasher.candidates(arr[pos - ctx : min(n, pos + BLOCK)], pos - ctx, ctx)
        small += s
        large += lg
    return list(cuts(0, n, small, large))
