"""Checkpoints written by the real producers -- the transformers ``Trainer`` (with accelerate),
a Lightning ``Trainer`` and ``torch.save(model)`` -- saved, diffed and restored through the real
``git snap`` CLI, then loaded back by the library that wrote them.

The producers run in subprocesses (their own warnings, seeds and threads stay out of pytest's
process), offline: the tiny model is built from a config in code, nothing comes from a hub.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import OFFLINE, git, run_snap

REPO = Path(__file__).resolve().parents[2]


TRAIN_HF = """
import inspect, sys
import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

torch.manual_seed(0)
config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=37, vocab_size=99)
model = BertForSequenceClassification(config)

class Data(torch.utils.data.Dataset):
    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randint(0, 99, (16, 8), generator=g)
        self.y = torch.randint(0, 2, (16,), generator=g)
    def __len__(self):
        return 16
    def __getitem__(self, i):
        return {"input_ids": self.x[i], "labels": self.y[i]}

kwargs = dict(output_dir=sys.argv[1], max_steps=4, save_steps=2, save_strategy="steps",
              report_to=[], seed=0, per_device_train_batch_size=4, disable_tqdm=True,
              logging_steps=1)
# The CPU switch is `use_cpu` since transformers 4.35, `no_cuda` before.
cpu = "use_cpu" if "use_cpu" in inspect.signature(TrainingArguments).parameters else "no_cuda"
kwargs[cpu] = True
Trainer(model=model, args=TrainingArguments(**kwargs), train_dataset=Data()).train()
"""

TRAIN_LIGHTNING = """
import argparse, sys
import torch
import lightning.pytorch as L

class Model(L.LightningModule):
    def __init__(self, args: argparse.Namespace):
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(4, 2)
        self.norm = torch.nn.BatchNorm1d(2)
    def training_step(self, batch, i):
        return self.norm(self.layer(batch[0])).pow(2).mean()
    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.args.lr)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, 1)}

class EarlierCheckpoint(L.Callback):  # the same run one step before its end: a diff to review
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == 2:
            trainer.save_checkpoint(sys.argv[1] + "/model-step2.ckpt")

if __name__ == "__main__":
    torch.manual_seed(0)
    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.randn(12, 4)), batch_size=4)
    trainer = L.Trainer(max_steps=3, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=sys.argv[1],
                        callbacks=[EarlierCheckpoint()])
    trainer.fit(Model(argparse.Namespace(lr=0.01, hidden=4, name="tiny")), data)
    trainer.save_checkpoint(sys.argv[1] + "/model.ckpt")
"""

ACCELERATE_STATE = """
import sys
import torch
from accelerate import Accelerator
torch.manual_seed(0)
accelerator = Accelerator(cpu=True)
model = torch.nn.Linear(4, 2)
opt = torch.optim.AdamW(model.parameters())
sched = torch.optim.lr_scheduler.StepLR(opt, 1)
model, opt, sched = accelerator.prepare(model, opt, sched)
model(torch.randn(3, 4)).sum().backward()
opt.step()
sched.step()
if sys.argv[1] == "save":
    accelerator.save_state(sys.argv[2])
else:  # load the state into fresh objects and compare with the saved originals
    fresh = torch.nn.Linear(4, 2)
    fresh_opt = torch.optim.AdamW(fresh.parameters())
    fresh_sched = torch.optim.lr_scheduler.StepLR(fresh_opt, 1)
    accelerator = Accelerator(cpu=True)
    fresh, fresh_opt, fresh_sched = accelerator.prepare(fresh, fresh_opt, fresh_sched)
    accelerator.load_state(sys.argv[2])
    assert torch.equal(fresh.weight, model.weight) and torch.equal(fresh.bias, model.bias)
    a, b = fresh_opt.state_dict()["state"], opt.state_dict()["state"]
    assert all(torch.equal(a[k][n], b[k][n]) for k in b for n in b[k])
    assert fresh_sched.state_dict() == sched.state_dict()
    print("loaded")
"""

# Runs the file named first as __main__ with the remaining arguments.
RUN_FILE = "import runpy, sys; sys.argv[:] = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"  # noqa: E501

SAVE_MODULE = """
import sys
import torch

class Encoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList([torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4)])
        # Not in state_dict(), but its bytes are in the file: listed under its module path.
        self.register_buffer("position_ids", torch.arange(4), persistent=False)

