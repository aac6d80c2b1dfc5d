"""Cheap per-tensor statistics from raw safetensors bytes, streamed.

The pointer file (D5) carries a few statistics per tensor (mean, std, min, max,
L2 norm, count of non-finite values) so that ``git snap diff`` can show *how* a
tensor changed without downloading any blob. They are computed on the save
path, while the tensor's bytes stream past in chunks for hashing, so this
module:

* works on the raw little-endian bytes exactly as safetensors stores them and
  uses numpy only: saving a safetensors checkpoint must not import torch (D10).
  BF16 widens to float32 by a 16-bit shift, the F8 formats and F16 through
  lookup tables, so every element is converted exactly;
* never sees the whole tensor: :meth:`TensorStats.update` takes chunks of any
  size that is a multiple of the element size and keeps O(1) state, and the
  temporary arrays live in a few small per-thread buffers that are reused for
  every block of every tensor, so memory stays flat (D11) and no page faults
  are paid per chunk;
* is accurate where naive formulas are not. Elements are processed in blocks;
  each block is reduced in float32 (float64 for F64 and integers) with
  blocked/pairwise sums, its spread is measured as squared deviations from a
  shift close to its mean (see :func:`_moments`), and blocks are merged in
  float64 with Chan et al.'s parallel update. The std of a LayerNorm weight
  (about 1.0 +- 1e-4) therefore keeps its digits, where
  ``sqrt(E[x^2] - mean^2)`` would return noise;
* is fast on the common path: non-finite values are only looked for when a
  block's min or max is non-finite (NaN propagates through min/max), so a
  healthy tensor never pays for ``isfinite``.

Statistics are taken over the finite elements only: one NaN must not hide how
the other million weights moved; ``nonfinite`` reports the NaN/Inf count.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["BLOCK", "DTYPE_SIZES", "TensorStats", "many", "supports", "widener"]

# Bytes per element for the safetensors dtype names we can widen. Sub-byte
# types (F4, F6_*) are left out: their elements do not start on byte
# boundaries, so a byte chunk cannot be interpreted on its own.
DTYPE_SIZES: dict[str, int] = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "F8_E8M0": 1,
    "U16": 2,
    "I16": 2,
    "F16": 2,
    "BF16": 2,
    "U32": 4,
    "I32": 4,
    "F32": 4,
    "U64": 8,
    "I64": 8,
    "F64": 8,
}

# Elements per block: the unit that is widened, reduced and merged. Each
# block costs ~25 us of Python and numpy call overhead, so small blocks are
# slow (64 Ki elements: ~0.4 s per GiB of float32 here); past 512 Ki the
# block and its deviations (2 x 2 MiB) no longer sit comfortably in L3 next
# to the caller's chunk. 512 Ki measured fastest (~0.2 s per GiB on one
# core). It also bounds the per-thread scratch buffers (a few MiB) whatever
# chunk size the caller streams.
BLOCK = 1 << 19

# Width of the row view used by _sum: wide enough for vectorised adds over a
# contiguous row, narrow enough that each column sums few terms (a full
# block is 512 rows).
_COLS = 1024

# Leading elements of a block whose mean is the first shift tried by _moments.
_SAMPLE = 1024

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)

FloatArray = npt.NDArray[np.floating[Any]]

# Range of max|x| (by dtype char) within which a block is reduced in its own
# precision. Above it, sums of squares could overflow: the bound keeps
# BLOCK * (2 * bound)**2 <= max / 100 (about 1.3e15 for float32). Below it,
# deviations could be so small that their squares fall into the subnormal
# range and lose digits or vanish (tiny is sqrt(smallest normal) / eps,
# about 9e-13 for float32). Outside it, see _moments_scaled.
_SAFE_RANGE = {
    c: (
        math.sqrt(float(np.finfo(c).smallest_normal)) / float(np.finfo(c).eps),
        math.sqrt(float(np.finfo(c).max) / (400 * BLOCK)),
    )
    for c in "fd"
}


def _f8_table(exp_bits: int, man_bits: int, *, ieee_special: bool) -> npt.NDArray[np.float32]:
    """Decode all 256 codes of a sign/exponent/mantissa 8-bit float into float32.

    ``ieee_special`` selects the IEEE-like E5M2 rule (all-ones exponent means
    Inf when the mantissa is 0, NaN otherwise). Without it we get the "fn"
    variant used by ``torch.float8_e4m3fn``: no Inf, and only the all-ones
    exponent *and* mantissa code (S.1111.111) is NaN, which buys one more
    binade of finite values (max 448).
    """
    codes = np.arange(256, dtype=np.int64)
    sign = np.where(codes >> 7 == 1, -1.0, 1.0)
    exp = (codes >> man_bits) & ((1 << exp_bits) - 1)
    man = codes & ((1 << man_bits) - 1)
    bias = (1 << (exp_bits - 1)) - 1
    frac = man / float(1 << man_bits)
    # Subnormals (exponent field 0) have no implicit leading 1 and the
    # exponent of the smallest normal binade.
    value = np.where(
        exp == 0,
        np.ldexp(frac, 1 - bias),
        np.ldexp(1.0 + frac, (exp - bias).astype(np.int32)),
    )
    top = (1 << exp_bits) - 1
    if ieee_special:
        value = np.where((exp == top) & (man == 0), np.inf, value)
        value = np.where((exp == top) & (man != 0), np.nan, value)
    else:
        value = np.where((exp == top) & (man == (1 << man_bits) - 1), np.nan, value)
    # Every value is exactly representable in float32 (at most 3 mantissa
    # bits, exponents within float32 range), so this cast is exact.
    return (sign * value).astype(np.float32)


def _e8m0_table() -> npt.NDArray[np.float32]:
    """Decode ``float8_e8m0fnu`` (MX block scales): 2**(code-127), 0xFF is NaN.

    No sign, no mantissa; 2**-127 is a float32 subnormal, still exact.
    """
    codes = np.arange(256, dtype=np.int32)
    value = np.ldexp(np.ones(256), codes - 127)
    value[255] = np.nan
    return value.astype(np.float32)


# Built once at import (~0.3 ms): three 1 KiB tables for the F8 formats, and
# one of 256 KiB for F16, which numpy decodes exactly but without SIMD: its
# own float16 -> float32 cast costs 2.6 ns per element here, a gather from
# this L2-resident table 1.1 ns.
_F8_E4M3_TABLE = _f8_table(4, 3, ieee_special=False)
_F8_E5M2_TABLE = _f8_table(5, 2, ieee_special=True)
_F8_E8M0_TABLE = _e8m0_table()
_F16_TABLE = (
    np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)
)

_scratch_local = threading.local()


def _scratch(role: str, dtype: np.dtype[Any], n: int) -> npt.NDArray[Any]:
    """A reused per-thread buffer of ``n`` (normally ``<= BLOCK``) elements.

    Stats may run in the same worker threads as the parallel hashing (D2), so
    buffers are per thread; within a thread they are reused across blocks and
    tensors, so a checkpoint of thousands of tensors allocates (and faults in)
    them once.
    """
    bufs: dict[tuple[str, str], npt.NDArray[Any]] | None = getattr(_scratch_local, "bufs", None)
    if bufs is None:
        bufs = {}
        _scratch_local.bufs = bufs
    key = (role, dtype.str)
    buf = bufs.get(key)
    if buf is None or buf.size < n:
        buf = np.empty(max(n, BLOCK), dtype=dtype)
        bufs[key] = buf
    return buf[:n]


def _aligned(raw: npt.NDArray[Any], dtype: np.dtype[Any]) -> FloatArray:
    """Use ``raw`` as is when numpy can reduce it directly, else copy it.

    A chunk may start at any byte offset of the caller's buffer. numpy handles
    misaligned arrays by buffering in 8 Ki-element pieces, which is slower and
    turns the pairwise sum into a sequential sum of pieces; one copy into an
    aligned scratch buffer avoids both.
    """
    if raw.flags.aligned and raw.dtype.isnative:
        return raw
    out = _scratch("wide", dtype, raw.size)
    np.copyto(out, raw)
    return out


def _widen_f32(raw: npt.NDArray[Any]) -> FloatArray:
    return _aligned(raw, _F32)


def _widen_f64(raw: npt.NDArray[Any]) -> FloatArray:
    return _aligned(raw, _F64)


def _widen_bf16(raw: npt.NDArray[Any]) -> FloatArray:
    # bfloat16 is the top half of a float32: widen the bits, shift, reinterpret.
    out = _scratch("wide", _F32, raw.size)
    bits = out.view(np.uint32)
    np.copyto(bits, raw, casting="unsafe")
    np.left_shift(bits, 16, out=bits)
    return out


def _widen_table(table: npt.NDArray[np.float32]) -> Callable[[npt.NDArray[Any]], FloatArray]:
    """Decode codes (every value of the raw unsigned dtype) through ``table``."""

    def widen(raw: npt.NDArray[Any]) -> FloatArray:
        out = _scratch("wide", _F32, raw.size)
        # mode="clip" never triggers (table covers every code) but, unlike the default
        # "raise", lets numpy write straight into ``out`` without buffering.
        np.take(table, raw, out=out, mode="clip")
        return out

    return widen


def _widen_int(dtype: np.dtype[Any]) -> Callable[[npt.NDArray[Any]], FloatArray]:
    def widen(raw: npt.NDArray[Any]) -> FloatArray:
        out = _scratch("wide", dtype, raw.size)
        np.copyto(out, raw, casting="unsafe")
        return out

    return widen


def _widen_bool(raw: npt.NDArray[Any]) -> FloatArray:
    # Any non-zero byte is True, as torch and numpy read it.
    out = _scratch("wide", _F32, raw.size)
    np.not_equal(raw, 0, out=out, casting="unsafe")
    return out


# dtype name -> (numpy dtype of the stored little-endian elements, widening).
# Integers of up to 16 bits are exact in float32 and get the float32 path,
# which is twice as fast as float64 and as accurate as for F16/BF16 data of
# the same range; wider integers need float64 (exact below 2**53; larger
# I64/U64 values round, which is acceptable for summary statistics).
_KINDS: dict[str, tuple[np.dtype[Any], Callable[[npt.NDArray[Any]], FloatArray]]] = {
    "BOOL": (np.dtype("u1"), _widen_bool),
    "U8": (np.dtype("u1"), _widen_int(_F32)),
    "I8": (np.dtype("i1"), _widen_int(_F32)),
    "F8_E4M3": (np.dtype("u1"), _widen_table(_F8_E4M3_TABLE)),
    "F8_E5M2": (np.dtype("u1"), _widen_table(_F8_E5M2_TABLE)),
    "F8_E8M0": (np.dtype("u1"), _widen_table(_F8_E8M0_TABLE)),
    "U16": (np.dtype("<u2"), _widen_int(_F32)),
    "I16": (np.dtype("<i2"), _widen_int(_F32)),
    "F16": (np.dtype("<u2"), _widen_table(_F16_TABLE)),
    "BF16": (np.dtype("<u2"), _widen_bf16),
    "U32": (np.dtype("<u4"), _widen_int(_F64)),
    "I32": (np.dtype("<i4"), _widen_int(_F64)),
    "F32": (np.dtype("<f4"), _widen_f32),
    "U64": (np.dtype("<u8"), _widen_int(_F64)),
    "I64": (np.dtype("<i8"), _widen_int(_F64)),
    "F64": (np.dtype("<f8"), _widen_f64),
}
assert _KINDS.keys() == DTYPE_SIZES.keys()


def supports(dtype: str) -> bool:
    """Whether :class:`TensorStats` can read elements of this safetensors dtype."""
    return dtype in _KINDS


def widener(
    dtype: str,
) -> tuple[np.dtype[Any], Callable[[npt.NDArray[Any]], FloatArray]]:
    """(numpy dtype of the stored elements, function widening them to float) for a dtype name.

    The one implementation of the dtype conversions (BF16 by a shift, F8 and
    F16 by tables), shared by the statistics and the value diff. The function
    returns float32 (float64 for F64 and wide integers). Its result may be a
    per-thread scratch buffer (sized for :data:`BLOCK` elements) that the
    next call in the same thread overwrites: copy it before widening a
    second array that must live alongside it.

    >>> raw, widen = widener("BF16")
    >>> widen(np.array([0x3F80, 0xC000], dtype=raw)).tolist()
    [1.0, -2.0]
    """
    try:
        return _KINDS[dtype]
    except KeyError:
        raise ValueError(f"no widening for tensor dtype {dtype!r}") from None


class TensorStats:
    """Streaming statistics of one tensor, fed its raw bytes in order.

    >>> import numpy as np
    >>> s = TensorStats("F32")
    >>> data = np.array([1.0, 2.0, np.nan, 3.0], dtype="<f4").tobytes()
    >>> s.update(data[:4]); s.update(data[4:])
    >>> r = s.result()
    >>> r["count"], r["nonfinite"], r["mean"], r["max"]
    (4, 1, 2.0, 3.0)
    """

    __slots__ = (
        "_count",
        "_dtype",
        "_itemsize",
        "_m2",
        "_max",
        "_mean",
        "_min",
        "_n",
        "_nonfinite",
        "_raw_dtype",
        "_widen",
    )

    def __init__(self, dtype: str) -> None:
        try:
            self._raw_dtype, self._widen = _KINDS[dtype]
        except KeyError:
            raise ValueError(f"no statistics for tensor dtype {dtype!r}") from None
        self._dtype = dtype
        self._itemsize = DTYPE_SIZES[dtype]
        self._count = 0  # all elements seen
        self._nonfinite = 0
        # Running moments of the finite elements, merged block by block.
        self._n = 0
        self._mean = 0.0
        self._m2 = 0.0  # sum of squared deviations from the mean
        self._min = math.inf
        self._max = -math.inf

    def update(self, data: memoryview | bytes | bytearray) -> None:
        """Add the next chunk of the tensor's bytes (any multiple of the item size).

        ``data`` must be C-contiguous; it is only read during the call, so the
        caller may reuse its buffer for the next chunk.
        """
        raw = np.frombuffer(data, dtype=np.uint8)
        if raw.size % self._itemsize:
            raise ValueError(
                f"{raw.size} bytes is not a whole number of {self._dtype} elements"
                f" ({self._itemsize} bytes each)"
            )
        raw = raw.view(self._raw_dtype)
        self._count += raw.size
        for start in range(0, raw.size, BLOCK):
            self._add(self._widen(raw[start : start + BLOCK]))

    def _add(self, x: FloatArray) -> None:
        """Merge one widened block (float32 or float64, at most BLOCK elements)."""
        n = x.size
        lo = float(x.min())
        hi = float(x.max())
        if not (math.isfinite(lo) and math.isfinite(hi)):
            # Rare path: NaN propagated into min/max, or an Inf is present.
            x = x[np.isfinite(x)]
            self._nonfinite += n - x.size
            n = x.size
            if n == 0:
                return
            lo = float(x.min())
            hi = float(x.max())
        bound = max(-lo, hi)
        tiny, huge = _SAFE_RANGE[x.dtype.char]
        if tiny <= bound <= huge:
            mean, m2 = _moments(x)
        elif bound == 0.0:  # all zeros, e.g. a freshly initialised bias
            mean, m2 = 0.0, 0.0
        else:
            mean, m2 = _moments_scaled(x, bound)
        self._min = min(self._min, lo)
        self._max = max(self._max, hi)
        if self._n == 0:
            self._n, self._mean, self._m2 = n, mean, m2
            return
        # Chan, Golub & LeVeque's pairwise update: exact algebra, and stable
        # because it only combines deviations, never raw sums of squares.
        na, total = self._n, self._n + n
        delta = mean - self._mean
        self._mean += delta * (n / total)
        self._m2 += m2 + delta * delta * (na * (n / total))
        self._n = total

    def result(self) -> dict[str, float | int]:
        """``count`` and ``nonfinite``, plus mean/std/min/max/l2 of the finite elements.

        The float statistics are left out when no element is finite (empty
        tensor, all NaN), rather than invented. ``std`` is the population std.
        """
        out: dict[str, float | int] = {"count": self._count, "nonfinite": self._nonfinite}
        if self._n == 0:
            return out
        m2 = max(self._m2, 0.0)
        out["mean"] = self._mean
        out["std"] = math.sqrt(m2 / self._n)
        out["min"] = self._min
        out["max"] = self._max
        out["l2"] = math.sqrt(m2 + self._n * (self._mean * self._mean))
        return out


def _sum(a: FloatArray) -> float:
    """Sum in a's precision, about as accurate as numpy's pairwise sum, twice as fast.

    numpy's pairwise summation is scalar code (~14 GB/s here); adding the rows
    of a ``(k, _COLS)`` view into one row is a vectorised elementwise add that
    runs near cache bandwidth. Each of the ``_COLS`` partial sums then
    accumulates only ``k <= BLOCK / _COLS`` (512) terms, and the partials
    are summed pairwise, so the error stays within a small multiple of the
    pairwise sum's (measured: 1e-7 relative vs 8e-8 for squares of normals).
    """
    rows = a.size // _COLS
    if rows < 2:
        return float(a.sum())
    head = rows * _COLS
    total = float(np.add.reduce(a[:head].reshape(rows, _COLS), axis=0).sum())
    if head < a.size:
        total += float(a[head:].sum())
    return total


def _moments(x: FloatArray) -> tuple[float, float]:
    """Mean and sum of squared deviations of a finite block, in x's precision.

    Shifted-data algorithm: with deviations ``d = x - k`` from a shift ``k``,
    ``mean = k + sum(d)/n`` and ``M2 = sum(d**2) - sum(d)**2/n``, which is
    ``sum((x - mean)**2)`` algebraically. Numerically the subtraction costs a
    relative error of about ``eps * sum(d**2) / M2``: tiny when ``k`` is
    within a few std of the mean, and, when the mean dwarfs the std, ``x - k``
    is even exact. ``k`` is the mean of the block's first ``_SAMPLE``
    elements (already in cache, so nearly free); if that was a poor guess
    (``sum(d**2) > 16 * M2``), the block is measured again around the
    corrected mean, which is then accurate to a few ulps of the deviations.
    Either way this matches the corrected two-pass algorithm, whose shift is
    a first full mean, with one pass fewer on the common path. The caller
    guarantees, through ``_SAFE_RANGE``, that nothing here can overflow or
    underflow.
    """
    n = x.size
    shift = float(x[:_SAMPLE].mean())
    for _ in range(2):
        k = x.dtype.type(shift)
        d = np.subtract(x, k, out=_scratch("dev", x.dtype, n))
        sd = _sum(d)
        np.multiply(d, d, out=d)
        sq = _sum(d)
        shift = float(k) + sd / n
        m2 = sq - sd * sd / n
        if 16.0 * m2 >= sq:
            break
    return shift, max(m2, 0.0)


def _moments_scaled(x: FloatArray, bound: float) -> tuple[float, float]:
    """:func:`_moments` for blocks of extreme magnitude (outside ``_SAFE_RANGE``).

    Huge values (above ~1e15 in float32) do not occur in trained weights and
    subnormal-only blocks hardly do, but a corrupt or adversarial file must
    still get right answers and no overflow warnings. Work in float64, scaled
    by a power of two (exact) so that the largest magnitude is in [0.5, 1),
    and scale back. F64 data whose M2 exceeds float64 reports an infinite
    std; F64 data below ~1e-154 reports std 0 (its squares underflow).
    """
    exp = math.frexp(bound)[1]
    scaled = _scratch("scaled", _F64, x.size)
    np.copyto(scaled, x)
    np.ldexp(scaled, -exp, out=scaled)
    mean, m2 = _moments(scaled)
    try:
        return math.ldexp(mean, exp), math.ldexp(m2, 2 * exp)
    except OverflowError:  # the true M2 exceeds float64: report it as such
        return math.ldexp(mean, exp), math.inf


def many(dtype: str, data: memoryview | bytes | bytearray, n: int) -> list[dict[str, float | int]]:
    """:meth:`TensorStats.result` of each of ``len(data) // (n * itemsize)`` tensors of ``n``
    elements lying back to back in ``data``, bit for bit, with one numpy call per step.

    Thousands of small tensors of one shape (a mixture of experts) cost ~40 us
    each through :class:`TensorStats`, nearly all of it per-call overhead; here
    each step of :func:`_moments` runs once over the stacked ``(tensors, n)``
    view. Every reduction runs along the same contiguous row in the same order
    as the one-tensor path (numpy's pairwise sum over a row, the same
    row-by-row adds in :func:`_sum`), so the results are identical, not close
    (``tests/test_stats.py`` compares them). A tensor off the common path --
    non-finite values, a zero min or max (whose sign a reduction order could
    change), magnitudes outside ``_SAFE_RANGE``, a shift that needed a second
    pass -- goes through :class:`TensorStats` itself. ``n`` must be at most
    :data:`BLOCK` (one block per tensor).
    """
    raw_dtype, widen = widener(dtype)
    item = DTYPE_SIZES[dtype]
    size = n * item
    if n <= 0 or n > BLOCK or len(data) % size:
        raise ValueError(f"{len(data)} bytes are not whole tensors of {n} {dtype} elements")
    t = len(data) // size
    if t == 0:
        return []
    flat = np.frombuffer(data, dtype=raw_dtype)
    x = widen(flat).reshape(t, n)
    # NaN and inf rows take the one-tensor path below; their warnings here mean nothing.
    with np.errstate(all="ignore"):
        lo = x.min(axis=1)
        hi = x.max(axis=1)
        tiny, huge = _SAFE_RANGE[x.dtype.char]
        bound = np.maximum(-lo, hi)
        ok = (lo != 0) & (hi != 0) & (bound >= tiny) & (bound <= huge)  # False for NaN
        shift = x[:, :_SAMPLE].mean(axis=1)  # x.dtype, as in _moments
        d = np.subtract(x, shift[:, None], out=_scratch("dev", x.dtype, x.size).reshape(t, n))
        sd = _sum_rows(d)
        np.multiply(d, d, out=d)
        sq = _sum_rows(d)
        mean = shift.astype(np.float64) + sd / n
        m2 = sq - sd * sd / n
        ok &= 16.0 * m2 >= sq
    out: list[dict[str, float | int]] = []
    lo_l, hi_l, mean_l, m2_l, ok_l = (
        lo.tolist(),
        hi.tolist(),
        mean.tolist(),
        m2.tolist(),
        ok.tolist(),
    )
    view = memoryview(data).cast("B")
    for i in range(t):
        if not ok_l[i]:
            acc = TensorStats(dtype)
            acc.update(view[i * size : (i + 1) * size])
            out.append(acc.result())
            continue
        mu = mean_l[i]
        m = max(m2_l[i], 0.0)
        out.append(
            {
                "count": n,
                "nonfinite": 0,
                "mean": mu,
                "std": math.sqrt(m / n),
                "min": lo_l[i],
                "max": hi_l[i],
                "l2": math.sqrt(m + n * (mu * mu)),
            }
        )
    return out


def _sum_rows(a: FloatArray) -> npt.NDArray[np.float64]:
    """:func:`_sum` of each row of ``a``, as float64, summed exactly as :func:`_sum` does."""
    t, n = a.shape
    rows = n // _COLS
    if rows < 2:
        return np.asarray(a.sum(axis=1), dtype=np.float64)
    head = rows * _COLS
    total = np.add.reduce(a[:, :head].reshape(t, rows, _COLS), axis=1).sum(axis=1)
    out = np.asarray(total, dtype=np.float64)
    if head < n:
        out += a[:, head:].sum(axis=1).astype(np.float64)
    return out
