"""git snap compare: many snapshots side by side, the best by a metric, registered as a tag.

Real git repositories and real dvc; three committed snapshots of one checkpoint
with metrics in their pointers, a git note on the second, a training state in
the safetensors metadata; a dense fine-tune and then a head-only one (so the
third shares most of its objects with the second).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from gitsnap import api
from gitsnap.commands.compare import MAX_REVISIONS
from gitsnap.errors import UsageError
from gitsnap.pointer import Pointer, loads
from gitsnap.render import html as render_html
from gitsnap.render import markdown as render_md
from gitsnap.render import table as render_table
from tests import helpers
from tests.helpers import git, run_snap

CKPT = "models/model.safetensors"
REVS = ["HEAD~2", "HEAD~1", "HEAD"]
LAYERS = [f"encoder.layer.{i}.weight" for i in range(4)]
Runs = tuple[Path, list[Pointer], list[dict[str, np.ndarray]]]


def _commit(repo: Path, state: dict[str, np.ndarray], epoch: int, acc: str, loss: str) -> Pointer:
    helpers.write_safetensors(repo / CKPT, state, {"epoch": str(epoch)})
    run_snap(
        "save", CKPT, "-m", f"epoch {epoch}", "-M", f"accuracy={acc}", "-M", f"loss={loss}",
        "-P", "lr=0.001", cwd=repo,
    )  # fmt: skip
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", f"epoch {epoch}", cwd=repo)
    return loads((repo / (CKPT + ".snap")).read_bytes())


@pytest.fixture
def runs(dvc_repo: Path) -> Runs:
    """Three snapshots; the note on HEAD~1 raises its accuracy above the others."""
    run_snap("init", cwd=dvc_repo)
    (dvc_repo / ".gitsnap.yaml").write_text(
        "metrics:\n  accuracy: {better: higher}\n  loss: {better: lower}\n", encoding="utf-8"
    )
    rng = np.random.default_rng(0)
    s0 = {n: rng.normal(0, 0.05, size=(32, 32)).astype(np.float32) for n in LAYERS}
    s1 = {n: w + rng.normal(0, 1e-3, size=w.shape).astype(np.float32) for n, w in s0.items()}
    s2 = dict(s1)
    s2[LAYERS[3]] = s1[LAYERS[3]] + rng.normal(0, 5e-3, size=(32, 32)).astype(np.float32)
    ptrs = [
        _commit(dvc_repo, s0, 0, "0.81", "0.62"),
        _commit(dvc_repo, s1, 1, "0.85", "0.5"),
        _commit(dvc_repo, s2, 2, "0.88", "0.44"),
    ]
    run_snap("metrics", "add", "--rev", "HEAD~1", "accuracy=0.93", cwd=dvc_repo)
    return dvc_repo, ptrs, [s0, s1, s2]


def test_columns_metrics_by_source_training_state_sizes_and_best(runs: Runs) -> None:
    repo, ptrs, _ = runs
    r = api.compare(REVS, metric="accuracy", cwd=repo)
    assert r.revisions == REVS and r.best == "max" and r.best_from == ".gitsnap.yaml"
    [ck] = r.checkpoints
    assert ck.path == CKPT and [c.snapshot_id for c in ck.columns] == [p.id for p in ptrs]
    assert [c.commit for c in ck.columns] == [
        git("rev-parse", x, cwd=repo).stdout.strip() for x in REVS
    ]
    assert ck.best == 1  # the note's 0.93 beats the pointers' 0.81 and 0.88
    acc = next(row for row in ck.metrics if row.name == "accuracy")
    assert acc.better == "higher"
    assert [c.after for c in acc.cells] == [0.81, 0.93, 0.88]
    assert [c.source_after for c in acc.cells] == ["pointer", "note", "pointer"]
    assert acc.cells[1].sources_after == {"pointer": 0.85, "note": 0.93}
    assert [c.verdict for c in acc.cells] == [None, "better", "better"]
    loss = next(row for row in ck.metrics if row.name == "loss")
    assert [c.after for c in loss.cells] == [0.62, 0.5, 0.44] and loss.better == "lower"
    [lr] = ck.params
    assert [c.after for c in lr.cells] == [0.001] * 3
    assert [c.training for c in ck.columns] == [{"epoch": "0"}, {"epoch": "1"}, {"epoch": "2"}]
    # Stored: each distinct object once (du's count); new: what no column to the left needs.
    seen: set[str] = set()
    for c, p in zip(ck.columns, ptrs, strict=True):
        objects = {e.oid: e.size for e in p.segments()}
        assert c.size == p.size and c.tensors == 4 and c.stored_bytes == sum(objects.values())
        assert c.new_bytes == sum(n for o, n in objects.items() if o not in seen)
        seen |= set(objects)
    head_only = {e.oid: e.size for e in ptrs[2].segments()}
    assert 0 < ck.columns[2].new_bytes < ck.columns[2].stored_bytes  # layer 3 + the header only
    assert ck.columns[2].new_bytes == sum(
        n for o, n in head_only.items() if o not in {e.oid for e in ptrs[1].segments()}
    )


def test_drift_from_the_first_is_the_diffs_ranking_and_exact_with_values(runs: Runs) -> None:
    repo, _, states = runs
    stats = api.compare(REVS, cwd=repo).checkpoints[0]
    assert stats.columns[0].drift is None
    for i, rev in enumerate(REVS[1:], start=1):
        d, ref = stats.columns[i].drift, api.diff(REVS[0], rev, cwd=repo).checkpoints[0]
        assert d is not None and not d.exact and d.rel_change is None
        assert d.tensors_changed == ref.summary.tensors_changed == 4
        assert [g.name for g in d.layers] == [g.name for g in ref.groups[:3]]
        assert d.movement > 0 and d.change_bound == pytest.approx(d.movement)
    exact = api.compare(REVS, values=True, cwd=repo).checkpoints[0]
    for i in (1, 2):
        d = exact.columns[i].drift
        assert d is not None and d.exact
        delta = math.sqrt(sum(float(np.sum((states[i][n] - states[0][n]) ** 2)) for n in LAYERS))
        norm = math.sqrt(sum(float(np.sum(states[0][n] ** 2)) for n in LAYERS))
        assert d.rel_change == pytest.approx(delta / norm, rel=1e-5)
        # The stats bound never exceeds the measured change.
        assert stats.columns[i].drift.movement <= d.rel_change  # type: ignore[union-attr]
    assert exact.columns[2].drift.layers[0].name == "encoder.layer.3"  # type: ignore[union-attr]


def test_best_min_from_the_option_and_over_a_declared_direction(runs: Runs) -> None:
    repo, _, _ = runs
    low = api.compare(REVS, metric="accuracy", best="min", cwd=repo)
    assert low.checkpoints[0].best == 0 and low.best == "min" and low.best_from == "option"
    loss = api.compare(REVS, metric="loss", cwd=repo)
    assert loss.checkpoints[0].best == 2 and loss.best == "min"  # lower is better


def test_usage_errors_exit_2(runs: Runs) -> None:
    repo, _, _ = runs
    typo = run_snap("compare", *REVS, "--metric", "acuracy", cwd=repo, check=False)
    assert typo.returncode == 2
    assert "no metric 'acuracy'" in typo.stderr and "known names: accuracy, loss" in typo.stderr
    run_snap("metrics", "add", "--rev", "HEAD", "f1=0.5", cwd=repo)
    undeclared = run_snap("compare", *REVS, "--metric", "f1", cwd=repo, check=False)
    assert undeclared.returncode == 2 and "declares no direction" in undeclared.stderr
    assert "--best max" in undeclared.stderr
    one = run_snap("compare", "HEAD", cwd=repo, check=False)
    assert one.returncode == 2 and "at least two revisions" in one.stderr
    many = run_snap("compare", *["HEAD"] * (MAX_REVISIONS + 1), cwd=repo, check=False)
    assert many.returncode == 2 and f"at most {MAX_REVISIONS} revisions" in many.stderr
    with pytest.raises(UsageError, match="needs --metric"):
        api.compare(REVS, tag=("model", "v1.0.0"), cwd=repo)
    with pytest.raises(UsageError, match="expected max or min"):
        api.compare(REVS, metric="accuracy", best="biggest", cwd=repo)


def test_tag_registers_the_best_as_a_version_and_a_stage_that_ls_shows(runs: Runs) -> None:
    repo, ptrs, _ = runs
    out = run_snap(
        "compare", *REVS, "--metric", "accuracy", "--tag", "model", "v1.0.0", "--stage", "prod",
        "--json", cwd=repo,
    )  # fmt: skip
    doc = json.loads(out.stdout)
    best = git("rev-parse", "HEAD~1", cwd=repo).stdout.strip()
    assert [t["tag"] for t in doc["registered"]] == ["model@v1.0.0", "model#prod#1"]
    assert {t["commit"] for t in doc["registered"]} == {best}
    assert git("rev-parse", "model@v1.0.0^{commit}", cwd=repo).stdout.strip() == best
    [model] = json.loads(run_snap("ls", "--json", cwd=repo).stdout)
    assert model["name"] == "model" and model["version"] == "v1.0.0" and model["commit"] == best
    assert [(s["stage"], s["version"]) for s in model["stages"]] == [("prod", "v1.0.0")]
    assert model["snapshot_id"] == ptrs[1].id
    # The registry reference is a revision compare reads back.
    again = api.compare(["model@v1.0.0", "HEAD"], cwd=repo)
    assert again.checkpoints[0].columns[0].snapshot_id == ptrs[1].id


def test_stage_alone_uses_the_model_name_of_the_checkpoint(runs: Runs) -> None:
    repo, _, _ = runs
    r = api.compare(REVS, metric="loss", stage="staging", cwd=repo)
    [t] = r.registered
    assert t.tag == "model#staging#1" and t.commit == r.commits[2]
    with pytest.raises(UsageError, match="not the compared models/model"):
        (repo / ".gitsnap.yaml").write_text(
            "models:\n  other: elsewhere.safetensors\n  model: models/model.safetensors\n"
        )
        api.compare(REVS, metric="loss", best="min", tag=("other", "v1.0.0"), cwd=repo)


def test_json_document(runs: Runs) -> None:
    repo, ptrs, _ = runs
    doc = json.loads(run_snap("compare", *REVS, "--metric", "accuracy", "--json", cwd=repo).stdout)
    assert doc["version"] == 1 and [x["rev"] for x in doc["revisions"]] == REVS
    assert (doc["metric"], doc["best"], doc["best_from"]) == ("accuracy", "max", ".gitsnap.yaml")
    [ck] = doc["checkpoints"]
    assert ck["best"] == 1 and [c["best"] for c in ck["columns"]] == [False, True, False]
    col = ck["columns"][1]
    assert col["snapshot"] == ptrs[1].id and col["training"] == {"epoch": "1"}
    assert set(col) >= {"rev", "commit", "size", "tensors", "stored_bytes", "new_bytes", "drift"}
    assert ck["columns"][0]["drift"] is None and col["drift"]["tensors_changed"] == 4
    assert [g["name"] for g in col["drift"]["layers"]][:1] and col["drift"]["exact"] is False
    [acc] = [m for m in ck["metrics"] if m["name"] == "accuracy"]
    assert acc["better"] == "higher"
    assert acc["columns"][1] == {
        "value": 0.93, "source": "note", "origin": "note",
        "sources": {"pointer": 0.85, "note": 0.93},
        "abs_change": pytest.approx(0.12), "rel_change": pytest.approx(0.12 / 0.81),
        "verdict": "better",
    }  # fmt: skip
    assert [p["name"] for p in ck["params"]] == ["lr"] and doc["registered"] == []


def test_table_markdown_and_html_views(runs: Runs) -> None:
    repo, _, _ = runs
    piped = run_snap("compare", *REVS, "--metric", "accuracy", cwd=repo).stdout
    lines = piped.splitlines()
    assert lines[0] == "compare HEAD~2 HEAD~1 HEAD"
    header = next(line for line in lines if "HEAD~1" in line and "(best)" in line)
    assert header.index("HEAD~2") < header.index("HEAD~1") < header.rindex("HEAD (")
    acc = next(line for line in lines if line.startswith("accuracy (higher is better)"))
    assert "0.93 (note) +0.12 better" in acc and "0.88 +0.07 better" in acc
    assert next(line for line in lines if line.startswith("epoch")).split() == [
        "epoch",
        "0",
        "1",
        "2",
    ]
    for field in ("stored", "new objects", "‖ΔW‖/‖W‖ from first", "most moved layers"):
        assert any(line.startswith(field) for line in lines), field
    assert max(len(line) for line in lines) > 120  # piped: full width, nothing wrapped

    r = api.compare(REVS, metric="accuracy", cwd=repo)
    assert render_table.compare(r, width=None).splitlines()[0] == lines[0]
    md = render_md.compare(r)
    assert md.startswith(render_md.COMPARE_MARKER)
    assert "| accuracy (higher is better) | 0.81 | **🟢 0.93 (note) +0.12 better** |" in md
    assert "HEAD\\~1 (" in md and "(best)" in md and "(note) come from the commit's git note" in md
    assert (
        run_snap("compare", *REVS, "--metric", "accuracy", "--format", "markdown", cwd=repo).stdout
        == md
    )

    page = run_snap("compare", *REVS, "--metric", "accuracy", "--format", "html", cwd=repo).stdout
    assert page.startswith("<!doctype html>") and "default-src 'none'" in page
    assert page == render_html.compare(r)
    assert '<strong><span class="better">0.93 (note) +0.12 better</span></strong>' in page
    assert page.count('<svg class="chart"') == 3  # accuracy, loss, how far each moved


def test_a_path_after_the_separator_and_a_checkpoint_missing_in_one_revision(runs: Runs) -> None:
    repo, _, _ = runs
    other = "extra/other.safetensors"
    helpers.write_safetensors(repo / other, {"w": np.ones((4, 4), np.float32)})
    run_snap("save", other, "-M", "accuracy=0.5", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "another checkpoint", cwd=repo)
    both = api.compare(["HEAD~1", "HEAD"], cwd=repo)
    assert [ck.path for ck in both.checkpoints] == [other, CKPT]
    added = both.checkpoints[0]
    assert [c.present for c in added.columns] == [False, True]
    assert added.columns[1].drift is None  # nothing to measure from
    md = render_md.compare(both)
    assert "no snapshot" in md
    # Named after --, a checkpoint only the last revision has: no diff of the others fails.
    late = api.compare(["HEAD~3", "HEAD~1", "HEAD"], [other], cwd=repo)
    [ck] = late.checkpoints
    assert [c.present for c in ck.columns] == [False, False, True]
    [acc] = ck.metrics
    assert [c.after for c in acc.cells] == [None, None, 0.5]
    one = json.loads(run_snap("compare", "HEAD~1", "HEAD", "--json", "--", CKPT, cwd=repo).stdout)
    assert [ck["path"] for ck in one["checkpoints"]] == [CKPT]
    with pytest.raises(UsageError, match="hold 2 checkpoints"):
        api.compare(
            ["HEAD~1", "HEAD"], metric="accuracy", best="max", tag=("model", "v2.0.0"), cwd=repo
        )
