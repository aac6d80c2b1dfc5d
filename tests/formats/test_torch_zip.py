"""PyTorch zip checkpoints: tensors by dotted name, storages as objects, byte-exact restore,
and never running pickle code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from gitsnap import api
from gitsnap.formats import read_layout
from gitsnap.pointer import Pointer, loads
from tests.helpers import git, make_state_dict, stored_raw_bytes


def training_checkpoint(
    path: Path,
    *,
    seed: int = 0,
    modify: tuple[str, ...] = (),
    optimizer_steps: int = 1,
    epoch: int = 3,
) -> dict[str, Any]:
    """A Trainer-style checkpoint: model state dict, Adam state, epoch and step."""
    model = make_state_dict(seed=seed, modify=modify, hidden=32)
    params = [torch.nn.Parameter(t.clone()) for t in model.values()]
    opt = torch.optim.Adam(params, lr=1e-3)
    gen = torch.Generator().manual_seed(100)
    for _ in range(optimizer_steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen)
        opt.step()
    ckpt = {"model": model, "optimizer": opt.state_dict(), "epoch": epoch, "step": 1000 * epoch}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return ckpt


def pointer_of(repo: Path, rel: str) -> Pointer:
    return loads((repo / (rel + ".snap")).read_bytes())


def by_name(ptr: Pointer) -> dict[str, Any]:
    return {t.name: t for t in ptr.tensors}


# ---------------------------------------------------------------- listing and restore


def test_nested_tensors_get_dotted_names_and_scalars_become_metadata(dvc_repo: Path) -> None:
    ckpt = training_checkpoint(dvc_repo / "ckpt.pt")
    [res] = api.save(["ckpt.pt"])
    ptr = pointer_of(dvc_repo, "ckpt.pt")
    assert ptr.format == "torch"
    names = by_name(ptr)
    assert "model.embed.weight" in names and "model.head.weight" in names
    # Adam's moments named by their parameter: the optimizer was built over the model's
    # parameters in state_dict() order, and every moment has its parameter's shape.
    params = list(ckpt["model"])
    assert f"optimizer.state[{params[0]}].exp_avg" in names
    assert f"optimizer.state[{params[3]}].exp_avg_sq" in names
    assert names[f"optimizer.state[{params[3]}].exp_avg"].shape == names[f"model.{params[3]}"].shape
    expected = len(ckpt["model"]) + sum(len(s) for s in ckpt["optimizer"]["state"].values())
    assert res.tensors == expected == len(ptr.tensors)
    assert not any(t.view for t in ptr.tensors)
    assert ptr.metadata["epoch"] == 3 and ptr.metadata["step"] == 3000
    assert ptr.metadata["optimizer.param_groups.0.lr"] == 0.001
    assert ptr.metadata["optimizer.param_groups.0.betas.1"] == 0.999
    # A long list of parameter ids is noise: left out.
    assert not any(k.startswith("optimizer.param_groups.0.params") for k in ptr.metadata)
    head = names["model.head.weight"]
    ref = ckpt["model"]["head.weight"].double()
    assert head.dtype == "F32" and head.shape == tuple(ref.shape)
    assert head.stats["mean"] == pytest.approx(ref.mean().item(), rel=1e-5, abs=1e-7)
    assert head.stats["l2"] == pytest.approx(ref.norm().item(), rel=1e-5)


def test_checkout_restores_the_file_byte_for_byte(dvc_repo: Path, run_snap: Any) -> None:
    path = dvc_repo / "models" / "ckpt.pth"
    training_checkpoint(path)
    original = path.read_bytes()
    run_snap("save", "models/ckpt.pth")
    path.unlink()
    run_snap("checkout", "models/ckpt.pth")
    assert path.read_bytes() == original
    assert run_snap("status").stdout.startswith("clean")
    loaded = torch.load(path, weights_only=True)
    assert loaded["epoch"] == 3


def test_every_byte_is_in_exactly_one_segment(tmp_path: Path) -> None:
    path = tmp_path / "c.ckpt"
    training_checkpoint(path)
    layout = read_layout(path)
    pos = 0
    for seg in layout.segments:
        assert seg.offset == pos
        pos += seg.size
    assert pos == path.stat().st_size
    roles = {s.role for s in layout.segments}
    assert roles == {"tensor", "pickle", "zip"}
    # Storages are whole segments; between them only headers (the central directory is last).
    *between, directory = [s for s in layout.segments if s.role == "zip"]
    assert all(s.size < 512 for s in between)  # local headers, small records
    assert directory.offset + directory.size == layout.size
    assert directory.size < 200 * sum(1 for s in layout.segments if s.role == "tensor") + 1000


# ---------------------------------------------------------------- dedup


def test_optimizer_only_change_stores_only_the_optimizer(dvc_repo: Path) -> None:
    training_checkpoint(dvc_repo / "ckpt.pt", optimizer_steps=1)
    api.save(["ckpt.pt"])
    before = pointer_of(dvc_repo, "ckpt.pt")
    grown = stored_raw_bytes(dvc_repo)
    training_checkpoint(
        dvc_repo / "ckpt.pt", optimizer_steps=2
    )  # same weights, newer optimizer state
    [res] = api.save(["ckpt.pt"])
    after = pointer_of(dvc_repo, "ckpt.pt")
    old, new = by_name(before), by_name(after)
    changed = {n for n in new if new[n].oid != old[n].oid}
    assert changed and all(n.startswith("optimizer.") for n in changed)
    assert all(new[n].oid == old[n].oid for n in new if n.startswith("model."))
    changed_bytes = sum(new[n].size for n in changed)
    small = sum(b.size for b in after.blobs)  # pickle, zip headers, central directory
    assert res.bytes_written <= changed_bytes + small
    assert stored_raw_bytes(dvc_repo) - grown == res.bytes_written
    model_bytes = sum(t.size for t in after.tensors if t.name.startswith("model."))
    assert res.bytes_written < after.size - model_bytes + 1


def test_head_only_change_stores_only_the_head(dvc_repo: Path) -> None:
    training_checkpoint(dvc_repo / "ckpt.pt")
    api.save(["ckpt.pt"])
    training_checkpoint(dvc_repo / "ckpt.pt", modify=("head",))
    before = stored_raw_bytes(dvc_repo)
    [res] = api.save(["ckpt.pt"])
    ptr = pointer_of(dvc_repo, "ckpt.pt")
    head = sum(t.size for t in ptr.tensors if t.name.startswith("model.head."))
    small = sum(b.size for b in ptr.blobs)
    assert 0 < res.bytes_written <= head + small
    assert small < 0.1 * ptr.size
    assert stored_raw_bytes(dvc_repo) - before == res.bytes_written


# ---------------------------------------------------------------- views


def test_views_of_one_storage_are_listed_without_breaking_the_layout(
    dvc_repo: Path, run_snap: Any
) -> None:
    w = torch.randn(8, 6, generator=torch.Generator().manual_seed(0))
    half = torch.randn(4, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    obj = {
        "embed.weight": w,
        "head.weight": w,  # tied weights: the same storage
        "rows": w[2:5],  # a slice
        "t": w.t(),  # a transposed (strided) view
        "every_other": w[:, ::2],  # strided
        "bf16": half,
    }
    path = dvc_repo / "tied.pt"
    torch.save(obj, path)
    original = path.read_bytes()
    run_snap("save", "tied.pt")
    ptr = pointer_of(dvc_repo, "tied.pt")
    names = by_name(ptr)
    assert set(names) == set(obj)
    assert not names["embed.weight"].view  # first in pickle order: the segment
    for name in ("head.weight", "rows", "t", "every_other"):
        assert names[name].view, name
    assert names["head.weight"].oid == names["embed.weight"].oid  # same bytes, same id
    assert names["t"].stride == (1, 6) and names["every_other"].stride == (6, 2)
    assert names["rows"].stride is None
    assert names["rows"].offset == names["embed.weight"].offset + 2 * 6 * 4
    # Views are not objects: the store holds each storage once.
    assert names["rows"].oid not in ptr.oids()
    for name, tensor in obj.items():
        ref = tensor.double()
        stats = names[name].stats
        assert stats["count"] == tensor.numel(), name
        assert stats["mean"] == pytest.approx(ref.mean().item(), rel=1e-5, abs=1e-7), name
        assert stats["min"] == pytest.approx(ref.min().item()), name
        assert stats["l2"] == pytest.approx(ref.norm().item(), rel=1e-5), name
    path.unlink()
    run_snap("checkout", "tied.pt")
    assert path.read_bytes() == original
    assert run_snap("status").stdout.startswith("clean")


def test_parameters_that_are_views_of_a_flat_buffer_get_one_segment_each(dvc_repo: Path) -> None:
    def save(head_value: float) -> None:
        flat = torch.arange(1000, dtype=torch.float32)
        flat[900:] = head_value
        obj = {
            "layer.weight": flat[0:600].view(20, 30),
            "layer.bias": flat[600:900],
            "head": flat[900:],
        }
        torch.save(obj, dvc_repo / "flat.pt")

    save(1.0)
    api.save(["flat.pt"])
    names = by_name(pointer_of(dvc_repo, "flat.pt"))
    assert not any(t.view for t in names.values())
    assert [names[n].size for n in ("layer.weight", "layer.bias", "head")] == [2400, 1200, 400]
    save(2.0)
    [res] = api.save(["flat.pt"])
    ptr = pointer_of(dvc_repo, "flat.pt")
    assert res.bytes_written <= 400 + sum(b.size for b in ptr.blobs)
    assert by_name(ptr)["layer.weight"].oid == names["layer.weight"].oid


TORCH_NAMES = {
    "torch.float32": "F32", "torch.float8_e5m2": "F8_E5M2", "torch.uint16": "U16",
    "torch.int64": "I64", "torch.bfloat16": "BF16",
}  # fmt: skip


def flatten_tensors(obj: Any, name: str) -> dict[str, Any]:
    """Tensors of a loaded object tree by dotted name, as the reader names them."""
    if isinstance(obj, torch.Tensor):
        return {name: obj}
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten_tensors(v, f"{name}.{k}" if name else str(k)))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out.update(flatten_tensors(v, f"{name}.{i}" if name else str(i)))
    return out


def test_the_pickle_vm_locates_every_tensor_as_torch_does(tmp_path: Path) -> None:
    """Equivalence with torch's own loader: name, dtype, shape, stride and byte offset."""
    path = tmp_path / "c.pt"
    training_checkpoint(path)
    w = torch.ones(3, 4)
    tagged = torch.nn.Parameter(torch.full((3,), 2.0))
    tagged.tag = "frozen"  # type: ignore[attr-defined]
    extra = {
        "a": w,
        "b": w[1:],
        "c": torch.zeros(5),
        "t": w.t(),
        "f8": torch.ones(6).to(torch.float8_e5m2),
        "u16": torch.arange(7).to(torch.uint16),
        "p": torch.nn.Parameter(torch.ones(2, 2)),
        "p_state": tagged,  # pickled through _rebuild_parameter_with_state
        "empty": torch.zeros(0, 3),
    }
    torch.save(extra, tmp_path / "v.pt")
    assert b"_rebuild_parameter_with_state" in (tmp_path / "v.pt").read_bytes()
    for p in (path, tmp_path / "v.pt"):
        layout = read_layout(p)
        ours: dict[str, tuple[str, tuple[int, ...], int]] = {}
        for seg in layout.segments:
            if seg.tensor is not None:
                ours[seg.tensor.name] = (seg.tensor.dtype, seg.tensor.shape, seg.offset)
        for view in layout.views:
            ours[view.tensor.name] = (view.tensor.dtype, view.tensor.shape, view.offset)
        loaded = torch.load(p, map_location="meta", weights_only=True)
        flat = flatten_tensors(loaded, "")
        if "optimizer" in loaded:  # moments are named by their parameter (every model tensor)
            params = list(loaded["model"])
            for name in [n for n in flat if n.startswith("optimizer.state.")]:
                idx, moment = name.removeprefix("optimizer.state.").split(".", 1)
                flat[f"optimizer.state[{params[int(idx)]}].{moment}"] = flat.pop(name)
        assert set(ours) == set(flat)
        for name, t in flat.items():
            dtype, shape, offset = ours[name]
            assert shape == tuple(t.shape), name
            assert TORCH_NAMES[str(t.dtype)] == dtype, name
            start = t.untyped_storage()._checkpoint_offset + t.storage_offset() * t.element_size()
            assert offset == start, name


