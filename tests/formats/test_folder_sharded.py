"""Folder checkpoints (issue 3, point 1): Hugging Face sharded safetensors as one snapshot."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from gitsnap import api, snapshot
from gitsnap.errors import FormatError, PointerError
from gitsnap.pointer import Pointer, loads
from tests.helpers import git, make_state_dict, stored_raw_bytes, write_safetensors

CONFIG = {"architectures": ["TinyModel"], "hidden_size": 32, "num_hidden_layers": 2}
TOKENIZER = {"version": "1.0", "model": {"type": "WordLevel", "vocab": {"a": 0, "b": 1}}}


def write_sharded(
    folder: Path, state: Mapping[str, Any], shards: int, *, prefix: str = "model"
) -> None:
    """What ``save_pretrained`` writes: shards, ``<prefix>.safetensors.index.json``, config...

    Old shards are removed first, as ``save_pretrained`` does.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob(f"{prefix}-*.safetensors"):
        old.unlink()
    names = list(state)
    per = -(-len(names) // shards)
    weight_map: dict[str, str] = {}
    total = 0
    for i in range(shards):
        group = names[i * per : (i + 1) * per]
        shard = f"{prefix}-{i + 1:05d}-of-{shards:05d}.safetensors"
        write_safetensors(folder / shard, {n: state[n] for n in group}, metadata={"format": "pt"})
        for n in group:
            weight_map[n] = shard
            total += state[n].numel() * state[n].element_size()
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / f"{prefix}.safetensors.index.json").write_text(
        json.dumps(index, indent=2, sort_keys=True)
    )
    (folder / "config.json").write_text(json.dumps(CONFIG, indent=2))
    (folder / "tokenizer.json").write_text(json.dumps(TOKENIZER))
    (folder / "tokenizer_config.json").write_text('{"model_max_length": 512}')


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def pointer_of(repo: Path, rel: str) -> Pointer:
    return loads((repo / (rel + ".snap")).read_bytes())


def test_a_sharded_folder_is_one_snapshot_and_restores_whole(dvc_repo: Path, run_snap: Any) -> None:
    state = make_state_dict(seed=0, layers=4)
    folder = dvc_repo / "models" / "tiny"
    write_sharded(folder, state, shards=3)
    original = folder_bytes(folder)
    run_snap("save", "models/tiny", "-m", "three shards")
    ptr = pointer_of(dvc_repo, "models/tiny")
    assert ptr.format == "sharded-safetensors"
    assert [f.path for f in ptr.files] == sorted(original)
    assert {f.path: f.size for f in ptr.files} == {k: len(v) for k, v in original.items()}
    # Every tensor once, with the shard the index says it lives in.
    index = json.loads(original["model.safetensors.index.json"])
    assert sorted(t.name for t in ptr.tensors) == sorted(state)
    assert {t.name: t.file for t in ptr.tensors} == index["weight_map"]
    assert all(t.stats.get("count") for t in ptr.tensors)
    small = sorted(b.file for b in ptr.blobs if b.role == "file")
    configs = ["config.json", "model.safetensors.index.json", "tokenizer.json"]
    assert small == [*configs, "tokenizer_config.json"]
    assert ptr.metadata["model-00001-of-00003.safetensors:format"] == "pt"
    assert "/models/tiny" in (dvc_repo / ".gitignore").read_text().splitlines()
    git("add", "models/tiny.snap", ".gitignore")
    git("commit", "-q", "-m", "model")
    assert run_snap("status").stdout.startswith("clean")

    shutil.rmtree(folder)
    assert "absent" in run_snap("status").stdout
    run_snap("checkout", "models/tiny")
    assert folder_bytes(folder) == original
    assert run_snap("status").stdout.startswith("clean")
    shown = json.loads(run_snap("show", "HEAD:models/tiny", "--json").stdout)
    assert shown["pointer"]["format"] == "sharded-safetensors"
    assert len(shown["pointer"]["tensors"]) == len(state)


