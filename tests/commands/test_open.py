"""The Python API (``gitsnap.open`` / ``load`` / ``export`` / ``save`` / ``save_state_dict``).

Real git, real dvc, a local-folder DVC remote; nothing mocked. The store is
inspected on disk to count what a read fetched.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import gitsnap
from gitsnap.errors import (
    FormatError,
    ObjectCorrupt,
    ObjectMissing,
    PathError,
    PointerError,
    RegistryError,
    UsageError,
)
from gitsnap.workspace import Workspace
from tests.helpers import commit_all, git, make_state_dict, run_snap, write_safetensors

CKPT = "models/model.safetensors"


def _objects(repo: Path) -> list[Path]:
    root = Workspace.discover(repo).store.root
    return [p for p in root.glob("??/*") if p.is_file()] if root.is_dir() else []


@pytest.fixture
def history(local_remote: Path) -> dict[str, Any]:
    """v1 committed and tagged model@v1.0.0, v2 (new head) committed, v3 saved in the work tree."""
    repo = local_remote.parent / "repo"
    ckpt = repo / CKPT
    versions = {}
    for n, modify in ((1, ()), (2, ("head",)), (3, ("head", "norm"))):
        write_safetensors(
            ckpt, make_state_dict(seed=0, modify=modify, modify_seed=n), metadata={"v": str(n)}
        )
        versions[n] = ckpt.read_bytes()
        run_snap("save", CKPT, "-m", f"v{n}", cwd=repo)
        if n < 3:
            versions[f"c{n}"] = commit_all(repo, f"v{n}")
    run_snap("tag", "model", "v1.0.0", versions["c1"], cwd=repo)
    return {"repo": repo, "ckpt": ckpt, **versions}


def _values(data: bytes) -> dict[str, np.ndarray]:
    import safetensors.numpy

    return dict(safetensors.numpy.load(data))


def test_open_reads_any_revision_and_never_touches_the_work_tree(history: dict[str, Any]) -> None:
    repo, ckpt = history["repo"], history["ckpt"]
    before = (
        ckpt.read_bytes(),
        ckpt.stat().st_mtime_ns,
        (repo / f"{CKPT}.snap").stat().st_mtime_ns,
    )
    v1, v2, v3 = (_values(history[n]) for n in (1, 2, 3))
    for rev, commit, want in (
        ("HEAD~1", history["c1"], v1),
        ("model@v1.0.0", history["c1"], v1),
        ("HEAD", history["c2"], v2),
        (None, None, v3),
    ):
        with gitsnap.open(CKPT, rev) as f:
            assert f.commit == commit
            assert sorted(f.keys()) == sorted(want)
            for name in ("head.weight", "norm.bias", "embed.weight"):
                got = f.get_tensor(name)
                assert got.dtype == want[name].dtype and np.array_equal(got, want[name])
            assert f.metadata() == {"v": {1: "1", 2: "2", 3: "3"}[_which(want, v1, v2)]}
            sl = f.get_slice("head.weight")
            assert sl.get_shape() == list(want["head.weight"].shape) and sl.get_dtype() == "F32"
            assert np.array_equal(sl[1:3], want["head.weight"][1:3])
    # the snapshot id is the pointer's, as `git snap log` shows it
    ids = {gitsnap.open(CKPT, r).snapshot for r in ("HEAD~1", "HEAD", None)}
    assert len(ids) == 3
    # a registry reference alone names the model's checkpoint
    assert gitsnap.open(None, "model@v1.0.0").snapshot == gitsnap.open(CKPT, "HEAD~1").snapshot
    after = (ckpt.read_bytes(), ckpt.stat().st_mtime_ns, (repo / f"{CKPT}.snap").stat().st_mtime_ns)
    assert after == before
    assert git("status", "--porcelain", cwd=repo).stdout.strip() == f"M {CKPT}.snap"


def _which(
    want: dict[str, np.ndarray], v1: dict[str, np.ndarray], v2: dict[str, np.ndarray]
) -> int:
    same = lambda a, b: all(np.array_equal(a[k], b[k]) for k in a)  # noqa: E731
    return 1 if same(want, v1) else 2 if same(want, v2) else 3


def test_reading_one_tensor_in_a_fresh_clone_fetches_one_object(
    local_remote: Path, bare_origin: Path, tmp_path: Path
) -> None:
    repo = local_remote.parent / "repo"
    rng = np.random.default_rng(0)
    tensors = {
        f"layer{i:03d}.weight": rng.standard_normal((16, 8)).astype("<f4") for i in range(100)
    }
    write_safetensors(repo / CKPT, tensors)
    run_snap("save", CKPT, cwd=repo)
    commit_all(repo, "100 tensors")
    run_snap("push", cwd=repo)
    git("push", "-q", "origin", "main", cwd=repo)
    clone = tmp_path / "clone"
    git("clone", "-q", bare_origin, clone)
    assert _objects(clone) == []
    assert not (clone / CKPT).exists()
    with gitsnap.open(CKPT, "HEAD", cwd=clone) as f:
        assert len(f.keys()) == 100
        got = f.get_tensor("layer042.weight")
        assert f.fetched == 1
        again = f.get_tensor("layer042.weight")  # now local: no second transfer
        assert f.fetched == 1
    assert np.array_equal(got, tensors["layer042.weight"]) and np.array_equal(again, got)
    assert len(_objects(clone)) == 1
    assert not (clone / CKPT).exists()  # the work tree was not written


def test_a_corrupt_object_is_refused_naming_the_tensor(history: dict[str, Any]) -> None:
    repo = history["repo"]
    with gitsnap.open(CKPT, "HEAD") as f:
        oid = next(e.oid for e in f.pointer.tensors if e.name == "head.weight")
    path = Workspace.discover(repo).store.path(oid)
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))
    with gitsnap.open(CKPT, "HEAD") as f, pytest.raises(ObjectCorrupt) as err:
        f.get_tensor("head.weight")
    assert "head.weight" in str(err.value) and err.value.hint
    assert f.get_tensor("norm.bias").shape  # other tensors still read


def test_unknown_revision_path_and_tensor_are_clear_errors(history: dict[str, Any]) -> None:
    with pytest.raises(UsageError) as err:
        gitsnap.open(CKPT, "no-such-branch")
    assert "no-such-branch" in str(err.value) and err.value.hint
    with pytest.raises(PathError) as perr:
        gitsnap.open("models/other.safetensors", "HEAD")
    assert "other.safetensors" in str(perr.value) and perr.value.hint
    with pytest.raises(PathError):
        gitsnap.open("models/other.safetensors")
    with pytest.raises(RegistryError):
        gitsnap.open(CKPT, "model@v9.9.9")
    with gitsnap.open(CKPT) as f, pytest.raises(PathError) as terr:
        f.get_tensor("nope")
    assert "nope" in str(terr.value)
    with pytest.raises(UsageError):
        gitsnap.open(CKPT, framework="jax")


def test_export_writes_the_snapshot_byte_exactly(history: dict[str, Any], tmp_path: Path) -> None:
    ckpt = history["ckpt"]
    stamp = ckpt.stat().st_mtime_ns
    res = gitsnap.export(CKPT, "model@v1.0.0", to=tmp_path / "out")
    assert (tmp_path / "out" / CKPT).read_bytes() == history[1]
    assert res.commit == history["c1"] and res.size == len(history[1])
    assert res.snapshot == gitsnap.open(CKPT, "HEAD~1").snapshot
    assert ckpt.read_bytes() == history[3] and ckpt.stat().st_mtime_ns == stamp


def test_load_gives_a_strict_state_dict_for_a_torch_module(dvc_repo: Path) -> None:
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
    first = {k: v.clone() for k, v in model.state_dict().items()}
    res = gitsnap.save_state_dict(model.state_dict(), CKPT, message="init", metrics={"loss": 1.0})
    assert res.changed and res.tensors == len(first)
    commit_all(dvc_repo, "init")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    gitsnap.save_state_dict(model.state_dict(), CKPT, message="trained")
    commit_all(dvc_repo, "trained")

    fresh = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
    state = gitsnap.load(CKPT, rev="HEAD~1")
    fresh.load_state_dict(state, strict=True)
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, first[k])
    assert gitsnap.open(CKPT, "HEAD~1").pointer.message == "init"


def test_save_state_dict_numpy_needs_no_torch(dvc_repo: Path) -> None:
    code = (
        "import sys, numpy as np, gitsnap\n"
        "sd = {'a': np.arange(6, dtype=np.float32).reshape(2, 3), 'b': np.array([True, False]),"
        " 'c': np.zeros((0, 4), dtype='>i8'), 's': np.array(3.5, dtype=np.float64)}\n"
        "r = gitsnap.save_state_dict(sd, 'w.safetensors', metadata={'k': 'v'})\n"
        "with gitsnap.open('w.safetensors') as f:\n"
        "    assert all(np.array_equal(f.get_tensor(k), sd[k]) for k in sd), f.keys()\n"
        "    assert f.metadata() == {'k': 'v'}\n"
        "print(r.snapshot_id, 'torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=dvc_repo, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    sid, torch_loaded = out.stdout.split()
    assert torch_loaded == "False" and len(sid) == 64
    import safetensors.numpy

    back = safetensors.numpy.load_file(dvc_repo / "w.safetensors")
    assert back["a"].tolist() == [[0, 1, 2], [3, 4, 5]] and back["c"].shape == (0, 4)


def test_bf16_and_f8_round_trip(dvc_repo: Path) -> None:
    import torch
    from safetensors.torch import load_file

    torch.manual_seed(0)
    sd = {
        "w": torch.randn(5, 7).to(torch.bfloat16),
        "h": torch.randn(3).to(torch.float16),
        "q": torch.randn(4, 2).to(torch.float8_e4m3fn),
        "r": torch.randn(6).to(torch.float8_e5m2),
    }
    gitsnap.save_state_dict(sd, "m.safetensors")
    on_disk = load_file(dvc_repo / "m.safetensors")  # safetensors itself reads what we wrote
    with gitsnap.open("m.safetensors", framework="pt") as f:
        for k, v in sd.items():
            got = f.get_tensor(k)
            assert got.dtype == v.dtype and torch.equal(got.view(torch.uint8), v.view(torch.uint8))
            assert torch.equal(on_disk[k].view(torch.uint8), v.view(torch.uint8))
    with gitsnap.open("m.safetensors") as f:  # numpy: widened exactly to float32
        for k, v in sd.items():
            got = f.get_tensor(k)
            want = v.float().numpy()
            assert got.dtype == (np.float16 if k == "h" else np.float32)
            assert np.array_equal(got.astype(np.float32), want, equal_nan=True)


def test_pytorch_checkpoint_tensors_and_views(dvc_repo: Path) -> None:
    import torch

    torch.manual_seed(0)
    w = torch.randn(6, 4)
    flat = torch.randn(20)
    obj = {
        "model": {"w": w, "tied": w, "wt": w.t(), "a": flat[:8].view(2, 4), "b": flat[8:]},
        "step": 7,
    }
    torch.save(obj, dvc_repo / "ck.pt")
    run_snap("save", "ck.pt", cwd=dvc_repo)
    want = {"model.w": w, "model.tied": w, "model.wt": w.t(), "model.a": flat[:8].view(2, 4),
            "model.b": flat[8:]}  # fmt: skip
    with gitsnap.open("ck.pt", framework="pt") as f:
        assert set(want) <= set(f.keys()), f.keys()
        for k, v in want.items():
            assert torch.equal(f.get_tensor(k), v), k
        assert f.metadata().get("step") == 7
    state = gitsnap.load("ck.pt", framework="np")
    assert np.array_equal(state["model.wt"], w.t().numpy())


def test_npz_and_folder_keys(dvc_repo: Path) -> None:
    a = np.arange(12, dtype=np.int32).reshape(3, 4)
    np.savez(dvc_repo / "arr.npz", a=a, b=np.ones(3, dtype=np.float64))
    run_snap("save", "arr.npz", cwd=dvc_repo)
    with gitsnap.open("arr.npz") as f:
        assert f.keys() == ["a", "b"]
        assert np.array_equal(f.get_tensor("a"), a) and f.get_tensor("b").tolist() == [1, 1, 1]

    folder = dvc_repo / "ckpt"
    write_safetensors(
        folder / "part-1.safetensors", {"x": np.zeros(2, "<f4"), "y": np.ones(2, "<f4")}
    )
    write_safetensors(folder / "part-2.safetensors", {"x": np.full(2, 2, "<f4")})
    run_snap("save", "ckpt", cwd=dvc_repo)
    with gitsnap.open("ckpt") as f:
        assert sorted(f.keys()) == ["part-1.safetensors/x", "part-2.safetensors/x", "y"]
        assert f.get_tensor("part-2.safetensors/x").tolist() == [2, 2]
        assert f.get_tensor("y").tolist() == [1, 1]


DOC = Path(__file__).resolve().parents[2] / "docs" / "python-api.md"


def test_the_docs_examples_run(
    git_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/python-api.md's ```python blocks run in order, in one namespace, as written."""
    import torch

    git("commit", "-q", "--allow-empty", "-m", "root")
    remote = tmp_path / "remote"
    remote.mkdir()
    run_snap("init", "--remote", str(remote))
    commit_all(git_repo, "gitsnap init")
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 5
    ns: dict[str, Any] = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), ns)
    printed = capsys.readouterr().out
    assert "['0.bias', '0.weight', '2.bias', '2.weight']" in printed
    assert "(2, 16) float32" in printed and "[16, 8] F32" in printed
    assert "unknown revision: no-such-branch" in printed
    assert printed.count("{'head_norm': ") == 2  # api.eval_snapshots on two revisions
    v1 = gitsnap.load(CKPT, "model@v1.0.0")
    assert all(torch.equal(v, v1[k]) for k, v in ns["fresh"].state_dict().items())
    assert not torch.equal(v1["2.weight"], ns["model"].state_dict()["2.weight"])
    assert Path(ns["out"].target).read_bytes() == _export_bytes(git_repo, tmp_path)
    assert sorted(ns["state"]) == ["0.bias", "0.weight", "2.bias", "2.weight"]


