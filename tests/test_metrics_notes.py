"""Metrics and params in a diff: git notes (refs/notes/gitsnap), merging with pointers, the gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gitsnap import notes
from gitsnap.errors import UsageError
from gitsnap.metrics import Condition, compare, evaluate
from tests.helpers import git

CKPT = "model.safetensors"


@pytest.fixture
def saved(dvc_repo: Path, make_checkpoint: Any, run_snap: Any) -> Path:
    make_checkpoint(dvc_repo / CKPT, seed=0)
    run_snap("save", CKPT, "-M", "accuracy=0.90", "-M", "loss=0.5", "-P", "lr=0.01")
    git("add", "-A")
    git("commit", "-q", "-m", "baseline")
    make_checkpoint(dvc_repo / CKPT, seed=0, modify=("head",))
    run_snap("save", CKPT, "-M", "accuracy=0.91", "-P", "lr=0.01")
    git("commit", "-q", "-am", "tuned")
    return dvc_repo


def note_text(rev: str = "HEAD") -> str:
    return git("notes", "--ref=refs/notes/gitsnap", "show", rev).stdout


# ---------------------------------------------------------------- notes


def test_metrics_add_writes_and_merges_a_note(saved: Path, run_snap: Any) -> None:
    out = run_snap("metrics", "add", "acc_eval=0.914", "f1=0.88")
    assert "noted on HEAD" in out.stdout and "acc_eval, f1" in out.stdout
    assert note_text() == "metrics:\n  acc_eval: 0.914\n  f1: 0.88\n"

    (saved / "eval").mkdir()
    (saved / "eval" / "results.json").write_text(json.dumps({"f1": 0.9, "per_class": {"cat": 0.8}}))
    run_snap("metrics", "add", "--rev", "HEAD", "eval/results.json", "-P", "eval.batch=64")
    assert note_text() == (
        "metrics:\n  acc_eval: 0.914\n  f1: 0.9\n  per_class.cat: 0.8\nparams:\n  eval.batch: 64\n"
    )
    # A sectioned YAML file fills both; other commits are untouched.
    (saved / "both.yaml").write_text("metrics:\n  bleu: 31.5\nparams:\n  beam: 4\n")
    run_snap("metrics", "add", "--rev", "HEAD~1", "both.yaml")
    assert note_text("HEAD~1") == "metrics:\n  bleu: 31.5\nparams:\n  beam: 4\n"
    assert "bleu" not in note_text("HEAD")


def test_metrics_show_merges_note_over_pointer(saved: Path, run_snap: Any) -> None:
    run_snap("metrics", "add", "accuracy=0.95", "f1=0.8")
    text = run_snap("metrics", "show").stdout
    assert "metric accuracy = 0.95  (note; pointer had 0.91)" in text
    assert "metric f1 = 0.8  (note)" in text and "param  lr = 0.01  (pointer)" in text
    data = json.loads(run_snap("metrics", "show", "HEAD", "--json").stdout)
    [ck] = data["checkpoints"]
    assert ck["metrics"]["accuracy"] == {
        "value": 0.95,
        "source": "note",
        "origin": "note",
        "sources": {"pointer": 0.91, "note": 0.95},
    }
    assert data["note"]["metrics"] == {"accuracy": 0.95, "f1": 0.8}
    old = json.loads(run_snap("metrics", "show", "HEAD~1", "--json").stdout)
    assert old["note"] == {"metrics": {}, "params": {}}
    assert old["checkpoints"][0]["metrics"]["loss"]["source"] == "pointer"


def test_diff_prefers_the_note_and_shows_both_sources(saved: Path, run_snap: Any) -> None:
    run_snap("metrics", "add", "--rev", "HEAD~1", "accuracy=0.89")
    run_snap("metrics", "add", "accuracy=0.92", "bleu=30")
    data = json.loads(run_snap("diff", "HEAD~1", "HEAD", "--format", "json").stdout)
    metrics = {m["name"]: m for m in data["checkpoints"][0]["metrics"]}
    acc = metrics["accuracy"]
    assert (acc["before"], acc["after"]) == (0.89, 0.92)
    assert acc["abs_change"] == pytest.approx(0.03)
    assert acc["sources"] == {
        "before": {"pointer": 0.9, "note": 0.89},
        "after": {"pointer": 0.91, "note": 0.92},
    }
    assert (acc["source_before"], acc["source_after"]) == ("note", "note")
    assert metrics["bleu"]["status"] == "added" and metrics["loss"]["status"] == "removed"
    assert metrics["loss"]["abs_change"] is None
    params = {m["name"]: m for m in data["checkpoints"][0]["params"]}
    assert params["lr"]["status"] == "unchanged"
    table = run_snap("diff", "HEAD~1", "HEAD").stdout
    assert "note" in table and "accuracy" in table


def test_the_working_tree_keeps_heads_note_only_while_its_snapshot_is_heads(
    saved: Path, make_checkpoint: Any, run_snap: Any
) -> None:
    run_snap("metrics", "add", "accuracy=0.95")
    clean = json.loads(run_snap("diff", "HEAD~1", "--format", "json").stdout)
    assert {m["name"]: m["after"] for m in clean["checkpoints"][0]["metrics"]}["accuracy"] == 0.95
    make_checkpoint(saved / CKPT, seed=0, modify=("norm",))  # retrained, not saved
    dirty = json.loads(run_snap("diff", "HEAD~1", "--format", "json").stdout)
    assert {m["name"]: m["after"] for m in dirty["checkpoints"][0]["metrics"]}["accuracy"] == 0.91


def test_gate_reads_note_metrics(saved: Path, run_snap: Any) -> None:
    run_snap("metrics", "add", "accuracy=0.85")
    out = run_snap("diff", "HEAD~1", "HEAD", "--fail-on", "accuracy < -0.01", check=False)
    assert out.returncode == 1
    assert "accuracy 0.9 -> 0.85 (change -0.05) fails" in out.stderr


def test_a_malformed_note_is_a_clear_error(saved: Path, run_snap: Any) -> None:
    git("notes", "--ref=refs/notes/gitsnap", "add", "-f", "-m", "- just\n- a list", "HEAD")
    out = run_snap("diff", "HEAD~1", "HEAD", check=False)
    assert out.returncode == 3
    assert "not a mapping" in out.stderr and "hint: fix or replace it" in out.stderr


def test_metrics_add_usage_errors(saved: Path, run_snap: Any) -> None:
    assert run_snap("metrics", "add", check=False).returncode == 2
    assert run_snap("metrics", "add", "missing.json", check=False).returncode == 3
    assert run_snap("metrics", "add", "--rev", "nope", "a=1", check=False).returncode == 3


def test_note_parsing_rules() -> None:
    assert notes.parse('{"accuracy": 0.9}') == notes.Note(metrics={"accuracy": 0.9})
    n = notes.parse("metrics: {eval: {acc: 0.9}}\nparams: {lr: 0.1}\nowner: ci\n")
    assert n.metrics == {"eval.acc": 0.9} and n.params == {"lr": 0.1} and n.extra == {"owner": "ci"}
    merged = notes.merge(n, {"eval.acc": 0.95, "f1": 0.5}, {})
    assert merged.metrics == {"eval.acc": 0.95, "f1": 0.5} and merged.extra == {"owner": "ci"}
    assert notes.parse(notes.dumps(merged)) == merged
    assert notes.parse("") == notes.Note()
    with pytest.raises(notes.NoteError):
        notes.parse("metrics: [1, 2]")


def test_the_eval_record_names_what_eval_wrote_for_one_snapshot() -> None:
    note = notes.merge(None, {"acc": 0.9, "loss": 0.3}, {"bs": 8})
    note = notes.with_eval(note, "m.safetensors", "s1", "python eval.py '{}'", ["loss", "acc"])
    assert notes.evaluated(note, "m.safetensors", "s1") == {"acc", "loss"}
    assert notes.evaluated(note, "m.safetensors", "s2") == set()  # another snapshot
    assert notes.evaluated(note, "other.safetensors", "s1") == set()  # another checkpoint
    assert notes.parse(notes.dumps(note)) == note
    assert "eval:\n  m.safetensors:\n    command: python eval.py '{}'\n" in (
        notes.dumps(note).decode()
    )
    # A metric written any other way leaves the record; a record left empty goes, and with
    # the last one the section.
    by_hand = notes.merge(note, {"acc": 0.5}, {})
    assert notes.evaluated(by_hand, "m.safetensors", "s1") == {"loss"}
    assert notes.merge(by_hand, {"loss": 0.1}, {}).extra == {}
    assert notes.merge(note, {}, {"bs": 16}).extra == note.extra  # params: the record stays


@pytest.mark.parametrize(
    "record",
    [
        "[1, 2]",
        "{m.safetensors: [acc]}",
        "{m.safetensors: {metrics: [acc]}}",  # no snapshot
        "{m.safetensors: {snapshot: s1, metrics: acc}}",
        "{m.safetensors: {snapshot: [s1], metrics: [acc]}}",
        "{m.safetensors: {snapshot: s1, metrics: [[acc], {acc: 1}, 7, nope]}}",
        "{1: {snapshot: s1, metrics: [acc]}, m.safetensors: {snapshot: s2, metrics: [acc]}}",
    ],
)
def test_an_eval_record_not_as_gitsnap_writes_it_names_nothing(record: str) -> None:
    note = notes.parse(f"metrics: {{acc: 0.9}}\neval: {record}\n")
    assert notes.evaluated(note, "m.safetensors", "s1") == set()
    # Writing metrics into such a note works, and keeps what it cannot read.
    merged = notes.merge(note, {"acc": 0.5, "f1": 0.1}, {})
    assert merged.metrics == {"acc": 0.5, "f1": 0.1}
    assert notes.evaluated(merged, "m.safetensors", "s1") == set()
    assert notes.parse(notes.dumps(merged)).metrics == merged.metrics


def test_fetch_keeps_both_sides_eval_records(
    saved: Path, bare_origin: Path, tmp_path: Path
) -> None:
    """Both clones annotated one commit: ours wins for a metric and for a checkpoint's record;
    their record no longer claims the metrics whose values ours kept."""
    git("push", "-q", "origin", "main")
    other = tmp_path / "other"
    git("clone", "-q", bare_origin, other)
    head = git("rev-parse", "HEAD").stdout.strip()
    theirs = notes.with_eval(
        notes.merge(None, {"acc": 0.8, "f1": 0.7}, {}), "b", "sb", "t", ["acc", "f1"]
    )
    notes.write(saved, head, theirs)
    assert notes.push(saved) == "pushed"
    ours = notes.merge(None, {"acc": 0.95, "loss": 0.2}, {})
    ours = notes.with_eval(ours, "a", "sa", "o", ["loss"])
    notes.write(other, head, ours)
    assert notes.fetch(other) == "merged"
    combined = notes.read(other, head)
    assert combined is not None
    assert combined.metrics == {"acc": 0.95, "f1": 0.7, "loss": 0.2}
    assert notes.evaluated(combined, "a", "sa") == {"loss"}
    assert notes.evaluated(combined, "b", "sb") == {"f1"}  # acc is ours now, by hand


# ---------------------------------------------------------------- comparison and gate


def test_compare_reports_change_by_source() -> None:
    [acc, name, new, old] = compare(
        {"acc": 0.8, "name": "a", "old": 1},
        {"acc": 0.85},
        {"acc": 0.9, "name": "b", "new": True},
        {},
    )
    assert (acc.before, acc.after, acc.source_before, acc.source_after) == (
        0.85,
        0.9,
        "note",
        "pointer",
    )
    assert acc.abs_change == pytest.approx(0.05) and acc.rel_change == pytest.approx(0.05 / 0.85)
    assert name.status == "changed" and name.abs_change is None
    assert new.status == "added" and new.abs_change is None  # a bool is not a number
    assert old.status == "removed"
    [zero] = compare({"x": 0}, {}, {"x": 1.5}, {})
    assert zero.abs_change == 1.5 and zero.rel_change is None
    [same] = compare({"x": 1}, {}, {"x": 1.0}, {})
    assert same.status == "unchanged"


@pytest.mark.parametrize(
    ("text", "change_before", "change_after", "failed"),
    [
        ("accuracy < -0.01", 0.91, 0.90, False),  # exactly -0.01 is not below it
        ("accuracy < -0.01", 0.91, 0.8999, True),
        ("accuracy <= -0.01", 0.91, 0.90, True),
        ("loss > 5%", 0.40, 0.42, False),
        ("loss > 5%", 0.40, 0.43, True),
        ("loss >= 0.02", 0.40, 0.42, True),
        ("accuracy<-1e-2", 0.91, 0.85, True),
    ],
)
def test_conditions(text: str, change_before: float, change_after: float, failed: bool) -> None:
    cond = Condition.parse(text)
    changes = compare({cond.name: change_before}, {}, {cond.name: change_after}, {})
    [check] = evaluate([cond], [("m", changes)])
    assert check.evaluated and check.failed is failed
    assert ("fails" in check.message) is failed


def test_unjudgeable_conditions_do_not_fail() -> None:
    cond = Condition.parse("acc < 0")
    [absent] = evaluate([cond], [("m", compare({}, {}, {"acc": 0.9}, {}))])
    assert (
        not absent.evaluated and not absent.failed and "absent on the before side" in absent.message
    )
    [text] = evaluate([cond], [("m", compare({"acc": "high"}, {}, {"acc": "low"}, {}))])
    assert not text.evaluated and "not a number" in text.message
    [nowhere] = evaluate([cond], [("m", [])], allow_missing=True)
    assert nowhere.path is None and not nowhere.failed
    [zero] = evaluate(
        [Condition.parse("acc > 1%")], [("m", compare({"acc": 0}, {}, {"acc": 1}, {}))]
    )
    assert not zero.evaluated and "old value is 0" in zero.message


@pytest.mark.parametrize("bad", ["accuracy", "accuracy < x", "< 0.1", "a == 1", "a < 1 %%"])
def test_bad_conditions_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError):
        Condition.parse(bad)