# ---------------------------------------------------------------- dtypes


@pytest.mark.parametrize(
    ("dtype", "name"),
    [
        ("float64", "F64"), ("float32", "F32"), ("float16", "F16"), ("bfloat16", "BF16"),
        ("float8_e4m3fn", "F8_E4M3"), ("float8_e5m2", "F8_E5M2"),
        ("int64", "I64"), ("int32", "I32"), ("int16", "I16"), ("int8", "I8"), ("uint8", "U8"),
        ("bool", "BOOL"),
    ],
)  # fmt: skip
def test_dtypes_get_their_names_and_stats_match_torch(
    tmp_path: Path, dtype: str, name: str
) -> None:
    from gitsnap import snapshot

    gen = torch.Generator().manual_seed(7)
    base = torch.randn(257, 3, generator=gen) * 3
    tensor = (base > 0) if dtype == "bool" else base.to(getattr(torch, dtype))
    path = tmp_path / "t.pt"
    torch.save({"x": tensor}, path)
    [entry] = snapshot.ingest(path, None, want_stats=True).tensors
    assert entry.dtype == name
    ref = tensor.double()
    assert entry.stats["count"] == tensor.numel()
    # Accumulated in float32 for float32 and narrower: error relative to the spread.
    scale = ref.std().item() + 1e-12
    assert entry.stats["mean"] == pytest.approx(ref.mean().item(), rel=1e-6, abs=1e-6 * scale)
    assert entry.stats["std"] == pytest.approx(ref.std(unbiased=False).item(), rel=1e-5, abs=1e-9)
    # Stats are stored to 7 significant digits.
    assert entry.stats["min"] == pytest.approx(ref.min().item(), rel=1e-6)
    assert entry.stats["max"] == pytest.approx(ref.max().item(), rel=1e-6)
    assert entry.stats["l2"] == pytest.approx(ref.norm().item(), rel=1e-6)


