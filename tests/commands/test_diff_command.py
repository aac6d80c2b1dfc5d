"""``git snap diff`` end to end: real git, real dvc, real checkpoints, the installed CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests import helpers
from tests.helpers import git

CKPT = "models/model.safetensors"


def snap_json(run_snap: Any, *args: str) -> dict[str, Any]:
    out = run_snap("diff", "--format", "json", *args)
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def tensors(ck: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in ck["tensors"]}


def store_files(repo: Path) -> set[str]:
    root = repo / ".dvc" / "cache" / "gitsnap" / "blake3"
    return {p.name for p in root.glob("??/*")}


@pytest.fixture
def history(dvc_repo: Path, make_checkpoint: Any, run_snap: Any) -> Path:
    """Two commits of one checkpoint: a baseline, then a fine-tuned head (and new metrics)."""
    run_snap("init")
    git("add", ".gitattributes")
    git("commit", "-q", "-m", "gitsnap init")
    make_checkpoint(dvc_repo / CKPT, seed=0)
    run_snap(
        "save", CKPT, "-m", "baseline", "-M", "accuracy=0.91", "-M", "loss=0.40", "-P", "lr=0.001"
    )
    git("add", "-A")
    git("commit", "-q", "-m", "baseline")
    git("tag", "base")
    make_checkpoint(dvc_repo / CKPT, seed=0, modify=("head",))
    run_snap(
        "save", CKPT, "-m", "new head", "-M", "accuracy=0.93", "-M", "loss=0.35", "-P", "lr=0.0005"
    )
    git("commit", "-q", "-am", "new head")
    git("tag", "tuned")
    return dvc_repo


def test_working_checkpoint_vs_head_reads_the_file_and_stores_nothing(
    history: Path, make_checkpoint: Any, run_snap: Any
) -> None:
    assert snap_json(run_snap)["changed"] is False
    make_checkpoint(history / CKPT, seed=0, modify=("head", "blocks.1.fc1"), modify_seed=7)
    pointer_before = (history / (CKPT + ".snap")).read_bytes()
    objects_before = store_files(history)

    data = snap_json(run_snap)
    [ck] = data["checkpoints"]
    assert data["before"]["label"] == "HEAD" and data["after"] == {
        "label": "working tree",
        "commit": None,
    }
    assert ck["status"] == "modified" and ck["after"]["unsaved"] is True
    changed = {n for n, t in tensors(ck).items() if t["status"] != "unchanged"}
    assert changed == {"head.weight", "head.bias", "blocks.1.fc1.weight", "blocks.1.fc1.bias"}
    assert all(t["status"] == "modified" for n, t in tensors(ck).items() if n in changed)
    head_w = tensors(ck)["head.weight"]
    assert head_w["before"]["stats"]["l2"] != head_w["after"]["stats"]["l2"]
    assert ck["summary"]["tensors_changed"] == 4 and ck["summary"]["counts"]["unchanged"] == 13
    # Looking did not save anything: no pointer change, no new objects.
    assert (history / (CKPT + ".snap")).read_bytes() == pointer_before
    assert store_files(history) == objects_before

    table = run_snap("diff").stdout
    assert "working tree" in table and "(unsaved)" in table and "head.weight" in table
    assert "\x1b[" not in table  # no colour when stdout is not a terminal
    assert "13 unchanged tensors" in table


def test_one_revision_two_revisions_and_paths(
    history: Path, make_checkpoint: Any, run_snap: Any
) -> None:
    make_checkpoint(history / "other" / "b.safetensors", seed=3)
    run_snap("save", "other/b.safetensors")
    git("add", "-A")
    git("commit", "-q", "-m", "second model")

    both = snap_json(run_snap, "HEAD~2", "HEAD")
    by_path = {c["path"]: c for c in both["checkpoints"]}
    assert by_path[CKPT]["status"] == "modified"
    assert by_path["other/b.safetensors"]["status"] == "added"
    assert all(t["status"] == "added" for t in by_path["other/b.safetensors"]["tensors"])

    only = snap_json(run_snap, "HEAD~2", "HEAD", "--", "models/")
    assert [c["path"] for c in only["checkpoints"]] == [CKPT]
    assert [c["path"] for c in snap_json(run_snap, "HEAD~2", "HEAD", CKPT)["checkpoints"]] == [CKPT]

    # One revision: it against the work tree (clean here, so HEAD's content).
    one = snap_json(run_snap, "HEAD~2")
    assert one["after"]["label"] == "working tree"
    assert {c["path"]: c["status"] for c in one["checkpoints"]} == {
        CKPT: "modified",
        "other/b.safetensors": "added",
    }
    metrics = {m["name"]: m for m in one["checkpoints"][0]["metrics"]}
    assert metrics["accuracy"]["before"] == 0.91 and metrics["accuracy"]["after"] == 0.93
    assert metrics["accuracy"]["abs_change"] == pytest.approx(0.02)
    assert metrics["loss"]["rel_change"] == pytest.approx(-0.125)
    params = {m["name"]: m for m in one["checkpoints"][0]["params"]}
    assert params["lr"]["before"] == 0.001 and params["lr"]["after"] == 0.0005

    # A path after "--" is never taken for a revision, even when it is not on disk.
    removed = run_snap("diff", "HEAD~2", "--", "nope/", check=False)
    assert removed.returncode == 3 and "no snapshot of nope" in removed.stderr


def test_values_match_numpy(history: Path, run_snap: Any) -> None:
    import safetensors.numpy

    data = snap_json(run_snap, "HEAD~1", "HEAD", "--values")
    [ck] = data["checkpoints"]
    assert data["values"] is True and ck["summary"]["values_computed"] == 2
    new = safetensors.numpy.load_file(history / CKPT)
    old_state = helpers.make_state_dict(seed=0)
    for name in ("head.weight", "head.bias"):
        v = tensors(ck)[name]["values"]
        x = old_state[name].double().numpy().ravel()
        y = new[name].astype(np.float64).ravel()
        delta = y - x
        assert v["l2_delta"] == pytest.approx(np.linalg.norm(delta), rel=1e-5)
        assert v["rel_change"] == pytest.approx(np.linalg.norm(delta) / np.linalg.norm(x), rel=1e-5)
        assert v["max_abs_delta"] == pytest.approx(np.abs(delta).max(), rel=1e-5)
        assert v["cosine"] == pytest.approx(x @ y / np.linalg.norm(x) / np.linalg.norm(y), rel=1e-5)
        assert v["changed_fraction"] == pytest.approx(np.count_nonzero(delta) / delta.size)
    assert tensors(ck)["embed.weight"]["values"] is None  # unchanged: nothing to read
    head = next(g for g in ck["groups"] if g["name"] == "head")
    assert ck["groups"][0]["name"] == "head" and head["rel_change"] > 0


def test_values_in_bf16_from_the_working_file(
    dvc_repo: Path, make_checkpoint: Any, run_snap: Any
) -> None:
    make_checkpoint(dvc_repo / CKPT, seed=0, dtype="bf16")
    run_snap("save", CKPT)
    git("add", "-A")
    git("commit", "-q", "-m", "bf16")
    make_checkpoint(dvc_repo / CKPT, seed=0, dtype="bf16", modify=("norm",))
    [ck] = snap_json(run_snap, "--values")["checkpoints"]
    v = tensors(ck)["norm.weight"]["values"]
    assert tensors(ck)["norm.weight"]["after"]["dtype"] == "BF16"
    assert v is not None and v["elements"] == 32 and 0 < v["rel_change"] < 1 and v["cosine"] > 0.9


def test_values_fetch_missing_objects_from_the_remote(
    history: Path, local_remote: Path, run_snap: Any
) -> None:
    run_snap("push", "base", "tuned")
    shutil.rmtree(history / ".dvc" / "cache" / "gitsnap")
    (history / CKPT).unlink()  # the working file cannot stand in either
    structural = snap_json(run_snap, "base", "tuned")  # needs no weights at all
    assert structural["checkpoints"][0]["summary"]["tensors_changed"] == 2
    [ck] = snap_json(run_snap, "base", "tuned", "--values")["checkpoints"]
    assert tensors(ck)["head.weight"]["values"]["l2_delta"] > 0


def test_values_without_objects_or_remote_says_how_to_fetch(history: Path, run_snap: Any) -> None:
    shutil.rmtree(history / ".dvc" / "cache" / "gitsnap")
    out = run_snap("diff", "HEAD~1", "HEAD", "--values", check=False)
    assert out.returncode == 3
    assert "not in the local store" in out.stderr
    assert (
        "hint: git snap fetch HEAD HEAD~1" in out.stderr
        or "hint: git snap fetch HEAD~1 HEAD" in out.stderr
    )


def test_corrupt_object_fails_the_value_diff(history: Path, run_snap: Any) -> None:
    [ck] = snap_json(run_snap, "HEAD~1", "HEAD")["checkpoints"]
    oid = tensors(ck)["head.weight"]["before"]["oid"]
    path = history / ".dvc" / "cache" / "gitsnap" / "blake3" / oid[:2] / oid[2:]
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))
    out = run_snap("diff", "HEAD~1", "HEAD", "--values", check=False)
    assert out.returncode == 3 and "corrupt" in out.stderr


def test_renamed_added_removed_reshaped_through_the_cli(dvc_repo: Path, run_snap: Any) -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 4)).astype(np.float32)
    helpers.write_safetensors(
        dvc_repo / "m.safetensors", {"enc.old": w, "gone": w[0], "shape": w, "keep": w[1]}
    )
    run_snap("save", "m.safetensors")
    git("add", "-A")
    git("commit", "-q", "-m", "one")
    helpers.write_safetensors(
        dvc_repo / "m.safetensors",
        {"enc.new": w, "fresh": w[2] * 3, "shape": w.reshape(2, 8), "keep": w[1]},
    )
    [ck] = snap_json(run_snap)["checkpoints"]
    assert {t["name"]: t["status"] for t in ck["tensors"]} == {
        "enc.new": "renamed",
        "fresh": "added",
        "gone": "removed",
        "shape": "reshaped",
        "keep": "unchanged",
    }
    assert tensors(ck)["enc.new"]["old_name"] == "enc.old"
    assert set(ck["summary"]["counts"]) == {
        "added",
        "removed",
        "renamed",
        "reshaped",
        "modified",
        "unchanged",
    }


def test_exit_codes(history: Path, make_checkpoint: Any, run_snap: Any, tmp_path: Path) -> None:
    assert run_snap("diff", "--exit-code").returncode == 0  # clean
    assert run_snap("diff", "HEAD~1", "HEAD", "--exit-code", check=False).returncode == 1
    assert run_snap("diff", "HEAD~1", "HEAD").returncode == 0  # only when asked

    ok = run_snap(
        "diff", "HEAD~1", "HEAD", "--fail-on", "accuracy < -0.01", "--fail-on", "loss > 5%"
    )
    assert ok.returncode == 0 and "gate ok" in ok.stderr
    bad = run_snap("diff", "HEAD", "HEAD~1", "--fail-on", "accuracy < -0.01", check=False)
    assert bad.returncode == 1
    assert "accuracy 0.93 -> 0.91" in bad.stderr and "fails 'accuracy < -0.01'" in bad.stderr
    rel = run_snap(
        "diff", "HEAD", "HEAD~1", "--fail-on", "loss > 10%", "--format", "json", check=False
    )
    assert rel.returncode == 1
    gate = json.loads(rel.stdout)["gate"]
    assert gate[0]["failed"] is True and gate[0]["change"] == pytest.approx(0.40 / 0.35 - 1)

    unknown = run_snap("diff", "HEAD~1", "HEAD", "--fail-on", "f1 < 0", check=False)
    assert unknown.returncode == 2 and "known names: accuracy, loss" in unknown.stderr
    allowed = run_snap("diff", "HEAD~1", "HEAD", "--fail-on", "f1 < 0", "--allow-missing")
    assert allowed.returncode == 0 and "not checked" in allowed.stderr

    usage = run_snap("diff", "--fail-on", "accuracy dropped", check=False)
    assert usage.returncode == 2 and "hint:" in usage.stderr
    assert run_snap("diff", "no-such-rev", "HEAD", check=False).returncode == 3
    assert run_snap("diff", "--depth", "0", check=False).returncode == 2
    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    assert run_snap("diff", cwd=outside, check=False).returncode == 128


def test_grouping_depth_and_top(history: Path, make_checkpoint: Any, run_snap: Any) -> None:
    make_checkpoint(
        history / CKPT, seed=0, modify=("head", "blocks.0", "blocks.1.fc2"), modify_seed=3
    )
    groups = [g["name"] for g in snap_json(run_snap)["checkpoints"][0]["groups"]]
    assert set(groups) == {"embed", "blocks.0", "blocks.1", "norm", "head"}
    deep = [g["name"] for g in snap_json(run_snap, "--depth", "3")["checkpoints"][0]["groups"]]
    assert "blocks.1.fc2" in deep and "blocks.1.fc1" in deep and "head" in deep
    md = run_snap("diff", "--top", "2", "--format", "markdown").stdout
    assert "(top 2 of 3)" in md


def test_markdown_for_a_pull_request(history: Path, run_snap: Any) -> None:
    md = run_snap(
        "diff",
        "HEAD~1",
        "HEAD",
        "--values",
        "--format",
        "markdown",
        "--fail-on",
        "accuracy < -0.01",
    ).stdout
    assert md.startswith("<!-- gitsnap-diff -->\n### Model changes: `HEAD~1")
    assert "✅ **Gate passed**" in md
    assert "| accuracy | 0.91 | 0.93 | +0.02 | +2.2% | pointer |" in md
    # One layer moved: its table row says it; a chart of one bar would say nothing.
    assert "| `head` | 2/2 |" in md and "```mermaid" not in md
    assert (
        "<details><summary>Tensors of models/model.safetensors: 2 changed, most changed first "
        "(15 unchanged not listed)</summary>" in md
    )


def test_git_diff_uses_the_textconv_driver(history: Path, run_snap: Any) -> None:
    assert "*.snap diff=gitsnap" in (history / ".gitattributes").read_text().splitlines()
    assert git("config", "diff.gitsnap.textconv").stdout.strip() == "git snap textconv"
    out = git("diff", "HEAD~1", "HEAD", "--", CKPT + ".snap").stdout
    assert "gitsnap snapshot" in out
    changed = [
        line
        for line in out.splitlines()
        if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))
    ]
    tensor_lines = [
        line for line in changed if line[1:].startswith(("head.", "blocks.", "embed", "norm."))
    ]
    assert {line[1:].split()[0] for line in tensor_lines} == {"head.weight", "head.bias"}
    assert not any("offset" in line for line in changed)  # no raw YAML noise
    assert "+metric accuracy = 0.93" in out
    log = git("log", "-p", "-1", "--", CKPT + ".snap").stdout
    assert "+head.weight  F32[10x32]" in log
    # A side that is not a valid pointer is shown raw instead of failing git diff.
    (history / (CKPT + ".snap")).write_text("<<<<<<< conflict\n")
    assert "conflict" in git("diff", "--", CKPT + ".snap").stdout
    # init is idempotent: one attribute line.
    run_snap("init")
    assert (history / ".gitattributes").read_text().splitlines().count("*.snap diff=gitsnap") == 1


def test_a_new_repository_diffs_against_nothing(
    git_repo: Path, make_checkpoint: Any, run_snap: Any
) -> None:
    run_snap("init")
    make_checkpoint(git_repo / CKPT, seed=0)
    run_snap("save", CKPT)
    data = snap_json(run_snap)
    assert data["before"]["commit"] is None
    assert data["checkpoints"][0]["status"] == "added"


def test_structural_diff_of_canonical_pointers_imports_no_yaml_or_rich(history: Path) -> None:
    # issue 5: yaml (~30 ms) and rich (~70 ms with its layout) are most of the start-up budget.
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from gitsnap.cli.main import main\n"
        "for argv in (['diff', 'base', 'tuned'], ['diff', 'base', 'tuned', '--json']):\n"
        "    assert main(argv) == 0\n"
        "mods = ('yaml', 'rich', 'numpy', 'torch', 'dvc', 'gitsnap.registry')\n"
        "print('IMPORTED=' + ','.join(m for m in mods if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=history, capture_output=True, text=True, check=True
    )
    assert out.stdout.splitlines()[-1] == "IMPORTED="


def test_a_changed_environment_shows_in_every_view(history: Path, run_snap: Any) -> None:
    """The after side's env rewritten through the pointer model, as a newer venv would save it."""
    from gitsnap.pointer import dumps, loads

    snap = history / (CKPT + ".snap")
    ptr = loads(snap.read_bytes())
    assert (
        ptr.env["packages"]["torch"]
        and ptr.env == loads(git("show", f"base:{CKPT}.snap").stdout.encode()).env
    )  # both sides saved here: the same environment, nothing to show
    assert snap_json(run_snap, "base", "tuned")["checkpoints"][0]["env"] == []
    old_torch = ptr.env["packages"]["torch"]
    ptr.env = {
        **ptr.env,
        "python": "3.99.0",
        "packages": {**ptr.env["packages"], "torch": "9.0.0", "peft": "0.13.2"},
        "installed": ptr.env["installed"] + 1,
        "digest": "f" * 64,
    }
    snap.write_text(dumps(ptr))
    assert loads(snap.read_bytes()) == ptr  # canonical: the model round-trips
    git("commit", "-q", "-am", "new venv")

    [ck] = snap_json(run_snap, "tuned", "HEAD")["checkpoints"]
    assert ck["status"] == "unchanged"
    got = {e["name"]: (e["before"], e["after"]) for e in ck["env"]}
    assert got["python"][1] == "3.99.0"
    assert got["torch"] == (old_torch, "9.0.0") and got["peft"] == (None, "0.13.2")
    installed = next(e for e in ck["env"] if e["name"] == "installed")
    assert installed["after"] == "f" * 64
    assert installed["count_after"] == installed["count_before"] + 1

    table = run_snap("diff", "tuned", "HEAD").stdout
    row = next(line for line in table.splitlines() if line.startswith("torch "))
    assert old_torch in row and "9.0.0" in row
    assert "environment" in table and "3.99.0" in table and "ffffffffffff" in table
    md = run_snap("diff", "tuned", "HEAD", "--format", "markdown").stdout
    assert f"| torch | {old_torch} | 9.0.0 |" in md
    assert "| peft | - | 0.13.2 |" in md
    assert f"| installed packages | {installed['count_before']:,} (digest " in md
    html = run_snap("diff", "tuned", "HEAD", "--format", "html").stdout
    section = html.split('<section class="env">', 1)[1].split("</section>", 1)[0]
    assert "<h3>Environment</h3>" in section
    assert "torch" in section and old_torch in section and "9.0.0" in section
    assert "peft" in section and "0.13.2" in section and "ffffffffffff" in section
