"""Per-tensor statistics from raw safetensors bytes, checked against torch.

The reference for every dtype is torch itself: the tensor is widened to
float64 by torch, the non-finite elements are dropped, and torch's mean,
population std, min, max and norm are compared with what ``gitsnap.stats``
computes from the tensor's raw bytes fed in uneven chunks.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gitsnap import stats
from gitsnap.stats import DTYPE_SIZES, TensorStats, supports

TORCH_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
    "I8": torch.int8,
    "I16": torch.int16,
    "I32": torch.int32,
    "I64": torch.int64,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
# Newer dtypes that torch can create and widen but not do arithmetic on.
for _name, _attr in [
    ("U16", "uint16"),
    ("U32", "uint32"),
    ("U64", "uint64"),
    ("F8_E8M0", "float8_e8m0fnu"),
]:
    if hasattr(torch, _attr):
        TORCH_DTYPES[_name] = getattr(torch, _attr)

FLOAT_NAMES = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2", "F8_E8M0"}


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Shrink the block size so small tensors span many blocks.

    Blocks are merged with Chan's formula; with the real 512 Ki-element blocks
    only multi-megabyte tensors would exercise it. 4096 keeps several rows of
    the blocked sum per block. Scratch buffers are already at least this big.
    """
    monkeypatch.setattr(stats, "BLOCK", 4096)
    yield


