"""Strict metric gates through the real CLI: unknown names, ``--allow-missing``, and the
direction ``.gitsnap.yaml`` declares (``NAME regresses``, and the reports' colours)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gitsnap.errors import UsageError
from gitsnap.metrics import Condition, MetricChange, evaluate, parse_directions
from tests import helpers
from tests.helpers import git

CKPT = "models/model.safetensors"
CONFIG = "metrics:\n  accuracy: {better: higher}\n  loss: {better: lower}\n"


def _save(repo: Path, seed: int, *metrics: str) -> None:
    rng = np.random.default_rng(seed)
    tensors = {f"layer.{i}.weight": rng.normal(size=(8, 8)).astype(np.float32) for i in range(3)}
    helpers.write_safetensors(repo / CKPT, tensors)
    flags = [x for m in metrics for x in ("-M", m)]
    helpers.run_snap("save", CKPT, *flags)
    git("add", "-A")
    git("commit", "-q", "-m", f"seed {seed}")


@pytest.fixture
def gated(dvc_repo: Path) -> Path:
    """Base: accuracy 0.91, loss 0.40, and .gitsnap.yaml's directions. Head: accuracy
    dropped to 0.90 (worse), loss fell to 0.35 (better)."""
    helpers.run_snap("init")
    (dvc_repo / ".gitsnap.yaml").write_text(CONFIG, encoding="utf-8")
    _save(dvc_repo, 0, "accuracy=0.91", "loss=0.40")
    _save(dvc_repo, 1, "accuracy=0.90", "loss=0.35")
    return dvc_repo


def test_an_unknown_metric_is_a_usage_error_listing_the_known_names(gated: Path) -> None:
    typo = helpers.run_snap("diff", "HEAD~1", "HEAD", "--fail-on", "acuracy < -0.01", check=False)
    assert typo.returncode == 2, typo.stderr
    assert "no metric or param 'acuracy' on either side" in typo.stderr
    assert "known names: accuracy, loss" in typo.stderr
    assert "hint:" in typo.stderr and "--allow-missing" in typo.stderr
    # Whatever the format: the gate is checked before anything is written.
    md = helpers.run_snap(
        "diff", "HEAD~1", "HEAD", "--format", "markdown", "--fail-on", "f1 < 0", check=False
    )
    assert md.returncode == 2 and md.stdout == ""

    allowed = helpers.run_snap(
        "diff", "HEAD~1", "HEAD", "--fail-on", "acuracy < -0.01", "--allow-missing"
    )
    assert allowed.returncode == 0
    assert "gate not checked: acuracy: no metric or param" in allowed.stderr
    # --allow-missing does not let a real regression through.
    real = helpers.run_snap(
        "diff",
        "HEAD~1",
        "HEAD",
        "--allow-missing",
        "--fail-on",
        "acuracy < 0",
        "--fail-on",
        "accuracy < -0.005",
        check=False,
    )
    assert real.returncode == 1 and "gate FAILED" in real.stderr


def test_regresses_uses_the_declared_direction(gated: Path) -> None:
    worse = helpers.run_snap(
        "diff", "HEAD~1", "HEAD", "--fail-on", "accuracy regresses", check=False
    )
    assert worse.returncode == 1
    assert "higher is better" in worse.stderr and "fails 'accuracy regresses'" in worse.stderr
    # Loss went down: lower is better, so it did not regress; backwards it did, by 14 %.
    assert helpers.run_snap("diff", "HEAD~1", "HEAD", "--fail-on", "loss regresses").returncode == 0
    back = helpers.run_snap(
        "diff", "HEAD", "HEAD~1", "--fail-on", "loss regresses by 10%", check=False
    )
    assert back.returncode == 1
    assert (
        helpers.run_snap("diff", "HEAD", "HEAD~1", "--fail-on", "loss regresses by 20%").returncode
        == 0
    )
    # A drop of 0.01 is within "by 0.02", not within "by 0.005".
    assert (
        helpers.run_snap(
            "diff", "HEAD~1", "HEAD", "--fail-on", "accuracy regresses by 0.02"
        ).returncode
        == 0
    )
    tight = helpers.run_snap(
        "diff", "HEAD~1", "HEAD", "--fail-on", "accuracy regresses by 0.005", check=False
    )
    assert tight.returncode == 1


def test_regresses_without_a_direction_is_a_usage_error(dvc_repo: Path) -> None:
    helpers.run_snap("init")
    _save(dvc_repo, 0, "f1=0.5")
    _save(dvc_repo, 1, "f1=0.4")
    out = helpers.run_snap("diff", "HEAD~1", "HEAD", "--fail-on", "f1 regresses", check=False)
    assert out.returncode == 2
    assert "declares no direction for 'f1'" in out.stderr
    assert "hint: add to .gitsnap.yaml: metrics: {f1: {better: higher}}" in out.stderr


def test_the_direction_comes_from_the_before_side(gated: Path) -> None:
    """A pull request that flips the direction in its own .gitsnap.yaml is still judged by
    the base's."""
    (gated / ".gitsnap.yaml").write_text("metrics:\n  accuracy: {better: lower}\n")
    git("commit", "-q", "-am", "accuracy: lower is better now")
    out = helpers.run_snap("diff", "HEAD~2", "HEAD", "--fail-on", "accuracy regresses", check=False)
    assert out.returncode == 1