def test_resharding_stores_no_new_tensor_bytes(dvc_repo: Path, run_snap: Any) -> None:
    state = make_state_dict(seed=1, layers=4, hidden=64)
    folder = dvc_repo / "ckpt"
    write_sharded(folder, state, shards=2)
    two = folder_bytes(folder)
    [first] = api.save(["ckpt"])
    git("add", "ckpt.snap", ".gitignore")
    git("commit", "-q", "-m", "two shards")
    before = stored_raw_bytes(dvc_repo)

    write_sharded(folder, state, shards=5)
    [res] = api.save(["ckpt"])
    ptr = pointer_of(dvc_repo, "ckpt")
    assert res.snapshot_id != first.snapshot_id
    assert len([f for f in ptr.files if f.format == "safetensors"]) == 5
    tensor_bytes = sum(t.size for t in ptr.tensors)
    new_headers = sum(b.size for b in ptr.blobs if b.role == "header")
    # Only the new shard headers and the new index are new; no tensor byte is stored again.
    assert (
        res.bytes_written <= new_headers + (folder / "model.safetensors.index.json").stat().st_size
    )
    assert stored_raw_bytes(dvc_repo) - before == res.bytes_written
    assert res.bytes_written < 0.05 * tensor_bytes
    git("commit", "-q", "-am", "five shards")

    # Back to two shards: the folder is exactly the old one (no stray five-shard files).
    run_snap("checkout", "HEAD~1")
    assert folder_bytes(folder) == two
    assert run_snap("status").stdout.startswith("clean")


def test_status_notices_a_change_to_any_file_of_the_folder(dvc_repo: Path, run_snap: Any) -> None:
    folder = dvc_repo / "m"
    write_sharded(folder, make_state_dict(seed=2), shards=2)
    run_snap("save", "m")
    assert run_snap("status").stdout.startswith("clean")
    (folder / "config.json").write_text(json.dumps({**CONFIG, "hidden_size": 64}))
    assert "modified: m" in run_snap("status").stdout
    run_snap("save", "m")
    assert run_snap("status").stdout.startswith("clean")
    (folder / "generation_config.json").write_text("{}")  # a new file is a change too
    assert "modified: m" in run_snap("status").stdout


def test_restored_files_keep_their_execute_bit(dvc_repo: Path, run_snap: Any) -> None:
    run_snap("init")  # the textconv driver, for git diff of the pointer below
    git("add", "-A")
    git("commit", "-q", "-m", "gitsnap init")
    folder = dvc_repo / "m"
    write_sharded(folder, make_state_dict(seed=5), shards=2)
    script = folder / "run.sh"
    script.write_text("#!/bin/sh\necho serving\n")
    script.chmod(0o755)
    run_snap("save", "m")
    ptr = pointer_of(dvc_repo, "m")
    assert {f.path for f in ptr.files if f.executable} == {"run.sh"}
    size = script.stat().st_size
    line = f"{{path: run.sh, size: {size}, format: raw, executable: true}}"
    assert line in (dvc_repo / "m.snap").read_text()
    git("add", "m.snap", ".gitignore")
    git("commit", "-q", "-m", "with a script")
    assert run_snap("status").stdout.startswith("clean")

    shutil.rmtree(folder)
    run_snap("checkout", "m")
    assert script.stat().st_mode & 0o100  # as git: 0o755 less the umask
    assert (folder / "config.json").stat().st_mode & 0o111 == 0
    assert subprocess.run([script], capture_output=True, text=True, check=True).stdout == (
        "serving\n"
    )
    assert run_snap("status").stdout.startswith("clean")

    # chmod -x alone is a change: status sees it, save records it, diff shows the file.
    script.chmod(0o644)
    assert "modified: m" in run_snap("status").stdout
    run_snap("save", "m")
    assert not [f for f in pointer_of(dvc_repo, "m").files if f.executable]
    git("commit", "-q", "-am", "script no longer executable")
    doc = json.loads(run_snap("diff", "HEAD~1", "HEAD", "--format", "json").stdout)
    [ck] = doc["checkpoints"]
    assert [(f["path"], f["status"]) for f in ck["files"] if f["status"] != "unchanged"] == [
        ("run.sh", "modified")
    ]
    out = git("diff", "HEAD~1", "HEAD", "--", "m.snap").stdout
    assert f"-file run.sh  {size} B  raw  executable" in out
    assert f"+file run.sh  {size} B  raw\n" in out
    run_snap("checkout", "HEAD~1", "--force")
    assert script.stat().st_mode & 0o100