def make_tensor(name: str, n: int, seed: int) -> torch.Tensor:
    """A random tensor of the dtype, with NaN and +-Inf where representable."""
    gen = torch.Generator().manual_seed(seed)
    dtype = TORCH_DTYPES[name]
    if name == "BOOL":
        return torch.rand(n, generator=gen) < 0.3
    if name == "F8_E8M0":
        codes = torch.randint(100, 150, (n,), generator=gen, dtype=torch.uint8)
        codes[:: max(1, n // 7)] = 0xFF  # the only NaN code
        return codes.view(dtype)
    if name not in FLOAT_NAMES:
        info = torch.iinfo(dtype)
        if name == "U64":  # randint cannot draw beyond int64
            return torch.randint(0, 2**62, (n,), generator=gen, dtype=torch.int64).to(dtype)
        return torch.randint(info.min, info.max, (n,), generator=gen, dtype=torch.int64).to(dtype)
    x = torch.randn(n, generator=gen, dtype=torch.float64) * 3.0 + 0.5
    if n >= 20:
        idx = torch.randperm(n, generator=gen)
        x[idx[:3]] = math.nan
        x[idx[3:5]] = math.inf  # NaN in F8_E4M3, which has no Inf
        x[idx[5:6]] = -math.inf
    return x.to(dtype)


def raw_bytes(t: torch.Tensor) -> bytes:
    return t.contiguous().view(torch.uint8).numpy().tobytes()


def reference(t: torch.Tensor) -> dict[str, float | int]:
    """torch's own statistics, in float64, over the finite elements."""
    x = t.to(torch.float64).flatten()
    finite = torch.isfinite(x)
    out: dict[str, float | int] = {"count": x.numel(), "nonfinite": int((~finite).sum())}
    f = x[finite]
    if f.numel():
        out.update(
            mean=f.mean().item(),
            std=f.std(correction=0).item(),
            min=f.min().item(),
            max=f.max().item(),
            l2=torch.linalg.vector_norm(f).item(),
        )
    return out


def uneven_chunks(data: bytes, itemsize: int, seed: int) -> Iterator[bytes | memoryview]:
    """Cut ``data`` at random element boundaries: empty, tiny and large chunks."""
    rng = np.random.default_rng(seed)
    n = len(data) // itemsize
    cuts = sorted({0, n, *rng.integers(0, n + 1, size=min(n, 12)).tolist(), 1 % (n + 1)})
    view = memoryview(data)
    yield view[:0]
    for a, b in itertools.pairwise(cuts):
        # Alternate bytes and memoryview slices (the latter keep odd offsets).
        piece = view[a * itemsize : b * itemsize]
        yield bytes(piece) if a % 2 else piece


def stats_of(name: str, chunks: Any) -> dict[str, float | int]:
    s = TensorStats(name)
    for chunk in chunks:
        s.update(chunk)
    return s.result()


def assert_stats_close(
    got: dict[str, float | int], want: dict[str, float | int], rtol: float = 1e-6
) -> None:
    assert got.keys() == want.keys()
    assert got["count"] == want["count"]
    assert got["nonfinite"] == want["nonfinite"]
    if "mean" not in want:
        return
    # min and max are exact conversions of stored elements.
    assert got["min"] == want["min"]
    assert got["max"] == want["max"]
    std = float(want["std"])
    # The mean may be ~0 relative to its spread, so bound its error by the std.
    assert math.isclose(got["mean"], want["mean"], rel_tol=rtol, abs_tol=rtol * std)
    assert math.isclose(got["std"], std, rel_tol=rtol, abs_tol=1e-300)
    assert math.isclose(got["l2"], want["l2"], rel_tol=rtol)
    for key, value in got.items():
        assert type(value) is (int if key in ("count", "nonfinite") else float), key


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize("name", sorted(TORCH_DTYPES))
@pytest.mark.parametrize("n", [1, 1000, 30_001])
def test_matches_torch(name: str, n: int) -> None:
    t = make_tensor(name, n, seed=n)
    want = reference(t)
    got = stats_of(name, uneven_chunks(raw_bytes(t), DTYPE_SIZES[name], seed=n))
    assert_stats_close(got, want)
    if n >= 20 and name in FLOAT_NAMES:
        assert got["nonfinite"] > 0  # the test put NaN/Inf there


@pytest.mark.parametrize("name", sorted(TORCH_DTYPES))
def test_dtype_sizes_match_torch(name: str) -> None:
    assert DTYPE_SIZES[name] == TORCH_DTYPES[name].itemsize
    assert supports(name)


def test_lookup_tables_match_torch() -> None:
    """Every code of the table-decoded formats widens exactly as torch does."""
    for table, name in [
        (stats._F8_E4M3_TABLE, "F8_E4M3"),
        (stats._F8_E5M2_TABLE, "F8_E5M2"),
        (stats._F8_E8M0_TABLE, "F8_E8M0"),
        (stats._F16_TABLE, "F16"),
    ]:
        if name not in TORCH_DTYPES:
            continue
        codes = torch.arange(table.size, dtype=torch.int32)
        codes = codes.to(torch.uint8 if table.size == 256 else torch.int16)
        want = codes.view(TORCH_DTYPES[name]).float().numpy()
        np.testing.assert_array_equal(table, want, err_msg=name)


def test_real_block_size_many_blocks() -> None:
    """Five and a bit real blocks, in chunks that straddle block boundaries."""
    t = make_tensor("F32", 5 * stats.BLOCK + 17, seed=7)
    data = raw_bytes(t)
    step = (3 << 20) - 4 * 3
    chunks = [data[i : i + step] for i in range(0, len(data), step)]
    assert len(chunks) > 1
    assert_stats_close(stats_of("F32", chunks), reference(t))


def test_mean_much_larger_than_std() -> None:
    """LayerNorm-like weights: 1.0 +- 1e-4 in float32, where E[x^2]-mean^2 fails."""
    gen = torch.Generator().manual_seed(0)
    t = (1.0 + 1e-4 * torch.randn(1_000_003, generator=gen)).to(torch.float32)
    want = reference(t)
    got = stats_of("F32", uneven_chunks(raw_bytes(t), 4, seed=1))
    assert_stats_close(got, want, rtol=1e-6)
    # The naive float32 formula gets not even the first digit of this std.
    x = t.numpy()
    naive = math.sqrt(abs(float(np.mean(x * x)) - float(np.mean(x)) ** 2))
    assert not math.isclose(naive, want["std"], rel_tol=0.1)


@pytest.mark.usefixtures("small_blocks")
def test_nonstationary_blocks() -> None:
    """Blocks whose means differ by far more than their spread merge exactly."""
    gen = torch.Generator().manual_seed(3)
    parts = [c + s * torch.randn(5000, generator=gen) for c, s in [(0, 1e-3), (1e3, 1e-3), (-7, 1)]]
    t = torch.cat(parts).to(torch.float32)
    assert_stats_close(stats_of("F32", [raw_bytes(t)]), reference(t))


@pytest.mark.usefixtures("small_blocks")
def test_shift_far_from_block_mean() -> None:
    """A block whose first elements are outliers still gets an accurate std."""
    x = np.full(20_000, 1.0, dtype=np.float32)
    x += np.random.default_rng(0).standard_normal(x.size).astype(np.float32) * 1e-3
    x[:1024] = 5e4
    t = torch.from_numpy(x)
    assert_stats_close(stats_of("F32", [raw_bytes(t)]), reference(t))


@pytest.mark.parametrize(
    ("name", "scale"),
    [("F32", 3e38), ("F32", 1e20), ("F64", 5e152)],
)
def test_huge_values_no_overflow(name: str, scale: float) -> None:
    """Magnitudes whose squares overflow the block's precision: no warnings, right answer.

    (pytest turns RuntimeWarnings into errors in this project.)
    """
    gen = torch.Generator().manual_seed(1)
    t = ((torch.rand(3000, generator=gen, dtype=torch.float64) * 2 - 1) * scale).to(
        TORCH_DTYPES[name]
    )
    assert_stats_close(stats_of(name, [raw_bytes(t)]), reference(t))


@pytest.mark.parametrize("name", sorted(TORCH_DTYPES))
def test_empty_tensor(name: str) -> None:
    s = TensorStats(name)
    assert s.result() == {"count": 0, "nonfinite": 0}
    s.update(b"")
    s.update(memoryview(b""))
    assert s.result() == {"count": 0, "nonfinite": 0}


@pytest.mark.parametrize("name", ["F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"])
def test_all_nan(name: str) -> None:
    t = torch.full((10_000,), math.nan, dtype=torch.float32).to(TORCH_DTYPES[name])
    got = stats_of(name, uneven_chunks(raw_bytes(t), DTYPE_SIZES[name], seed=0))
    assert got == {"count": 10_000, "nonfinite": 10_000}


def test_all_inf_and_one_finite() -> None:
    x = np.array([np.inf, -np.inf, np.nan, -2.5, np.inf], dtype="<f4")
    assert stats_of("F32", [x.tobytes()]) == {
        "count": 5,
        "nonfinite": 4,
        "mean": -2.5,
        "std": 0.0,
        "min": -2.5,
        "max": -2.5,
        "l2": 2.5,
    }


@pytest.mark.parametrize("name", ["F32", "BF16", "F8_E5M2", "I16"])
def test_single_chunk_equals_many_chunks(name: str) -> None:
    t = make_tensor(name, 1_200_000, seed=11)
    data = raw_bytes(t)
    one = stats_of(name, [data])
    many = stats_of(name, uneven_chunks(data, DTYPE_SIZES[name], seed=5))
    assert_stats_close(many, one)


def test_common_path_never_calls_isfinite(monkeypatch: pytest.MonkeyPatch) -> None:
    t = make_tensor("F32", 2000, seed=3)
    t = t[torch.isfinite(t)]
    want = reference(t)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("isfinite called on a tensor without NaN/Inf")

    monkeypatch.setattr(stats.np, "isfinite", forbidden)
    assert_stats_close(stats_of("F32", [raw_bytes(t)]), want)


@pytest.mark.usefixtures("small_blocks")
def test_threads_do_not_share_scratch() -> None:
    """Stats may run in the hashing worker threads: buffers must be per thread."""
    names = ["F32", "BF16", "I32"] * 4
    tensors = [make_tensor(name, 50_000, seed=i) for i, name in enumerate(names)]

    def run(i: int) -> dict[str, float | int]:
        data = raw_bytes(tensors[i])
        return stats_of(names[i], uneven_chunks(data, DTYPE_SIZES[names[i]], seed=i))

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, range(len(tensors))))
    for t, got in zip(tensors, results, strict=True):
        assert_stats_close(got, reference(t))