# ---------------------------------------------------------------- safety


class Exploit:
    """Pickles to ``os.system(command)``: loading it with plain pickle runs the command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (self.command,))


def test_a_pickle_that_would_run_code_is_read_judged_and_never_runs(
    dvc_repo: Path, run_snap: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    path = dvc_repo / "evil.pt"
    torch.save({"weight": torch.ones(4), "payload": Exploit(f"touch {marker}")}, path)
    # The payload is live: the same construction, loaded unsafely, runs its command.
    control_marker = tmp_path / "control"
    control = tmp_path / "control.pt"
    torch.save({"weight": torch.ones(4), "payload": Exploit(f"touch {control_marker}")}, control)
    unsafe = f"import torch; torch.load({str(control)!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", unsafe], check=True, capture_output=True)
    assert control_marker.exists()
    layout = read_layout(path)
    assert [s.tensor.name for s in layout.segments if s.tensor] == ["weight"]
    kinds = {g.name: g.kind for g in layout.pickle_globals}
    assert kinds["posix.system"] == "unsafe"
    assert kinds["torch._utils._rebuild_tensor_v2"] == "weights_only"
    run_snap("save", "evil.pt", check=False)
    assert not marker.exists()


def test_a_legacy_pickle_is_stored_opaque_judged_and_never_loaded(
    dvc_repo: Path, run_snap: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned-legacy"
    path = dvc_repo / "old.pt"
    torch.save(
        {"weight": torch.ones(4), "payload": Exploit(f"touch {marker}")},
        path,
        _use_new_zipfile_serialization=False,
    )
    original = path.read_bytes()
    kinds = {g.name: g.kind for g in read_layout(path).pickle_globals}
    assert kinds["posix.system"] == "unsafe"
    refused = run_snap("save", "old.pt", check=False)
    assert refused.returncode == 3 and "posix.system" in refused.stderr
    run_snap("save", "old.pt", "--allow-unsafe-pickle")
    assert not marker.exists()
    ptr = pointer_of(dvc_repo, "old.pt")
    assert ptr.format == "torch-legacy" and ptr.tensors == []
    path.unlink()
    run_snap("checkout", "old.pt")
    assert path.read_bytes() == original
    assert not marker.exists()


def test_torchscript_archives_are_segmented_but_never_loaded(dvc_repo: Path, run_snap: Any) -> None:
    module = torch.jit.script(torch.nn.Linear(16, 4))
    path = dvc_repo / "scripted.pt"
    torch.jit.save(module, str(path))
    original = path.read_bytes()
    run_snap("save", "scripted.pt")
    ptr = pointer_of(dvc_repo, "scripted.pt")
    assert ptr.format == "torch" and ptr.tensors == []
    assert sum(1 for b in ptr.blobs if b.role == "storage") == 2  # weight and bias storages
    path.unlink()
    run_snap("checkout", "scripted.pt")
    assert path.read_bytes() == original


def test_a_truncated_checkpoint_is_an_error(dvc_repo: Path, run_snap: Any) -> None:
    path = dvc_repo / "cut.pt"
    training_checkpoint(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    proc = run_snap("save", "cut.pt", check=False)
    assert proc.returncode == 3
    assert "not a valid PyTorch file" in proc.stderr
    assert "hint:" in proc.stderr


def test_show_lists_the_optimizer_state(dvc_repo: Path, run_snap: Any) -> None:
    training_checkpoint(dvc_repo / "ckpt.pt")
    run_snap("save", "ckpt.pt", "-m", "epoch 3")
    git("add", "ckpt.pt.snap", ".gitignore")
    git("commit", "-q", "-m", "ckpt")
    shown = json.loads(run_snap("show", "HEAD:ckpt.pt", "--json").stdout)
    names = [t["name"] for t in shown["pointer"]["tensors"]]
    assert "optimizer.state[embed.weight].exp_avg" in names
    assert shown["pointer"]["metadata"]["epoch"] == 3


# ---------------------------------------------------------------- optimizer moments by parameter


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 3)
        self.norm = torch.nn.BatchNorm1d(3)  # buffers between the parameters in state_dict()
        self.head = torch.nn.Linear(
            3, 3
        )  # the same bias shape as norm's: shapes alone are ambiguous


def lightning_like(path: Path, params: Any = None) -> list[str]:
    """A ``.ckpt`` laid out as Lightning writes it, after two Adam steps; the model's names."""
    torch.manual_seed(0)
    net = _Net()
    chosen = list(net.parameters()) if params is None else params(net)
    opt = torch.optim.Adam(chosen, lr=0.01)
    for _ in range(2):
        net.head(net.norm(net.layer(torch.randn(5, 4)))).pow(2).mean().backward()
        opt.step()
    ckpt = {
        "epoch": 1,
        "global_step": 2,
        "state_dict": net.state_dict(),
        "optimizer_states": [opt.state_dict()],
        "lr_schedulers": [],
    }
    torch.save(ckpt, path)
    return [n for n, _ in net.named_parameters()]