def _export_bytes(repo: Path, tmp_path: Path) -> bytes:
    run_snap("checkout", "model@v1.0.0", "--to", str(tmp_path / "cli"), cwd=repo)
    [written] = (tmp_path / "cli").rglob("model.safetensors")
    return written.read_bytes()


def test_framework_pt_without_torch_says_how_to_install_it(history: dict[str, Any]) -> None:
    code = (
        "import sys\n"
        "sys.modules['torch'] = None  # as if torch were not installed\n"
        "import gitsnap\n"
        "from gitsnap.errors import MissingDependency\n"
        "try:\n"
        f"    gitsnap.open({CKPT!r}, framework='pt')\n"
        "except MissingDependency as err:\n"
        "    print(err.hint)\n"
        f"print(gitsnap.open({CKPT!r}).get_tensor('head.bias').dtype)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=history["repo"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.splitlines() == ["pip install 'gitsnap[torch]'", "float32"]


def test_a_pointer_that_lies_about_a_shape_is_refused_before_allocating(
    history: dict[str, Any],
) -> None:
    snap = history["repo"] / f"{CKPT}.snap"
    text = snap.read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("- {name: head.weight,"))
    lying = re.sub(r"shape: \[[0-9, ]+\]", "shape: [4000000000, 4000000000]", line)
    snap.write_text(text.replace(line, lying))
    with gitsnap.open(CKPT) as f, pytest.raises(PointerError) as err:
        f.get_tensor("head.weight")
    assert "head.weight" in str(err.value) and err.value.hint