def test_reports_colour_by_direction(gated: Path) -> None:
    table = helpers.run_snap("diff", "HEAD~1", "HEAD").stdout
    acc = next(line for line in table.splitlines() if line.lstrip().startswith("accuracy"))
    loss = next(line for line in table.splitlines() if line.lstrip().startswith("loss"))
    assert "-0.01 worse" in acc and "-0.05 better" in loss
    # On a terminal (colour): the row's name in red or green.
    colour = helpers.run(
        ["script", "-qec", "git snap diff HEAD~1 HEAD", "/dev/null"],
        env={"COLUMNS": "200", "TERM": "xterm"},
    ).stdout
    assert "\x1b[31maccuracy" in colour and "\x1b[32mloss" in colour

    md = helpers.run_snap("diff", "HEAD~1", "HEAD", "--format", "markdown").stdout
    assert "| 🔴 accuracy | 0.91 | 0.9 | -0.01 worse |" in md
    assert "| 🟢 loss | 0.4 | 0.35 | -0.05 better |" in md

    page = helpers.run_snap("diff", "HEAD~1", "HEAD", "--format", "html").stdout
    assert '<tr class="worse"><td>accuracy</td>' in page
    assert '<tr class="better"><td>loss</td>' in page

    data = json.loads(helpers.run_snap("diff", "HEAD~1", "HEAD", "--format", "json").stdout)
    assert data["changed"] is True


def test_a_bad_direction_is_a_clear_error(gated: Path) -> None:
    (gated / ".gitsnap.yaml").write_text("metrics:\n  accuracy: {better: up}\n")
    git("commit", "-q", "-am", "typo")
    out = helpers.run_snap("diff", "HEAD", "HEAD~1", check=False)
    assert out.returncode == 3
    assert "metrics.accuracy: expected {better: higher} or {better: lower}" in out.stderr
    assert "hint: fix .gitsnap.yaml" in out.stderr


def test_conditions_and_directions_parse() -> None:
    assert parse_directions({"metrics": {"a": {"better": "higher"}}}) == {"a": "higher"}
    assert parse_directions({"models": {"x": "m.pt"}}) == {}
    c = Condition.parse("loss regresses by 5%")
    assert (c.name, c.regresses, c.relative, c.threshold) == ("loss", True, True, 0.05)
    assert Condition.parse("acc regresses").threshold == 0
    with pytest.raises(UsageError):
        Condition.parse("acc regresses by -1")
    with pytest.raises(UsageError, match="known names: a0, a1"):
        evaluate(
            [Condition.parse("b < 0")], [("m", [MetricChange(f"a{i}", {}, {}) for i in range(2)])]
        )
    many = [("m", [MetricChange(f"n{i:03}", {}, {}) for i in range(100)])]
    with pytest.raises(UsageError, match="and 60 more"):
        evaluate([Condition.parse("b < 0")], many)
    up = MetricChange("acc", {"pointer": 0.5}, {"pointer": 0.6}, "higher")
    down = MetricChange("loss", {"pointer": 0.5}, {"pointer": 0.6}, "lower")
    same = MetricChange("loss", {"pointer": 0.5}, {"pointer": 0.5}, "lower")
    assert (up.verdict, down.verdict, same.verdict) == ("better", "worse", None)


def test_allow_missing_passes_with_no_metrics_at_all(dvc_repo: Path, run_snap: Any) -> None:
    run_snap("init")
    _save(dvc_repo, 0)
    _save(dvc_repo, 1)
    none = run_snap("diff", "HEAD~1", "HEAD", "--fail-on", "accuracy < 0", check=False)
    assert none.returncode == 2 and "neither side records any" in none.stderr
    assert (
        run_snap(
            "diff", "HEAD~1", "HEAD", "--fail-on", "accuracy < 0", "--allow-missing"
        ).returncode
        == 0
    )


def test_json_states_each_metrics_direction_and_verdict(gated: Path) -> None:
    helpers.run_snap("metrics", "add", "--rev", "HEAD", "f1=0.7")
    doc = json.loads(helpers.run_snap("diff", "HEAD~1", "HEAD", "--json").stdout)
    [ck] = doc["checkpoints"]
    by_name = {m["name"]: m for m in ck["metrics"]}
    assert (by_name["accuracy"]["better"], by_name["accuracy"]["verdict"]) == ("higher", "worse")
    assert (by_name["loss"]["better"], by_name["loss"]["verdict"]) == ("lower", "better")
    # No declared direction (or nothing to judge): both null.
    assert (by_name["f1"]["better"], by_name["f1"]["verdict"]) == (None, None)
