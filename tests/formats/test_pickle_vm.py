"""The pickle VM (gitsnap/formats/pickle_vm.py) and the PyTorch reader built on it: equivalence
with pickle for plain data, every real training checkpoint read without torch, tensors named as
torch names them, globals judged, and malicious code never run in any position."""

from __future__ import annotations

import argparse
import collections
import dataclasses
import enum
import io
import json
import math
import os
import pickle
import random
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gitsnap import api
from gitsnap.errors import GitsnapError
from gitsnap.formats import pickle_globals, pickle_vm, read_layout
from gitsnap.formats.pickle_vm import Call, PDict, PSet
from gitsnap.pointer import loads
from tests.helpers import make_state_dict, write_safetensors

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- equivalence with pickle


def to_python(v: Any) -> Any:  # noqa: PLR0911 - one return per kind of node
    """The VM's inert tree back to the Python value, for the few globals plain data uses."""
    if isinstance(v, PDict):
        return {to_python(k): to_python(x) for k, x in v.items}
    if isinstance(v, PSet):
        items = {to_python(x) for x in v.items}
        return frozenset(items) if v.frozen else items
    if isinstance(v, list):
        return [to_python(x) for x in v]
    if isinstance(v, tuple):
        return tuple(to_python(x) for x in v)
    if isinstance(v, Call):
        args = [to_python(a) for a in v.args]
        if v.name == "_codecs.encode":
            return args[0].encode(args[1])
        if v.name in ("builtins.set", "builtins.frozenset"):
            out = set(args[0]) if args else set()
            out |= {to_python(x) for x in v.listitems}
            return out if v.name == "builtins.set" else frozenset(out)
        if v.name == "builtins.bytes":
            return bytes(*args)
        if v.name == "builtins.bytearray":
            return bytearray(*args)
        raise AssertionError(f"unexpected call {v.name}")
    return v


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(1 << 70), max_value=1 << 70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
hashables = st.none() | st.booleans() | st.integers() | st.text(max_size=10)
plain = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.tuples(inner, inner)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(hashables, inner, max_size=5)
        | st.frozensets(hashables, max_size=4)
        | st.sets(hashables, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(value=plain, protocol=st.integers(min_value=0, max_value=5))
def test_plain_data_reads_back_as_pickle_loads_it(value: Any, protocol: int) -> None:
    data = pickle.dumps(value, protocol=protocol)
    result = pickle_vm.run(data)
    assert to_python(result.value) == pickle.loads(data)
    for g in result.globals:
        assert pickle_globals.classify(g.full, result.uses[g.full]) != "unsafe", g.full


def test_shared_and_self_referencing_objects_keep_their_identity() -> None:
    x: list[Any] = [1]
    loop: list[Any] = [x, x]
    loop.append(loop)
    result = pickle_vm.run(pickle.dumps(loop, protocol=2))
    out = result.value
    assert out[0] is out[1] and out[2] is out


# ---------------------------------------------------------------- real checkpoints


class Strategy(enum.Enum):
    STEPS = "steps"
    EPOCH = "epoch"


@dataclasses.dataclass
class TrainingArgs:
    """Stands in for transformers.TrainingArguments: a dataclass with an enum field."""

    output_dir: str = "out"
    learning_rate: float = 5e-5
    num_train_epochs: int = 3
    save_strategy: Strategy = Strategy.STEPS
    seed: int = 42


class Encoder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList([torch.nn.Linear(4, 4) for _ in range(2)])
        self.norm = torch.nn.BatchNorm1d(4)


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = Encoder()
        self.head = torch.nn.Linear(4, 2, bias=False)


def tiny_training(steps: int = 3) -> tuple[Net, Any, Any]:
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2)
    for _ in range(steps):
        hidden = model.encoder.layers[1](model.encoder.layers[0](torch.randn(8, 4)))
        loss = model.head(model.encoder.norm(hidden)).sum()
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad()
    return model, opt, sched