def test_lightning_moments_are_named_by_their_parameter(tmp_path: Path) -> None:
    names = lightning_like(tmp_path / "model.ckpt")
    layout = read_layout(tmp_path / "model.ckpt")
    tensors = {s.tensor.name: s.tensor for s in layout.segments if s.tensor is not None}
    for param in names:
        for moment in ("exp_avg", "exp_avg_sq", "step"):
            assert f"optimizer_states.0.state[{param}].{moment}" in tensors, (param, moment)
        moment = tensors[f"optimizer_states.0.state[{param}].exp_avg"]
        assert moment.shape == tensors[f"state_dict.{param}"].shape
    assert not [n for n in tensors if n.startswith("optimizer_states.0.state.")]
    assert layout.metadata["global_step"] == 2
    assert layout.metadata["optimizer_states.0.param_groups.0.lr"] == 0.01


@pytest.mark.parametrize(
    "params",
    [
        # Frozen layer: the optimizer holds fewer parameters than the model.
        lambda net: [*net.norm.parameters(), *net.head.parameters()],
        # Same count, another order: the shapes no longer line up.
        lambda net: [*net.head.parameters(), *net.layer.parameters(), *net.norm.parameters()],
    ],
    ids=["subset", "reordered"],
)
def test_moments_keep_index_names_when_the_mapping_is_not_certain(
    tmp_path: Path, params: Any
) -> None:
    lightning_like(tmp_path / "model.ckpt", params)
    layout = read_layout(tmp_path / "model.ckpt")
    names = [s.tensor.name for s in layout.segments if s.tensor is not None]
    assert "optimizer_states.0.state.0.exp_avg" in names
    assert not [n for n in names if "[" in n]