def test_checkout_keeps_unsaved_files_unless_forced(dvc_repo: Path, run_snap: Any) -> None:
    folder = dvc_repo / "m"
    write_sharded(folder, make_state_dict(seed=3), shards=2)
    run_snap("save", "m")
    git("add", "m.snap", ".gitignore")
    git("commit", "-q", "-m", "v1")
    saved = folder_bytes(folder)
    (folder / "notes.txt").write_text("not saved anywhere")
    proc = run_snap("checkout", "HEAD", check=False)
    assert proc.returncode == 3
    assert "not saved" in proc.stderr
    assert (folder / "notes.txt").exists()
    run_snap("checkout", "HEAD", "--force")
    assert folder_bytes(folder) == saved


def test_checkout_to_exports_the_folder(dvc_repo: Path, run_snap: Any, tmp_path: Path) -> None:
    folder = dvc_repo / "m"
    write_sharded(folder, make_state_dict(seed=4), shards=2)
    run_snap("save", "m")
    git("add", "m.snap", ".gitignore")
    git("commit", "-q", "-m", "v1")
    export = tmp_path / "export"
    run_snap("checkout", "HEAD", "m", "--to", str(export))
    assert folder_bytes(export / "m") == folder_bytes(folder)


def test_an_index_that_does_not_match_its_shards_is_an_error(dvc_repo: Path, run_snap: Any) -> None:
    folder = dvc_repo / "m"
    write_sharded(folder, make_state_dict(seed=5), shards=2)
    index_path = folder / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    index["weight_map"]["head.weight"] = "model-00001-of-00002.safetensors"  # it is in shard 2
    index_path.write_text(json.dumps(index))
    proc = run_snap("save", "m", check=False)
    assert proc.returncode == 3
    assert "head.weight" in proc.stderr and "not in its shard" in proc.stderr
    assert "hint:" in proc.stderr
    index["weight_map"]["head.weight"] = "model-00003-of-00003.safetensors"
    index_path.write_text(json.dumps(index))
    with pytest.raises(FormatError, match="not in the folder"):
        snapshot.ingest(folder, None)


def test_a_broken_shard_is_an_error(dvc_repo: Path) -> None:
    folder = dvc_repo / "m"
    write_sharded(folder, make_state_dict(seed=6), shards=2)
    shard = folder / "model-00002-of-00002.safetensors"
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(FormatError, match=r"model-00002-of-00002\.safetensors"):
        api.save(["m"])