class Whole(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = Encoder()
        self.head = torch.nn.Linear(4, 2)

torch.manual_seed(0)
torch.save(Whole(), sys.argv[1])
"""


def python(code: str, *args: str | Path, cwd: Path, timeout: float = 240) -> str:
    """Run ``code`` in a fresh interpreter, offline; return its stdout or fail with its output."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *(os.fspath(a) for a in args)],
        cwd=cwd,
        env={**os.environ, **OFFLINE, "PYTHONPATH": os.pathsep.join([os.fspath(cwd), str(REPO)])},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"{code[:200]}...\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


def fingerprint(path: Path) -> dict[str, str]:
    """SHA-256 of every file below ``path`` (or of ``path`` itself), by relative path.

    Permission bits are not compared: transformers writes ``model.safetensors`` with mode 0600
    and a restore currently writes every file with the default mode.
    """
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {
        os.fspath(p.relative_to(path.parent)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in files
    }


# Each producer's output is written once per module, into a folder outside any repo, by its
# own fixture: a test pays only for the producers it uses.


@pytest.fixture(scope="module")
def hf_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The transformers Trainer's output_dir, holding checkpoint-2/ and checkpoint-4/."""
    root = tmp_path_factory.mktemp("transformers")
    python(TRAIN_HF, root / "hf", cwd=root)
    return root / "hf"


@pytest.fixture(scope="module")
def lightning_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Lightning Trainer's model.ckpt, next to the script (train_lightning.py) that wrote it."""
    root = tmp_path_factory.mktemp("lightning")
    # A script file, so that loading the checkpoint later can import its LightningModule.
    (root / "train_lightning.py").write_text(TRAIN_LIGHTNING)
    python(RUN_FILE, root / "train_lightning.py", root, cwd=root)
    return root / "model.ckpt"


@pytest.fixture(scope="module")
def whole_pt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``torch.save`` of a whole nn.Module."""
    root = tmp_path_factory.mktemp("module")
    python(SAVE_MODULE, root / "whole.pt", cwd=root)
    return root / "whole.pt"


@pytest.fixture(scope="module")
def accelerate_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``Accelerator.save_state`` of a model, optimizer and scheduler after one step."""
    root = tmp_path_factory.mktemp("accelerate")
    python(ACCELERATE_STATE, "save", root / "state", cwd=root)
    return root / "state"


def assert_no_complaint(saved: subprocess.CompletedProcess[str]) -> None:
    """Saving these producers' files neither refuses nor warns: all their globals are known."""
    said = (saved.stdout + saved.stderr).lower()
    assert "saved " in said
    assert "refus" not in said and "warning" not in said and "unknown" not in said, said


def shown(path: str, rev: str = "HEAD") -> dict[str, Any]:
    pointer: dict[str, Any] = json.loads(run_snap("show", f"{rev}:{path}", "--json").stdout)[
        "pointer"
    ]
    return pointer


@pytest.mark.slow
def test_transformers_trainer_checkpoints_save_diff_restore_and_resume(
    dvc_repo: Path, hf_run: Path
) -> None:
    steps = ("checkpoint-2", "checkpoint-4")
    expected_files = {
        "config.json",
        "model.safetensors",
        "optimizer.pt",
        "rng_state.pth",
        "scheduler.pt",
        "trainer_state.json",
        "training_args.bin",
    }
    shutil.copytree(hf_run, dvc_repo / "run")
    before = {}
    for step in steps:
        folder = dvc_repo / "run" / step
        assert {p.name for p in folder.iterdir()} >= expected_files
        before[step] = fingerprint(folder)
        out = run_snap("save", f"run/{step}", "-m", step)
        assert_no_complaint(out)
        git("add", ".gitignore", f"run/{step}.snap")
        git("commit", "-q", "-m", step)

    pointer = shown("run/checkpoint-4")
    files = {f["path"]: f["format"] for f in pointer["files"]}
    assert files["model.safetensors"] == "safetensors"
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin"):
        assert files[name] == "torch", name
    by_file: dict[str, set[str]] = {}
    for t in pointer["tensors"]:
        by_file.setdefault(t["file"], set()).add(t["name"])
    assert "bert.encoder.layer.1.attention.self.query.weight" in by_file["model.safetensors"]
    assert {"state.0.exp_avg", "state.0.exp_avg_sq", "state.0.step"} <= by_file["optimizer.pt"]
    assert by_file["rng_state.pth"] == {"cpu"}  # torch's generator; numpy's array is inline
    # Every parameter has its Adam moments: 3 tensors per parameter.
    assert len(by_file["optimizer.pt"]) == 3 * len(by_file["model.safetensors"])
    meta = pointer["metadata"]
    assert meta["scheduler.pt:last_epoch"] == 4
    assert meta["training_args.bin:max_steps"] == 4
    assert meta["training_args.bin:save_strategy"] == "steps"
    assert meta["rng_state.pth:numpy.0"] == "MT19937"
    assert meta["optimizer.pt:param_groups.0.lr"] < meta["optimizer.pt:param_groups.0.initial_lr"]

    # The two commits: checkpoint-4 is new, checkpoint-2 unchanged.
    diff = json.loads(run_snap("diff", "HEAD~1", "HEAD", "--json").stdout)
    text = run_snap("diff", "HEAD~1", "HEAD").stdout
    assert "run/checkpoint-4" in text and "added" in text
    assert json.dumps(diff).count("run/checkpoint-4") >= 1
    assert "run/checkpoint-2" not in json.dumps(diff["changed"]) if "changed" in diff else True

    # The same checkpoint path moving from step 2 to step 4: a real review diff.
    run_snap("init")  # the textconv driver: git diff of the pointer below
    shutil.copytree(dvc_repo / "run" / "checkpoint-2", dvc_repo / "latest")
    run_snap("save", "latest", "-m", "step 2")
    git("add", ".gitignore", "latest.snap")
    git("commit", "-q", "-m", "latest at step 2")
    shutil.rmtree(dvc_repo / "latest")
    shutil.copytree(dvc_repo / "run" / "checkpoint-4", dvc_repo / "latest")
    save4 = run_snap("save", "latest", "-m", "step 4").stdout
    git("commit", "-q", "-am", "latest at step 4")
    # Two more optimizer steps changed every weight and moment; the store kept only new bytes.
    assert "stored" in save4
    step_diff = json.loads(run_snap("diff", "HEAD~1", "HEAD", "--json").stdout)
    [latest] = [c for c in step_diff["checkpoints"] if c["path"] == "latest"]
    latest_text = json.dumps(latest)
    assert "bert.encoder.layer.0.attention.self.query.weight" in latest_text
    assert "state.0.exp_avg" in latest_text
    # The training state the two checkpoints record, compared: the Trainer's step, epoch and
    # learning rate (trainer_state.json, optimizer.pt, scheduler.pt).
    state = {s["name"]: (s["before"], s["after"]) for s in latest["training_state"]}
    assert state["trainer_state.json:global_step"] == (2, 4)
    assert state["scheduler.pt:last_epoch"] == (2, 4)
    epoch_before, epoch_after = state["trainer_state.json:epoch"]
    assert epoch_after > epoch_before
    lr_before, lr_after = state["optimizer.pt:param_groups.0.lr"]
    assert lr_after < lr_before  # the linear schedule decays it
    assert state["trainer_state.json:last_log.step"] == (2, 4)  # logged every step
    assert "trainer_state.json:last_log.loss" in state
    assert "training_args.bin:max_steps" not in state  # unchanged
    # optimizer.pt is optimizer state: counted apart, not as model parameters or layers.
    n_moments = len(by_file["optimizer.pt"])
    assert latest["optimizer_summary"]["tensors_after"] == n_moments
    assert latest["optimizer_summary"]["tensors_changed"] == n_moments
    model_sides = [
        t["after"] for t in latest["tensors"] if t["after"].get("file") != "optimizer.pt"
    ]
    assert latest["summary"]["tensors_after"] == len(model_sides)
    assert latest["summary"]["params_after"] == sum(math.prod(a["shape"]) for a in model_sides)
    assert not [g for g in latest["groups"] if g["name"].startswith("state.")]
    table = run_snap("diff", "HEAD~1", "HEAD").stdout
    assert "latest" in table and "modified" in table
    assert f"optimizer state: {n_moments} tensors changed" in table
    assert "trainer_state.json:global_step" in table
    markdown = run_snap("diff", "HEAD~1", "HEAD", "--format", "markdown").stdout
    assert "latest" in markdown
    assert "**Training state**" in markdown
    assert "| trainer\\_state.json:global\\_step | 2 | 4 | +2 |" in markdown
    textconv = git("diff", "HEAD~1", "HEAD", "--", "latest.snap").stdout
    assert "-state trainer_state.json:global_step = 2" in textconv
    assert "+state trainer_state.json:global_step = 4" in textconv
    assert "+state scheduler.pt:last_epoch = 4" in textconv

    # Restore: delete the folders, check out, byte-exact.
    for folder in (*(dvc_repo / "run" / step for step in steps), dvc_repo / "latest"):
        shutil.rmtree(folder)
    run_snap("checkout")
    for step in steps:
        assert fingerprint(dvc_repo / "run" / step) == before[step], step
    assert run_snap("status").stdout.startswith("clean")

    # The restored checkpoint is what transformers itself loads and resumes from: one
    # interpreter (transformers' import is most of the time) compares the restored step-4
    # weights and optimizer state with the originals, then resumes from the restored step 2,
    # which reads all of it (weights, optimizer, scheduler, RNG state, trainer state).
    originals = hf_run
    load_back = """
import json, sys
import torch
from transformers import BertForSequenceClassification
restored, original = sys.argv[2], sys.argv[3]
a = BertForSequenceClassification.from_pretrained(restored, local_files_only=True)
b = BertForSequenceClassification.from_pretrained(original, local_files_only=True)
sa, sb = a.state_dict(), b.state_dict()
assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
oa = torch.load(restored + "/optimizer.pt", weights_only=False)
ob = torch.load(original + "/optimizer.pt", weights_only=False)
assert oa["param_groups"] == ob["param_groups"]
assert oa["state"].keys() == ob["state"].keys()
for k in oa["state"]:
    for n in oa["state"][k]:
        assert torch.equal(oa["state"][k][n], ob["state"][k][n]), (k, n)
args = torch.load(restored + "/training_args.bin", weights_only=False)
print(json.dumps({"params": len(sa), "moments": len(oa["state"]), "max_steps": args.max_steps}))
"""
    restored2 = os.fspath(dvc_repo / "run" / "checkpoint-2")
    resume = TRAIN_HF.replace(".train()", f".train(resume_from_checkpoint={restored2!r})")
    printed = python(
        load_back + resume,
        dvc_repo.parent / "resumed",
        dvc_repo / "run" / "checkpoint-4",
        originals / "checkpoint-4",
        cwd=dvc_repo.parent,
    )
    loaded = json.loads(next(ln for ln in printed.splitlines() if ln.startswith('{"params')))
    assert loaded["max_steps"] == 4 and loaded["moments"] == len(by_file["model.safetensors"])
    resumed = dvc_repo.parent / "resumed" / "checkpoint-4" / "model.safetensors"
    assert resumed.read_bytes() == (originals / "checkpoint-4" / "model.safetensors").read_bytes()


@pytest.mark.slow
def test_lightning_ckpt_with_namespace_hparams_saved_restored_and_loaded(
    dvc_repo: Path, lightning_ckpt: Path
) -> None:
    run_snap("init")  # the textconv driver: git diff of the pointer below
    ckpt = dvc_repo / "lightning" / "model.ckpt"
    ckpt.parent.mkdir()
    # The run one step before its end, then at its end: the review of one training step.
    shutil.copy2(lightning_ckpt.parent / "model-step2.ckpt", ckpt)
    assert_no_complaint(run_snap("save", "lightning/model.ckpt", "-m", "step 2"))
    git("add", "-A")  # the checkpoint itself is git-ignored by now
    git("commit", "-q", "-m", "lightning step 2")
    shutil.copy2(lightning_ckpt, ckpt)
    before = fingerprint(ckpt)
    out = run_snap("save", "lightning/model.ckpt", "-m", "lightning")
    assert_no_complaint(out)
    git("commit", "-q", "-am", "lightning")

    pointer = shown("lightning/model.ckpt")
    assert pointer["format"] == "torch"
    names = {t["name"] for t in pointer["tensors"]}
    # Adam's moments named by their parameter: Lightning's optimizer numbers parameters in
    # model.parameters() order, which is state_dict() order without the BatchNorm buffers.
    moments = {
        f"optimizer_states.0.state[{param}].{moment}"
        for param in ("layer.weight", "layer.bias", "norm.weight", "norm.bias")
        for moment in ("exp_avg", "exp_avg_sq", "step")
    }
    assert {
        "state_dict.layer.weight",
        "state_dict.layer.bias",
        "state_dict.norm.running_mean",
        "state_dict.norm.num_batches_tracked",
        *moments,
    } <= names
    assert not [n for n in names if n.startswith("optimizer_states.0.state.")]
    by_name = {t["name"]: t for t in pointer["tensors"]}
    for param in ("layer.weight", "norm.bias"):
        moment = by_name[f"optimizer_states.0.state[{param}].exp_avg"]
        assert moment["shape"] == by_name[f"state_dict.{param}"]["shape"]

    # The step's review: training state changed, optimizer state counted apart from the model.
    doc = json.loads(run_snap("diff", "HEAD~1", "HEAD", "--json").stdout)
    [ck] = doc["checkpoints"]
    state = {s["name"]: (s["before"], s["after"]) for s in ck["training_state"]}
    assert state["global_step"] == (2, 3)
    assert "optimizer_states.0.param_groups.0.lr" in state  # StepLR moved it
    assert "hyper_parameters.args.lr" not in state  # unchanged
    opt_tensors = {t["name"] for t in ck["tensors"] if t["name"].startswith("optimizer_states")}
    assert opt_tensors == moments
    assert ck["optimizer_summary"]["tensors_after"] == len(moments)
    assert ck["optimizer_summary"]["tensors_changed"] == len(moments)
    model_elements = sum(
        math.prod(t["after"]["shape"]) for t in ck["tensors"] if t["name"] not in moments
    )
    assert ck["summary"]["params_after"] == model_elements  # moments are not parameters
    assert ck["summary"]["tensors_after"] == len(ck["tensors"]) - len(moments)
    assert not [g for g in ck["groups"] if g["name"].startswith("optimizer")]
    table = run_snap("diff", "HEAD~1", "HEAD").stdout
    assert f"optimizer state: {len(moments)} tensors changed" in table
    assert "training state" in table and "global_step" in table
    markdown = run_snap("diff", "HEAD~1", "HEAD", "--format", "markdown").stdout
    assert "**Training state**" in markdown and "| global\\_step | 2 | 3 | +1 |" in markdown
    textconv = git("diff", "HEAD~1", "HEAD", "--", "lightning/model.ckpt.snap").stdout
    assert "-state global_step = 2" in textconv and "+state global_step = 3" in textconv
    meta = pointer["metadata"]
    assert meta["global_step"] == 3
    # The hyper-parameters are an argparse.Namespace: named through its attributes.
    assert meta["hyper_parameters.args.lr"] == 0.01
    assert meta["hyper_parameters.args.name"] == "tiny"
    assert meta["lr_schedulers.0.last_epoch"] >= 1

    ckpt.unlink()
    run_snap("checkout")
    assert fingerprint(ckpt) == before

    script = lightning_ckpt.parent / "train_lightning.py"
    loaded = python(
        f"""
import sys, torch
sys.path.insert(0, {os.fspath(script.parent)!r})
from train_lightning import Model
kwargs = {{"weights_only": False}}
try:
    m = Model.load_from_checkpoint(sys.argv[1], map_location="cpu", **kwargs)
except TypeError:  # a Lightning that has no weights_only argument
    m = Model.load_from_checkpoint(sys.argv[1], map_location="cpu")
raw = torch.load(sys.argv[2], weights_only=False)
for k, v in m.state_dict().items():
    assert torch.equal(v, raw["state_dict"][k]), k
print(m.hparams.args.lr, m.hparams.args.name)
""",
        ckpt,
        lightning_ckpt,
        cwd=dvc_repo,
    )
    assert loaded.split() == ["0.01", "tiny"]


@pytest.mark.slow
def test_accelerate_save_state_folder_saved_restored_and_loaded(
    dvc_repo: Path, accelerate_state: Path
) -> None:
    shutil.copytree(accelerate_state, dvc_repo / "state")
    before = fingerprint(dvc_repo / "state")
    assert_no_complaint(run_snap("save", "state"))
    git("add", "-A")
    git("commit", "-q", "-m", "accelerate state")
    pointer = shown("state")
    files = {f["path"]: f["format"] for f in pointer["files"]}
    # random_states_0.pkl is a torch.save zip whatever its name: read as one.
    assert files == {
        "model.safetensors": "safetensors",
        "optimizer.bin": "torch",
        "random_states_0.pkl": "torch",
        "scheduler.bin": "torch",
    }
    names = {(t["file"], t["name"]) for t in pointer["tensors"]}
    assert {
        ("model.safetensors", "weight"),
        ("optimizer.bin", "state.0.exp_avg"),
        ("random_states_0.pkl", "torch_manual_seed"),
    } <= names
    assert pointer["metadata"]["random_states_0.pkl:numpy_random_seed.0"] == "MT19937"
    shutil.rmtree(dvc_repo / "state")
    run_snap("checkout")
    assert fingerprint(dvc_repo / "state") == before
    assert python(ACCELERATE_STATE, "load", dvc_repo / "state", cwd=dvc_repo).split() == ["loaded"]


def test_whole_module_torch_save_names_and_restore(dvc_repo: Path, whole_pt: Path) -> None:
    target = dvc_repo / "whole.pt"
    shutil.copy2(whole_pt, target)
    before = fingerprint(target)
    run_snap("save", "whole.pt")
    git("add", "-A")
    git("commit", "-q", "-m", "whole module")
    names = [t["name"] for t in shown("whole.pt")["tensors"]]
    # In state_dict() order: a module's own parameters and buffers, then its children's.
    assert names == [
        "encoder.position_ids",
        "encoder.layers.0.weight",
        "encoder.layers.0.bias",
        "encoder.layers.1.weight",
        "encoder.layers.1.bias",
        "encoder.layers.1.running_mean",
        "encoder.layers.1.running_var",
        "encoder.layers.1.num_batches_tracked",
        "head.weight",
        "head.bias",
    ]
    target.unlink()
    run_snap("checkout")
    assert fingerprint(target) == before


@pytest.mark.slow
def test_reading_real_checkpoints_imports_and_runs_nothing(
    hf_run: Path, lightning_ckpt: Path, whole_pt: Path, accelerate_state: Path
) -> None:
    """The pickle VM reads every real file without importing torch or any producer's code."""
    paths = [
        lightning_ckpt,
        whole_pt,
        *sorted((hf_run / "checkpoint-4").glob("*.p*")),
        hf_run / "checkpoint-4" / "training_args.bin",
        *sorted(accelerate_state.glob("*.bin")),
        accelerate_state / "random_states_0.pkl",
    ]
    code = """
import json, sys
from pathlib import Path
from gitsnap.formats import read_layout
report = {}
for p in sys.argv[1:]:
    layout = read_layout(Path(p))
    report[Path(p).name] = {
        "tensors": sum(1 for s in layout.segments if s.tensor is not None),
        "globals": {g.name: g.kind for g in layout.pickle_globals},
    }
heavy = ("torch", "transformers", "accelerate", "lightning", "pytorch_lightning", "__main__.Whole")
print(json.dumps({"report": report, "imported": [m for m in heavy if m in sys.modules]}))
"""
    proc = subprocess.run(
        [sys.executable, "-c", code, *map(os.fspath, paths)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(proc.stdout)
    assert result["imported"] == []
    report = result["report"]
    assert set(report) == {
        "model.ckpt",
        "whole.pt",
        "optimizer.pt",
        "rng_state.pth",
        "scheduler.pt",
        "training_args.bin",
        "optimizer.bin",
        "scheduler.bin",
        "random_states_0.pkl",
    }
    kinds = {kind for r in report.values() for kind in r["globals"].values()}
    assert "unsafe" not in kinds
    assert report["rng_state.pth"]["globals"]["numpy.ndarray"] == "data"
    assert (
        report["training_args.bin"]["globals"]["transformers.training_args.TrainingArguments"]
        == "data"
    )
    assert report["model.ckpt"]["globals"]["argparse.Namespace"] == "data"
    assert report["whole.pt"]["globals"]["torch.nn.modules.linear.Linear"] == "data"
    assert report["optimizer.pt"]["tensors"] > 0 and report["scheduler.pt"]["tensors"] == 0