def test_load_of_a_checkpoint_without_a_tensor_list_is_an_error(dvc_repo: Path) -> None:
    (dvc_repo / "notes.bin").write_bytes(b"not a tensor file" * 100)
    gitsnap.save("notes.bin")
    with pytest.raises(FormatError) as err:
        gitsnap.load("notes.bin", framework="np")
    assert "lists no tensors" in str(err.value) and "export" in (err.value.hint or "")


def test_a_missing_object_without_a_remote_names_the_tensor(dvc_repo: Path) -> None:
    gitsnap.save_state_dict({"w": np.ones(4, "<f4")}, "w.safetensors")
    with gitsnap.open("w.safetensors") as f:
        oid = f.pointer.tensors[0].oid
        path = Workspace.discover(dvc_repo).store.path(oid)
        path.chmod(0o644)
        path.unlink()
        with pytest.raises(ObjectMissing) as err:
            f.get_tensor("w")
    assert "'w'" in str(err.value) and err.value.hint


def test_open_at_a_stage_and_the_latest_version(history: dict[str, Any]) -> None:
    repo = history["repo"]
    run_snap("tag", "model", "--stage", "prod", "model@v1.0.0", cwd=repo)
    run_snap("tag", "model", "v1.1.0", history["c2"], cwd=repo)
    with gitsnap.open(CKPT, "model#prod") as f:
        assert f.commit == history["c1"]
        assert np.array_equal(f.get_tensor("head.bias"), _values(history[1])["head.bias"])
    assert gitsnap.open(None, "model@latest").commit == history["c2"]
    with pytest.raises(RegistryError) as err:
        gitsnap.open(CKPT, "model#staging")
    assert err.value.hint