def test_the_snapshot_id_covers_file_names(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, name in ((a, "x.bin"), (b, "y.bin")):
        folder.mkdir()
        (folder / name).write_bytes(b"same bytes")
    assert snapshot.ingest(a, None).id != snapshot.ingest(b, None).id
    (b / "y.bin").rename(b / "x.bin")
    assert snapshot.ingest(a, None).id == snapshot.ingest(b, None).id


def test_nested_files_symlinks_and_skipped_entries(
    dvc_repo: Path, run_snap: Any, tmp_path: Path
) -> None:
    folder = dvc_repo / "pipe"
    (folder / "unet").mkdir(parents=True)
    (folder / "vae").mkdir()
    write_safetensors(folder / "unet" / "model.safetensors", make_state_dict(seed=7))
    write_safetensors(folder / "vae" / "model.safetensors", make_state_dict(seed=8))
    (folder / "model_index.json").write_text("{}")
    (folder / ".git").mkdir()  # a cloned model repository's git objects are not the checkpoint
    (folder / ".git" / "packed").write_bytes(b"x" * 100)
    blob = tmp_path / "blob"
    blob.write_bytes(b"linked bytes")
    (folder / "linked.txt").symlink_to(blob)
    (folder / "dangling").symlink_to(tmp_path / "nowhere")
    run_snap("save", "pipe")
    ptr = pointer_of(dvc_repo, "pipe")
    assert [f.path for f in ptr.files] == [
        "linked.txt", "model_index.json", "unet/model.safetensors", "vae/model.safetensors",
    ]  # fmt: skip
    # The same tensor names live in two files; each entry says which.
    heads = sorted(t.file for t in ptr.tensors if t.name == "head.weight")
    assert heads == ["unet/model.safetensors", "vae/model.safetensors"]
    export = tmp_path / "out"
    run_snap("checkout", "pipe", "--to", str(export))
    assert (export / "pipe" / "linked.txt").read_bytes() == b"linked bytes"
    assert not (export / "pipe" / "linked.txt").is_symlink()
    assert (export / "pipe" / "unet" / "model.safetensors").read_bytes() == (
        folder / "unet" / "model.safetensors"
    ).read_bytes()


def test_a_pointer_naming_a_file_outside_the_folder_is_refused(
    dvc_repo: Path, run_snap: Any
) -> None:
    folder = dvc_repo / "m"
    write_sharded(folder, make_state_dict(seed=9), shards=2)
    run_snap("save", "m")
    pointer_file = dvc_repo / "m.snap"
    text = pointer_file.read_text().replace("config.json", "../../escaped.json")
    with pytest.raises(PointerError, match="outside the repository"):
        loads(text)
    pointer_file.write_text(text)
    shutil.rmtree(folder)
    proc = run_snap("checkout", "m", check=False)
    assert proc.returncode == 3
    assert "outside the repository" in proc.stderr
    assert not (dvc_repo.parent / "escaped.json").exists()
    assert not folder.exists()


def test_an_empty_folder_is_not_a_checkpoint(dvc_repo: Path, run_snap: Any) -> None:
    (dvc_repo / "empty").mkdir()
    proc = run_snap("save", "empty", check=False)
    assert proc.returncode == 3
    assert "holds no files" in proc.stderr


# ---------------------------------------------------------------- memory

# Peak RSS from VmHWM: the high-water mark of this process's own address space.
# (getrusage's ru_maxrss survives exec, so it would report the forking pytest's size.)
MEASURE = """
import sys, time
from pathlib import Path
from gitsnap import api
t = time.perf_counter()
[res] = api.save([sys.argv[1]], cwd=Path(sys.argv[2]))
elapsed = time.perf_counter() - t
hwm = next(int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith("VmHWM:"))
print(hwm, res.size, res.bytes_written, elapsed)
"""


def write_big_sharded(
    folder: Path, total_bytes: int, shard_bytes: int, tensor_bytes: int = 64 << 20
) -> None:
    """A sharded folder of float32 normals, written tensor by tensor (never all in memory)."""
    import numpy as np

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = tensor_bytes // 4 // 1024
    n_tensors = total_bytes // tensor_bytes
    per_shard = max(1, shard_bytes // tensor_bytes)
    shards = -(-n_tensors // per_shard)
    weight_map = {}
    for s in range(shards):
        names = [
            f"layers.{i}.weight" for i in range(s * per_shard, min(n_tensors, (s + 1) * per_shard))
        ]
        shard = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
        for j, name in enumerate(names):
            header[name] = {
                "dtype": "F32",
                "shape": [rows, 1024],
                "data_offsets": [j * tensor_bytes, (j + 1) * tensor_bytes],
            }
            weight_map[name] = shard
        raw = json.dumps(header).encode()
        raw += b" " * (-len(raw) % 8)
        with open(folder / shard, "wb") as f:
            f.write(len(raw).to_bytes(8, "little") + raw)
            for _ in names:
                for _ in range(tensor_bytes // (16 << 20)):
                    f.write(rng.standard_normal(4 << 20, dtype=np.float32).tobytes())
    index = {"metadata": {"total_size": n_tensors * tensor_bytes}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    (folder / "config.json").write_text(json.dumps(CONFIG))


def measure_save(
    repo: Path, rel: str, env: dict[str, str] | None = None
) -> tuple[int, int, int, float]:
    """(peak RSS, checkpoint size, bytes written, seconds) of an ``api.save`` in a child."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", MEASURE, rel, str(repo)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout.split()
    return int(out[0]) * 1024, int(out[1]), int(out[2]), float(out[3])


def test_saving_a_sharded_checkpoint_keeps_memory_flat(dvc_repo: Path) -> None:
    """512 MiB in 4 shards saves within 300 MiB.

    The 4 GiB run is bench/sharded_memory.py.
    """
    write_big_sharded(dvc_repo / "big", total_bytes=512 << 20, shard_bytes=128 << 20)
    peak, size, written, _ = measure_save(dvc_repo, "big")
    assert size >= 512 << 20 and written >= 512 << 20
    assert peak <= 300 << 20, f"peak RSS {peak >> 20} MiB"
    assert peak < size / 2  # nothing near the checkpoint's size is held


def test_memory_does_not_grow_with_the_checkpoint(dvc_repo: Path, tmp_path: Path) -> None:
    write_big_sharded(dvc_repo / "small", total_bytes=128 << 20, shard_bytes=64 << 20)
    write_big_sharded(dvc_repo / "large", total_bytes=512 << 20, shard_bytes=64 << 20)
    small, *_ = measure_save(dvc_repo, "small")
    large, *_ = measure_save(dvc_repo, "large")
    assert large - small < 48 << 20, (small >> 20, large >> 20)


# ---------------------------------------------------------------- trainer_state.json


def test_trainer_state_scalars_are_recorded_and_diffed(dvc_repo: Path, run_snap: Any) -> None:
    run_snap("init")  # the textconv driver for git diff
    folder = dvc_repo / "checkpoint"
    write_sharded(folder, make_state_dict(seed=0), 1)

    def trainer_state(step: int, lr: float) -> None:
        log = [{"step": s, "loss": 1.0 / s, "learning_rate": lr, "epoch": s / 4} for s in (1, step)]
        state = {
            "global_step": step,
            "epoch": step / 4,
            "max_steps": 8,
            "best_metric": None,
            "log_history": log,
            "stateful_callbacks": {"TrainerControl": {"args": {"should_save": True}}},
        }
        (folder / "trainer_state.json").write_text(json.dumps(state))

    trainer_state(2, 5e-5)
    run_snap("save", "checkpoint")
    git("add", "-A")
    git("commit", "-q", "-m", "step 2")
    meta = pointer_of(dvc_repo, "checkpoint").metadata
    assert meta["trainer_state.json:global_step"] == 2
    assert meta["trainer_state.json:epoch"] == 0.5
    assert meta["trainer_state.json:best_metric"] is None
    assert meta["trainer_state.json:last_log.loss"] == 0.5
    assert meta["trainer_state.json:last_log.learning_rate"] == 5e-5
    assert not [k for k in meta if "stateful_callbacks" in k]  # nested values are not state

    trainer_state(4, 2.5e-5)
    run_snap("save", "checkpoint")
    git("commit", "-q", "-am", "step 4")
    doc = json.loads(run_snap("diff", "HEAD~1", "HEAD", "--json").stdout)
    [ck] = doc["checkpoints"]
    state = {s["name"]: (s["before"], s["after"]) for s in ck["training_state"]}
    assert state["trainer_state.json:global_step"] == (2, 4)
    assert state["trainer_state.json:last_log.learning_rate"] == (5e-5, 2.5e-5)
    assert "trainer_state.json:max_steps" not in state  # unchanged
    table = run_snap("diff", "HEAD~1", "HEAD").stdout
    assert "trainer_state.json:global_step" in table
    # git diff of the pointer (textconv) shows the recorded state.
    shown = git("diff", "HEAD~1", "HEAD", "--", "checkpoint.snap").stdout
    assert "+state trainer_state.json:global_step = 4" in shown


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"global_step": "x" }'])
def test_a_trainer_state_that_is_not_what_the_trainer_writes_is_still_saved(
    tmp_path: Path, content: str
) -> None:
    from gitsnap.formats import read_folder

    write_sharded(tmp_path / "ck", make_state_dict(seed=0), 1)
    (tmp_path / "ck" / "trainer_state.json").write_text(content)
    layout = read_folder(tmp_path / "ck")
    assert "trainer_state.json" in dict(layout.files)
    recorded = {k: v for k, v in layout.metadata.items() if k.startswith("trainer_state.json:")}
    assert recorded == ({"trainer_state.json:global_step": "x"} if "global" in content else {})