def trainer_checkpoint(folder: Path) -> Net:
    """What transformers' Trainer writes into checkpoint-N/, built by hand with torch."""
    model, opt, sched = tiny_training()
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    torch.save(opt.state_dict(), folder / "optimizer.pt")
    torch.save(sched.state_dict(), folder / "scheduler.pt")
    random.seed(3)
    torch.save(
        {
            "python": random.getstate(),
            "numpy": np.random.RandomState(7).get_state(),
            "cpu": torch.random.get_rng_state(),
        },
        folder / "rng_state.pth",
    )
    torch.save(TrainingArgs(), folder / "training_args.bin")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 3, "epoch": 1.0}))
    return model


def lightning_checkpoint(path: Path) -> Net:
    """The keys Lightning's Trainer writes into a .ckpt, built by hand with torch."""
    model, opt, sched = tiny_training()
    hparams = argparse.Namespace(lr=1e-3, hidden=4, name="tiny")
    ckpt = {
        "epoch": 2,
        "global_step": 30,
        "pytorch-lightning_version": "2.4.0",
        "state_dict": collections.OrderedDict(
            (f"model.{k}", v) for k, v in model.state_dict().items()
        ),
        "loops": {
            "fit_loop": {
                "state_dict": {},
                "epoch_progress": {"total": {"ready": 3, "completed": 2}},
                "epoch_loop.batch_progress": {"total": {"ready": 30}},
            }
        },
        "callbacks": {
            "ModelCheckpoint{'monitor': 'val_loss', 'mode': 'min'}": {
                "monitor": "val_loss",
                "best_model_score": torch.tensor(0.25),
                "best_model_path": "/ckpts/epoch=1.ckpt",
                "current_score": torch.tensor(0.3),
            },
            "EarlyStopping{'monitor': 'val_loss'}": {"wait_count": 0, "patience": 3},
        },
        "optimizer_states": [opt.state_dict()],
        "lr_schedulers": [sched.state_dict()],
        "hparams_name": "hparams",
        "hyper_parameters": hparams,
    }
    torch.save(ckpt, path)
    return model