def test_a_hand_written_checkpoint_names_moments_by_parameter_when_certain(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = _Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net.head(net.norm(net.layer(torch.randn(5, 4)))).pow(2).mean().backward()
    opt.step()
    params = [n for n, _ in net.named_parameters()]
    torch.save({"model_state_dict": net.state_dict(), "optimizer_state_dict": opt.state_dict()},
               tmp_path / "ckpt.pt")  # fmt: skip
    names = {s.tensor.name for s in read_layout(tmp_path / "ckpt.pt").segments if s.tensor}
    assert {f"optimizer_state_dict.state[{p}].momentum_buffer" for p in params} <= names
    assert not [n for n in names if n.startswith("optimizer_state_dict.state.")]

    # Two model state_dicts (which one did the optimizer train?): index names.
    torch.save(
        {"model": net.state_dict(), "state_dict": net.state_dict(), "optimizer": opt.state_dict()},
        tmp_path / "two.pt",
    )
    names = {s.tensor.name for s in read_layout(tmp_path / "two.pt").segments if s.tensor}
    assert "optimizer.state.0.momentum_buffer" in names
    assert not [n for n in names if "[" in n]


def test_an_optimizer_that_recorded_its_parameter_names_is_named_by_them(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = _Net()
    # Given named_parameters(), torch records ``param_names`` in each param group; two groups
    # (weights with decay, biases without) as trainers build them.
    named = dict(net.named_parameters())
    decay = [(n, p) for n, p in named.items() if n.endswith("weight")]
    no_decay = [(n, p) for n, p in named.items() if n.endswith("bias")]
    opt = torch.optim.AdamW([{"params": decay}, {"params": no_decay, "weight_decay": 0.0}])
    net.head(net.norm(net.layer(torch.randn(5, 4)))).pow(2).mean().backward()
    opt.step()
    assert opt.state_dict()["param_groups"][1]["param_names"] == [n for n, _ in no_decay]
    torch.save(opt.state_dict(), tmp_path / "optimizer.pt")  # saved alone, as a Trainer does
    layout = read_layout(tmp_path / "optimizer.pt")
    tensors = {s.tensor.name: s.tensor for s in layout.segments if s.tensor is not None}
    assert set(tensors) == {
        f"state[{n}].{m}" for n in named for m in ("exp_avg", "exp_avg_sq", "step")
    }
    for n, p in named.items():
        assert tensors[f"state[{n}].exp_avg"].shape == tuple(p.shape)

    # Inside a training checkpoint, under the optimizer's key.
    torch.save({"epoch": 1, "optim": opt.state_dict()}, tmp_path / "ckpt.pt")
    names = {s.tensor.name for s in read_layout(tmp_path / "ckpt.pt").segments if s.tensor}
    assert "optim.state[head.bias].exp_avg_sq" in names
    assert not [n for n in names if n.startswith("optim.state.")]
