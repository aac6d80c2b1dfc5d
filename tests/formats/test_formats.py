"""The format registry and the small readers (issue 3, points 4 and 5): detection by content,
.npz arrays as tensors, every dtype round-tripping with correct stats."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gitsnap import api, snapshot
from gitsnap.errors import FormatError, UnsafePickle
from gitsnap.formats import read_layout
from gitsnap.pointer import loads
from tests.helpers import make_checkpoint, write_safetensors


def pointer_of(repo: Path, rel: str) -> Any:
    return loads((repo / (rel + ".snap")).read_bytes())


def roundtrip(repo: Path, rel: str, *, allow_unsafe_pickle: bool = False) -> Any:
    """Save, delete, check out: the file comes back byte for byte. Returns the pointer."""
    path = repo / rel
    original = path.read_bytes()
    api.save([rel], allow_unsafe_pickle=allow_unsafe_pickle)
    path.unlink()
    api.checkout(paths=[rel])
    assert path.read_bytes() == original
    return pointer_of(repo, rel)


# ---------------------------------------------------------------- detection


def test_readers_are_chosen_by_content_not_by_name(tmp_path: Path) -> None:
    import torch

    st = make_checkpoint(tmp_path / "weights.data")
    pt = tmp_path / "checkpoint.weird"
    torch.save({"w": torch.ones(3)}, pt)
    npz = tmp_path / "arrays.bin"
    with npz.open("wb") as f:
        np.savez(f, a=np.ones(4, np.float32))
    legacy = tmp_path / "old.bin"
    torch.save({"w": torch.ones(3)}, legacy, _use_new_zipfile_serialization=False)
    other_zip = tmp_path / "bundle.pt.zip"
    with zipfile.ZipFile(other_zip, "w") as z:
        z.writestr("readme.txt", "not a checkpoint")
    unknown = tmp_path / "model.safetensors.bak"
    unknown.write_bytes(os.urandom(1000))
    got = {p.name: read_layout(p).format for p in (st, pt, npz, legacy, other_zip, unknown)}
    assert got == {
        "weights.data": "safetensors",
        "checkpoint.weird": "torch",
        "arrays.bin": "npz",
        "old.bin": "torch-legacy",
        "bundle.pt.zip": "raw",
        "model.safetensors.bak": "raw",
    }


def test_a_named_format_that_does_not_parse_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(os.urandom(1000))
    with pytest.raises(FormatError, match="not a valid safetensors file"):
        read_layout(bad)
    broken_zip = tmp_path / "arrays.npz"
    broken_zip.write_bytes(b"PK\x03\x04" + os.urandom(200))
    with pytest.raises(FormatError, match="not a valid npz file"):
        read_layout(broken_zip)
    # Without a name that promises a format, unparseable bytes are simply opaque.
    anon = tmp_path / "blob.dat"
    anon.write_bytes(b"PK\x03\x04" + os.urandom(200))
    assert read_layout(anon).format == "raw"


# ---------------------------------------------------------------- npz


def test_npz_arrays_are_tensors_with_stats(dvc_repo: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        "weights": rng.standard_normal((64, 32)).astype(np.float32),
        "bias": rng.standard_normal(32),
        "steps": np.arange(10, dtype=np.int64),
        "mask": rng.random(50) > 0.5,
        "half": rng.standard_normal(100).astype(np.float16),
    }
    np.savez(dvc_repo / "arrays.npz", **arrays)
    ptr = roundtrip(dvc_repo, "arrays.npz")
    assert ptr.format == "npz"
    tensors = {t.name: t for t in ptr.tensors}
    assert set(tensors) == set(arrays)
    dtypes = {n: t.dtype for n, t in tensors.items()}
    assert dtypes == {
        "weights": "F32",
        "bias": "F64",
        "steps": "I64",
        "mask": "BOOL",
        "half": "F16",
    }
    for name, arr in arrays.items():
        t = tensors[name]
        assert t.shape == arr.shape and t.size == arr.nbytes
        ref = arr.astype(np.float64)
        assert t.stats["count"] == arr.size
        assert t.stats["mean"] == pytest.approx(
            ref.mean(), rel=1e-6, abs=1e-6 * (ref.std() + 1e-12)
        )
        assert t.stats["max"] == pytest.approx(ref.max(), rel=1e-6)
    # Changing one array stores that array (plus the tiny headers), nothing else.
    arrays["bias"] = arrays["bias"] + 1
    np.savez(dvc_repo / "arrays.npz", **arrays)
    [res] = api.save(["arrays.npz"])
    assert res.bytes_written <= arrays["bias"].nbytes + sum(
        b.size for b in pointer_of(dvc_repo, "arrays.npz").blobs
    )


def test_compressed_npz_is_chunked_and_object_arrays_are_never_unpickled(
    dvc_repo: Path, tmp_path: Path
) -> None:
    np.savez_compressed(dvc_repo / "packed.npz", a=np.zeros(1000, np.float32))
    ptr = roundtrip(dvc_repo, "packed.npz")
    assert ptr.format == "npz" and ptr.tensors == []

    class Exploit:
        def __reduce__(self) -> tuple[Any, tuple[str]]:
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    np.savez(dvc_repo / "objects.npz", ok=np.ones(3), evil=np.array([Exploit()], dtype=object))
    with pytest.raises(UnsafePickle, match=r"posix\.system"):  # judged, refused, never run
        api.save(["objects.npz"])
    assert not (tmp_path / "pwned").exists()
    ptr = roundtrip(dvc_repo, "objects.npz", allow_unsafe_pickle=True)
    assert [t.name for t in ptr.tensors] == ["ok"]
    assert "npy" in {b.role for b in ptr.blobs}
    assert not (tmp_path / "pwned").exists()
    # The payload is live: numpy with allow_pickle runs it.
    code = (
        f"import numpy as np; np.load({str(dvc_repo / 'objects.npz')!r}, allow_pickle=True)['evil']"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    assert (tmp_path / "pwned").exists()


# ---------------------------------------------------------------- dtypes


DTYPES = ["float64", "float32", "float16", "bfloat16", "float8_e4m3fn", "float8_e5m2",
          "int64", "int32", "int16", "int8", "uint8", "bool"]  # fmt: skip


def test_every_dtype_round_trips_and_gets_stats_that_match_torch(dvc_repo: Path) -> None:
    import torch

    gen = torch.Generator().manual_seed(11)
    base = torch.randn(1000, 7, generator=gen) * 4
    tensors = {}
    for name in DTYPES:
        tensors[name] = (base > 0) if name == "bool" else base.to(getattr(torch, name))
    # Special values where the format has them: stats cover the finite elements.
    special = base[:3].clone()
    special[0, 0], special[1, 1], special[2, 2] = float("nan"), float("inf"), -float("inf")
    tensors["bf16_special"] = special.to(torch.bfloat16)
    tensors["e5m2_special"] = special.to(torch.float8_e5m2)
    write_safetensors(dvc_repo / "dtypes.safetensors", tensors)
    ptr = roundtrip(dvc_repo, "dtypes.safetensors")
    got = {t.name: t for t in ptr.tensors}
    names = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16",
             "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2", "int64": "I64", "int32": "I32",
             "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}  # fmt: skip
    for name, tensor in tensors.items():
        entry = got[name]
        assert entry.dtype == names.get(name, entry.dtype)
        ref = tensor.double().flatten()
        finite = ref[torch.isfinite(ref)]
        assert entry.stats["count"] == tensor.numel(), name
        assert entry.stats["nonfinite"] == tensor.numel() - finite.numel(), name
        scale = finite.std().item() + 1e-12
        assert entry.stats["mean"] == pytest.approx(
            finite.mean().item(), rel=1e-6, abs=1e-6 * scale
        ), name
        assert entry.stats["std"] == pytest.approx(finite.std(unbiased=False).item(), rel=1e-5), (
            name
        )
        assert entry.stats["min"] == pytest.approx(finite.min().item(), rel=1e-6), name
        assert entry.stats["max"] == pytest.approx(finite.max().item(), rel=1e-6), name
        assert entry.stats["l2"] == pytest.approx(finite.norm().item(), rel=1e-6), name


def test_views_are_not_listed_on_the_hash_only_path(tmp_path: Path) -> None:
    import torch

    w = torch.ones(4, 4)
    torch.save({"a": w, "b": w[1:]}, tmp_path / "v.pt")
    full = snapshot.ingest(tmp_path / "v.pt", None, want_stats=True)
    quick = snapshot.ingest(tmp_path / "v.pt", None, want_stats=False)
    assert [t.name for t in full.tensors] == ["a", "b"] and [t.name for t in quick.tensors] == ["a"]
    assert full.id == quick.id


def test_a_folder_and_a_file_swap_places_on_checkout(dvc_repo: Path) -> None:
    """A checkpoint that was a file and is now a folder (or back) restores either way."""
    make_checkpoint(dvc_repo / "m", seed=0)
    api.save(["m"])
    file_ptr = (dvc_repo / "m.snap").read_bytes()
    (dvc_repo / "m").unlink()
    make_checkpoint(dvc_repo / "m" / "model.safetensors", seed=1)
    api.save(["m"])
    folder_ptr = (dvc_repo / "m.snap").read_bytes()
    (dvc_repo / "m.snap").write_bytes(file_ptr)
    api.checkout(paths=["m"])
    assert (dvc_repo / "m").is_file()
    (dvc_repo / "m.snap").write_bytes(folder_ptr)
    api.checkout(paths=["m"])
    assert (dvc_repo / "m" / "model.safetensors").is_file()
    assert not any(p.name.endswith((".gitsnap-tmp", ".gitsnap-old")) for p in dvc_repo.iterdir())
    shutil.rmtree(dvc_repo / "m")


def test_object_arrays_in_npz_have_their_pickle_globals_judged(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[Any, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    arrays = {"ok": np.ones(3), "evil": np.array([Exploit()], dtype=object)}
    np.savez(tmp_path / "plain.npz", **arrays)  # type: ignore[arg-type]
    np.savez_compressed(tmp_path / "packed.npz", **arrays)  # type: ignore[arg-type]
    np.savez(tmp_path / "clean.npz", a=np.ones(3), s=np.zeros(2, dtype=[("x", "<f4")]))
    for name in ("plain.npz", "packed.npz"):
        kinds = {g.name: g.kind for g in read_layout(tmp_path / name).pickle_globals}
        assert kinds["posix.system"] == "unsafe", name
    assert read_layout(tmp_path / "clean.npz").pickle_globals == ()
    assert not marker.exists()