def read_without_torch(paths: list[Path]) -> dict[str, Any]:
    """read_layout in a fresh interpreter; proves torch was never imported."""
    code = f"""
import json, sys
from pathlib import Path
from gitsnap.formats import read_layout
out = {{}}
for p in {[str(p) for p in paths]!r}:
    layout = read_layout(Path(p))
    out[p] = {{
        "format": layout.format,
        "tensors": [[s.tensor.name, s.tensor.dtype, list(s.tensor.shape)]
                    for s in layout.segments if s.tensor is not None],
        "views": [v.tensor.name for v in layout.views],
        "metadata": layout.metadata,
        "globals": {{g.name: g.kind for g in layout.pickle_globals}},
    }}
out["torch imported"] = "torch" in sys.modules
print(json.dumps(out))
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert proc.stderr == ""  # no warning of any kind
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_a_trainer_checkpoint_folder_is_read_without_torch(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint-3"
    model = trainer_checkpoint(folder)
    names = [
        "pytorch_model.bin",
        "optimizer.pt",
        "scheduler.pt",
        "rng_state.pth",
        "training_args.bin",
    ]
    got = read_without_torch([folder / n for n in names])
    assert got["torch imported"] is False
    weights, opt, sched, rng, args = (got[str(folder / n)] for n in names)
    assert [t[0] for t in weights["tensors"]] == list(model.state_dict())
    # Optimizer moments by index, as the optimizer's state_dict() numbers them.
    opt_names = {t[0] for t in opt["tensors"]}
    assert {"state.0.exp_avg", "state.0.exp_avg_sq", "state.0.step"} <= opt_names
    assert opt["metadata"]["param_groups.0.initial_lr"] == 1e-3
    assert opt["metadata"]["param_groups.0.lr"] == pytest.approx(1e-4)
    assert sched["metadata"]["last_epoch"] == 3 and sched["tensors"] == []
    # The RNG file: torch's generator state is a tensor; numpy's state is recognised data.
    assert [t[0] for t in rng["tensors"]] == ["cpu"]
    assert rng["metadata"]["numpy.0"] == "MT19937"
    assert all(k in ("weights_only", "data") for k in rng["globals"].values()), rng["globals"]
    assert rng["globals"]["numpy._core.multiarray._reconstruct"] == "data" or (
        rng["globals"]["numpy.core.multiarray._reconstruct"] == "data"
    )
    # training_args.bin: a dataclass rebuilt from its fields is data; its values are metadata.
    assert args["tensors"] == []
    assert args["metadata"]["learning_rate"] == 5e-5 and args["metadata"]["seed"] == 42
    assert args["metadata"]["save_strategy"] == "steps"  # an enum member shows its value
    cls = f"{TrainingArgs.__module__}.TrainingArgs"
    assert args["globals"][cls] == "data"
    # An enum is rebuilt by calling its class: gitsnap cannot know it is harmless.
    assert args["globals"][f"{Strategy.__module__}.Strategy"] == "unknown"


def test_a_lightning_checkpoint_is_read_without_torch(tmp_path: Path) -> None:
    path = tmp_path / "epoch=2.ckpt"
    model = lightning_checkpoint(path)
    got = read_without_torch([path])
    assert got["torch imported"] is False
    ckpt = got[str(path)]
    names = [t[0] for t in ckpt["tensors"]]
    assert names[: len(model.state_dict())] == [f"state_dict.model.{k}" for k in model.state_dict()]
    # The optimizer covers model.parameters(): its moments are named by their parameter.
    assert "optimizer_states.0.state[model.encoder.layers.0.weight].exp_avg" in names
    assert "optimizer_states.0.state[model.head.weight].exp_avg_sq" in names
    assert "callbacks.ModelCheckpoint{'monitor': 'val_loss', 'mode': 'min'}.best_model_score" in (
        names
    )
    meta = ckpt["metadata"]
    assert meta["epoch"] == 2 and meta["global_step"] == 30
    assert meta["hyper_parameters.lr"] == 1e-3 and meta["hyper_parameters.name"] == "tiny"
    assert meta["loops.fit_loop.epoch_progress.total.completed"] == 2
    assert meta["lr_schedulers.0.last_epoch"] == 3
    assert ckpt["globals"]["argparse.Namespace"] == "data"
    assert set(ckpt["globals"].values()) <= {"weights_only", "data"}


def test_a_whole_module_is_named_like_its_state_dict(tmp_path: Path) -> None:
    model, _, _ = tiny_training()
    path = tmp_path / "model.pt"
    torch.save(model, path)
    got = read_without_torch([path])[str(path)]
    assert [t[0] for t in got["tensors"]] == list(model.state_dict())
    assert "encoder.layers.0.weight" in [t[0] for t in got["tensors"]]
    shapes = {t[0]: tuple(t[2]) for t in got["tensors"]}
    assert all(shapes[k] == tuple(v.shape) for k, v in model.state_dict().items())
    kinds = got["globals"]
    assert kinds[f"{Net.__module__}.Net"] == "data"
    assert kinds["torch.nn.modules.linear.Linear"] == "data"
    assert "unsafe" not in kinds.values()


def test_trainer_folder_saves_restores_byte_exact_and_dedups_with_safetensors(
    dvc_repo: Path,
) -> None:
    folder = dvc_repo / "ckpt" / "checkpoint-3"
    model = trainer_checkpoint(folder)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    write_safetensors(dvc_repo / "ckpt" / "model.safetensors", state)
    originals = {p: p.read_bytes() for p in folder.iterdir()}
    api.save(["ckpt/model.safetensors"])
    before = sum(1 for _ in (dvc_repo / ".dvc" / "cache" / "gitsnap").rglob("*") if _.is_file())
    api.save(["ckpt/checkpoint-3"])
    ptr = loads((dvc_repo / "ckpt" / "checkpoint-3.snap").read_bytes())
    st_ptr = loads((dvc_repo / "ckpt" / "model.safetensors.snap").read_bytes())
    st_oids = {t.name: t.oid for t in st_ptr.tensors}
    weights = {t.name: t.oid for t in ptr.tensors if t.file == "pytorch_model.bin"}
    assert weights == st_oids  # the same tensor bytes, the same objects
    after = sum(1 for _ in (dvc_repo / ".dvc" / "cache" / "gitsnap").rglob("*") if _.is_file())
    assert after - before < len(ptr.oids()) - len(st_oids) + 1
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()
    api.checkout(paths=["ckpt/checkpoint-3"])
    assert {p: p.read_bytes() for p in folder.iterdir()} == originals


# ---------------------------------------------------------------- malicious pickles


class Exploit:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (self.command,))


class EvilTensor:
    """Pickles as torch's tensor rebuild with an exploit where its storage should be."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        rebuild = torch._utils._rebuild_tensor_v2
        return (rebuild, (Exploit(self.command), 0, (2,), (1,), False, collections.OrderedDict()))