def test_bool_reads_any_nonzero_byte_as_true() -> None:
    assert stats_of("BOOL", [bytes([0, 1, 2, 255])])["mean"] == 0.75


def test_unknown_dtype() -> None:
    for name in ["F4", "float32", "", "C64"]:
        assert not supports(name)
        with pytest.raises(ValueError, match="dtype"):
            TensorStats(name)


def test_partial_element_rejected() -> None:
    s = TensorStats("F32")
    with pytest.raises(ValueError, match="F32"):
        s.update(b"\x00" * 6)


def test_module_does_not_import_torch() -> None:
    """D10: the save path computes stats with numpy only."""
    code = "import sys, gitsnap.stats; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


@settings(max_examples=200, deadline=None)
@given(
    x=hnp.arrays(
        np.dtype("<f4"),
        st.integers(0, 3000),
        elements=st.floats(width=32, allow_nan=True, allow_infinity=True),
    ),
    cuts=st.lists(st.integers(0, 3000), max_size=8),
)
def test_chunking_invariance_f32(x: np.ndarray[Any, Any], cuts: list[int]) -> None:
    """Any split of a float32 tensor gives the statistics of the whole."""
    data = x.tobytes()
    bounds = sorted({0, x.size, *(c for c in cuts if c <= x.size)})
    pieces = [data[a * 4 : b * 4] for a, b in itertools.pairwise(bounds)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(stats, "BLOCK", 2048)
        whole = stats_of("F32", [data])
        split = stats_of("F32", pieces)
    finite = x[np.isfinite(x)].astype(np.float64)
    assert split["count"] == whole["count"] == x.size
    assert split["nonfinite"] == whole["nonfinite"] == x.size - finite.size
    if not finite.size:
        assert "mean" not in split and "mean" not in whole
        return
    assert split["min"] == whole["min"] == finite.min()
    assert split["max"] == whole["max"] == finite.max()
    # Errors are relative to the largest magnitude: float32 sums cannot
    # resolve finer than that, e.g. 1e30 and 1 in one tensor.
    scale = float(np.abs(finite).max())
    want_std = float(np.std(finite))
    for got in (whole, split):
        assert abs(got["mean"] - float(np.mean(finite))) <= 1e-6 * scale
        assert abs(got["std"] - want_std) <= 1e-6 * want_std + 1e-6 * scale
        assert math.isclose(got["l2"], float(np.linalg.norm(finite)), rel_tol=1e-6)


def _same(a: float | int, b: float | int) -> bool:
    """Equal bit for bit: the same type, value and sign (NaN equal to NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b and math.copysign(1, a) == math.copysign(1, b)


@pytest.mark.parametrize(
    "name", ["F32", "BF16", "F16", "F64", "I8", "U8", "I32", "BOOL", "F8_E4M3"]
)
def test_many_small_tensors_at_once_equal_one_by_one_bit_for_bit(name: str) -> None:
    """stats.many (a stack of equal tensors in one numpy call per step) gives exactly the
    results of TensorStats fed each tensor, on random data with NaN, +-inf, -0.0 and 0.0,
    a large offset (the second shift pass), and sizes around the 1024-column sum."""
    rng = np.random.default_rng(7)
    item = DTYPE_SIZES[name]
    for n in (1, 7, 1000, 1024, 1025, 2051, 4096, 65553):
        t = 3 if n > 10_000 else 24
        if name in ("F32", "F64", "F16"):
            v = rng.standard_normal(n * t) * rng.choice([1e-3, 1.0, 50.0], size=n * t)
            v[: n * 2] += 1000.0  # two tensors far from zero: their shift needs a second pass
            special = rng.integers(0, n * t, size=max(1, n * t // 300))
            v[special[: len(special) // 2]] = rng.choice([np.nan, np.inf, -np.inf, -0.0, 0.0],
                                                        size=len(special) // 2)  # fmt: skip
            raw = v.astype({"F32": "<f4", "F64": "<f8", "F16": "<f2"}[name]).tobytes()
        else:
            raw = rng.integers(0, 256, size=n * t * item, dtype=np.uint8).tobytes()
        got = stats.many(name, raw, n)
        assert len(got) == t
        for i in range(t):
            one = TensorStats(name)
            one.update(raw[i * n * item : (i + 1) * n * item])
            want = one.result()
            assert want.keys() == got[i].keys(), (n, i)
            assert all(_same(want[k], got[i][k]) for k in want), (n, i, want, got[i])


def test_many_refuses_bytes_that_are_not_whole_tensors() -> None:
    with pytest.raises(ValueError, match="not whole tensors"):
        stats.many("F32", b"\0" * 12, 2)
