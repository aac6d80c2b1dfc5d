"""Hostile checkpoints end quickly, in bounded memory, with a clear error (or a result) -- never an
unexpected exception, never running code: measured in a subprocess (time and peak memory), and
fuzzed (random and mutated pickles, zips, safetensors and npz files)."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitsnap.errors import FormatError, GitsnapError, PickleError
from gitsnap.formats import pickle_vm, read_layout, torch_pickle

REPO = Path(__file__).resolve().parents[2]
MIB = 1 << 20


def measured(path: Path) -> dict[str, Any]:
    """read_layout(path) in a fresh interpreter under a 2 GiB address-space cap."""
    code = f"""
import json, resource, sys, time
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
from gitsnap.errors import GitsnapError
from gitsnap.formats import read_layout
t = time.perf_counter()
try:
    layout = read_layout(Path({str(path)!r}))
    out = {{"ok": True, "tensors": sum(1 for s in layout.segments if s.tensor)}}
except GitsnapError as exc:
    out = {{"ok": False, "error": str(exc), "hint": exc.hint}}
out["seconds"] = time.perf_counter() - t
# VmHWM is this process's own peak (ru_maxrss would carry the parent's over exec).
hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:")][0]
out["peak_mib"] = int(hwm.split()[1]) / 1024
out["torch"] = "torch" in sys.modules
print(json.dumps(out))
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no warning leaks before the error
    result: dict[str, Any] = json.loads(proc.stdout)
    # About 1 s on an idle 2-core machine; the margin is for a loaded CI runner.
    assert result["seconds"] < 20 and result["peak_mib"] < 300, result
    assert result["torch"] is False
    return result


def test_a_dag_pickle_is_walked_once_per_object(tmp_path: Path) -> None:
    x: list[Any] = [torch.ones(2)]
    for _ in range(60):
        x = [x, x]
    path = tmp_path / "dag.pt"
    torch.save({"w": torch.ones(3), "dag": x}, path)
    assert path.stat().st_size < 8 * 1024
    result = measured(path)
    assert result["ok"] and result["tensors"] == 2  # w, and the one tensor the DAG repeats


def raw_zip(path: Path, members: list[tuple[str, int, bytes, int]]) -> None:
    """A zip written by hand: (name, method, bytes as stored, size it claims once inflated)."""
    out = bytearray()
    central = bytearray()
    for name, method, data, file_size in members:
        off = len(out)
        n = name.encode()
        out += struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0, 0, len(data), file_size, len(n), 0
        )
        out += n + data
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50, 20, 20, 0, method, 0, 0, 0, len(data), file_size, len(n),
            0, 0, 0, 0, 0, off,
        )  # fmt: skip
        central += n
    cd_off = len(out)
    out += central
    out += struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), cd_off, 0
    )
    path.write_bytes(bytes(out))


def deflate_bomb(total: int) -> bytes:
    """A raw deflate stream of ``total`` zero bytes, built from one flushed 64 MiB block."""
    block_size = 64 * MIB
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(bytes(block_size)) + c.flush(zlib.Z_FULL_FLUSH)
    end = zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    return block * (total // block_size) + end


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return deflate_bomb(3 << 30)


@pytest.mark.parametrize("claims", ["the truth", "a small size"])
def test_a_deflated_pickle_bomb_is_refused_in_bounded_memory(
    tmp_path: Path, bomb: bytes, claims: str
) -> None:
    declared = 3 << 30 if claims == "the truth" else 1000
    path = tmp_path / "bomb.pt"
    raw_zip(
        path,
        [
            ("archive/data.pkl", zipfile.ZIP_DEFLATED, bomb, declared),
            ("archive/data/0", zipfile.ZIP_STORED, bytes(16), 16),
        ],
    )
    assert path.stat().st_size < 4 * MIB
    result = measured(path)
    assert not result["ok"] and "bomb.pt" in result["error"] and result["hint"]
    assert "bytes" in result["error"]


def test_a_deflated_pickle_within_the_bound_is_read(tmp_path: Path) -> None:
    """A re-compressed checkpoint: the pickle is inflated (bounded) and its globals judged."""
    src = tmp_path / "plain.pt"
    torch.save({"w": torch.ones(4), "epoch": 2}, src)
    path = tmp_path / "deflated.pt"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
    layout = read_layout(path)
    assert layout.format == "torch" and layout.metadata == {"epoch": 2}
    assert {g.name for g in layout.pickle_globals} >= {"torch._utils._rebuild_tensor_v2"}
    assert sum(s.size for s in layout.segments) == path.stat().st_size


def test_a_zip_entry_needing_an_unknown_version_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "v.pt"
    torch.save({"w": torch.ones(4)}, path)
    data = bytearray(path.read_bytes())
    cd = data.rfind(b"PK\x01\x02")
    struct.pack_into("<H", data, cd + 6, 255)  # "version needed to extract": 25.5
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=r"v\.pt.*version 25\.5") as err:
        read_layout(path)
    assert err.value.hint