class PidPickler(pickle.Pickler):
    def __init__(self, f: io.BytesIO, pid: Any) -> None:
        super().__init__(f, protocol=2)
        self.pid = pid

    def persistent_id(self, obj: Any) -> Any:
        return self.pid if isinstance(obj, torch.Tensor) else None


def archive(path: Path, data_pkl: bytes, storages: dict[str, bytes]) -> None:
    """A zip laid out as torch.save lays it out, with a pickle of our choosing."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", data_pkl)
        z.writestr("archive/byteorder", "little")
        for key, data in storages.items():
            z.writestr(f"archive/data/{key}", data)
        z.writestr("archive/version", "3\n")


def payloads(marker: Path) -> dict[str, bytes]:
    cmd = f"touch {marker}"
    as_pid = io.BytesIO()
    PidPickler(as_pid, ("storage", Exploit(cmd), "0", "cpu", 4)).dump({"w": torch.ones(1)})
    pid_itself = io.BytesIO()
    PidPickler(pid_itself, Exploit(cmd)).dump({"w": torch.ones(1)})
    return {
        "top level": pickle.dumps(Exploit(cmd), protocol=2),
        "nested": pickle.dumps({"a": [{"b": (1, Exploit(cmd))}]}, protocol=4),
        "protocol 0": pickle.dumps({"a": Exploit(cmd)}, protocol=0),
        "tensor rebuild args": pickle.dumps({"w": EvilTensor(cmd)}, protocol=2),
        "inside a persistent id": as_pid.getvalue(),
        "as the persistent id": pid_itself.getvalue(),
    }


def test_a_malicious_pickle_never_runs_in_any_position(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for where, data in payloads(marker).items():
        path = tmp_path / f"{where.replace(' ', '-')}.pt"
        archive(path, data, {"0": b"\0" * 16})
        try:
            layout = read_layout(path)
        except GitsnapError:
            continue
        kinds = {g.name: g.kind for g in layout.pickle_globals}
        assert kinds.get("posix.system") == "unsafe", (where, kinds)
        assert not marker.exists(), where
    assert not marker.exists()
    # Control: the same bytes, unpickled, run the command.
    data = payloads(marker)["nested"]
    subprocess.run(
        [sys.executable, "-c", f"import pickle; pickle.loads({data!r})"],
        check=True,
        capture_output=True,
    )
    assert marker.exists()


def test_a_malicious_checkpoint_never_runs_through_the_cli(dvc_repo: Path, run_snap: Any) -> None:
    marker = dvc_repo.parent / "pwned-cli"
    for where, data in payloads(marker).items():
        name = f"{where.replace(' ', '-')}.pt"
        archive(dvc_repo / name, data, {"0": b"\0" * 16})
        proc = run_snap("save", name, check=False)
        assert proc.returncode in (0, 3), proc.stderr
        assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert not marker.exists()


@pytest.mark.parametrize(
    ("name", "uses", "kind"),
    [
        ("posix.system", {"reduce"}, "unsafe"),
        ("nt.system", {"reduce"}, "unsafe"),
        ("os.popen", {"reduce"}, "unsafe"),
        ("subprocess.Popen", {"newobj"}, "unsafe"),
        ("subprocess.check_output", {"reduce"}, "unsafe"),
        ("builtins.eval", {"reduce"}, "unsafe"),
        ("builtins.exec", {"reduce"}, "unsafe"),
        ("builtins.getattr", {"reduce"}, "unsafe"),
        ("builtins.__import__", {"reduce"}, "unsafe"),
        ("builtins.print", {"reduce"}, "unsafe"),
        ("runpy._run_code", {"reduce"}, "unsafe"),
        ("importlib.import_module", {"reduce"}, "unsafe"),
        ("pickle.loads", {"reduce"}, "unsafe"),
        ("_pickle.loads", {"reduce"}, "unsafe"),
        ("marshal.loads", {"reduce"}, "unsafe"),
        ("socket.create_connection", {"reduce"}, "unsafe"),
        ("torch.storage._load_from_bytes", {"reduce"}, "unsafe"),
        ("torch.load", {"reduce"}, "unsafe"),
        ("operator.attrgetter", {"reduce"}, "unsafe"),
        ("torch._utils._rebuild_tensor_v2", {"reduce"}, "weights_only"),
        ("torch.FloatStorage", {"pid"}, "weights_only"),
        ("collections.OrderedDict", {"reduce"}, "weights_only"),
        ("numpy.core.multiarray._reconstruct", {"reduce"}, "data"),
        ("argparse.Namespace", {"newobj", "build"}, "data"),
        ("mypackage.config.Config", {"newobj", "build"}, "data"),
        ("mypackage.run", {"reduce"}, "unknown"),
        ("mypackage.Thing", set(), "unknown"),
    ],
)
def test_globals_are_classified(name: str, uses: set[str], kind: str) -> None:
    assert pickle_globals.classify(name, uses) == kind


def test_the_weights_only_table_is_torchs_allow_list() -> None:
    from torch._weights_only_unpickler import _get_allowed_globals

    assert set(_get_allowed_globals()) == set(pickle_globals.WEIGHTS_ONLY_GLOBALS)


def test_python2_names_are_mapped_before_judging() -> None:
    data = b"c__builtin__\neval\n(S'1+1'\ntR."
    result = pickle_vm.run(data)
    [g] = result.globals
    assert g.full == "builtins.eval"
    assert pickle_globals.classify(g.full, result.uses[g.full]) == "unsafe"


def test_numpy_scalars_and_devices_become_metadata(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    torch.save(
        {"loss": np.float64(0.125), "n": np.int64(7), "dev": torch.device("cpu"), "dt": torch.half},
        path,
    )
    meta = read_layout(path).metadata
    assert meta == {"loss": 0.125, "n": 7, "dev": "cpu", "dt": "torch.float16"}


def test_a_state_dict_keeps_the_names_the_reader_always_gave(tmp_path: Path) -> None:
    sd = make_state_dict(seed=0)
    path = tmp_path / "sd.pt"
    torch.save({"model": sd, "step": 5}, path)
    layout = read_layout(path)
    assert [s.tensor.name for s in layout.segments if s.tensor] == [f"model.{k}" for k in sd]
    assert layout.metadata == {"step": 5}
    assert math.isclose(
        sum(s.size for s in layout.segments), path.stat().st_size, rel_tol=0, abs_tol=0
    )