def test_an_overlong_or_deep_safetensors_header_is_a_format_error(tmp_path: Path) -> None:
    deep = b'{"a":' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    digits = b'{"a":{"dtype":"F32","shape":[' + b"9" * 5000 + b'],"data_offsets":[0,4]}}'
    for name, header in (("deep", deep), ("digits", digits)):
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(4))
        result = measured(path)
        assert not result["ok"] and f"{name}.safetensors" in result["error"] and result["hint"]


def test_a_hostile_pickle_through_the_cli_is_an_error_with_a_hint(
    dvc_repo: Path, run_snap: Any
) -> None:
    path = dvc_repo / "bad.pt"
    raw_zip(
        path,
        [
            ("archive/data.pkl", zipfile.ZIP_STORED, b"\x80\x02]q\x00(" * 10, 60),
            ("archive/data/0", zipfile.ZIP_STORED, bytes(16), 16),
        ],
    )
    proc = run_snap("save", "bad.pt", check=False)
    assert proc.returncode == 3
    assert proc.stderr.startswith("error:") and "bad.pt" in proc.stderr and "hint:" in proc.stderr
    assert "Warning" not in proc.stderr


# ---------------------------------------------------------------- fuzz


def _real_pickles() -> list[bytes]:
    out = []
    sd = {"a.weight": torch.randn(3, 2), "a.bias": torch.zeros(3), "n": torch.tensor(3)}
    for obj in (sd, {"model": sd, "epoch": 1, "lr": [0.1, 0.01]}, torch.nn.Linear(2, 2)):
        buf = io.BytesIO()
        torch.save(obj, buf)
        with zipfile.ZipFile(buf) as z:
            out.append(z.read(next(n for n in z.namelist() if n.endswith("data.pkl"))))
    return out


PICKLES = _real_pickles()


def _mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    b = bytearray(data)
    for kind, pos, value in edits:
        if not b:
            b.append(value)
            continue
        i = pos % len(b)
        if kind == 0:
            b[i] = value
        elif kind == 1:
            b.insert(i, value)
        elif kind == 2:
            del b[i]
        else:
            b[i:] = b[i : i + 1 + value]  # truncate
    return bytes(b)


edits = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 1 << 20), st.integers(0, 255)), max_size=6
)


def _vm(data: bytes) -> None:
    try:
        result = pickle_vm.run(data)
        torch_pickle.walk(result.value)
    except PickleError:
        pass


@settings(max_examples=1000, deadline=None)
@given(data=st.binary(max_size=200))
def test_fuzz_random_opcode_streams(data: bytes) -> None:
    _vm(data)


@settings(max_examples=1000, deadline=None)
@given(which=st.integers(0, len(PICKLES) - 1), edits=edits)
def test_fuzz_mutated_torch_pickles(which: int, edits: list[tuple[int, int, int]]) -> None:
    _vm(_mutate(PICKLES[which], edits))


def _files() -> dict[str, bytes]:
    from tests.helpers import write_safetensors

    out = {}
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        torch.save({"w": torch.randn(4, 3), "b": torch.ones(2), "step": 3}, root / "a.pt")
        write_safetensors(root / "a.safetensors", {"w": torch.randn(4, 3), "b": torch.ones(2)})
        np.savez(root / "a.npz", w=np.ones((3, 2), np.float32), n=np.arange(4))
        for p in root.iterdir():
            out[p.suffix] = p.read_bytes()
    return out


FILES = _files()


@settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(suffix=st.sampled_from(sorted(FILES)), edits=edits)
def test_fuzz_mutated_checkpoint_files(
    suffix: str, edits: list[tuple[int, int, int]], tmp_path: Path
) -> None:
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(_mutate(FILES[suffix], edits))
    try:
        read_layout(path)
    except GitsnapError as exc:
        assert str(path) in str(exc) and exc.hint


def test_the_opcode_budget_bounds_the_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opcodes that create nothing (MEMOIZE on the same value) still count against the budget."""
    monkeypatch.setattr(pickle_vm, "MAX_OPS", 1000)
    assert pickle_vm.run(b"\x80\x02N" + b"\x94" * 900 + b".").value is None
    with pytest.raises(PickleError, match="more than 1000 opcodes"):
        pickle_vm.run(b"\x80\x02N" + b"\x94" * 1100 + b".")


@pytest.mark.parametrize(
    "stream",
    [
        b"\x80\x02cx\ny\nq\x00(" + b"h\x00)R" * 700_000 + b"l.",  # recorded calls
        b"\x80\x02(" + b"}" * 700_000 + b"l.",  # dicts
        b"\x80\x02(" + b"h\x00" * 9_000_000 + b"l.",  # references
        b"\x80\x02" + b"(" * 700_000 + b".",  # marks
    ],
    ids=["calls", "dicts", "references", "marks"],
)
def test_a_pickle_that_creates_too_much_is_refused_in_bounded_memory(
    tmp_path: Path, stream: bytes
) -> None:
    src = tmp_path / "src.pt"
    torch.save({"w": torch.ones(2)}, src)
    path = tmp_path / "many.pt"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(path, "w") as zout:
        for info in zin.infolist():
            data = stream if info.filename.endswith("data.pkl") else zin.read(info.filename)
            zout.writestr(info.filename, data)
    result = measured(path)
    assert not result["ok"] and "many.pt" in result["error"]
