"""``git snap eval``: a command run on each snapshot, restored apart from the work tree.

Real git, real dvc, a local-folder DVC remote, the real ``git snap`` CLI and
real Python evaluation commands in subprocesses; nothing mocked. What the
commands saw is checked against the bytes each revision committed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gitsnap import api
from gitsnap.workspace import Workspace
from tests.helpers import commit_all, git, run_snap, write_safetensors

CKPT = "models/model.safetensors"

# Reads the checkpoint gitsnap restored and writes its metrics (and a param) to $GITSNAP_METRICS,
# with what it was told about the snapshot; prints a line that is not JSON last.
EVALUATE = """
import json, os, sys
import safetensors.numpy

env = os.environ
tensors = safetensors.numpy.load_file(env["GITSNAP_CHECKPOINT"])
with open(env["GITSNAP_METRICS"], "w") as f:
    json.dump({
        "metrics": {"head_sum": float(tensors["head.weight"].sum()),
                    "eval": {"tensors": len(tensors)}},
        "params": {"eval.batch_size": 8},
    }, f)
seen = {k: env[k] for k in ("GITSNAP_REV", "GITSNAP_COMMIT", "GITSNAP_SNAPSHOT", "GITSNAP_PATH")}
with open(sys.argv[1], "a") as log:
    log.write(json.dumps(seen) + "\\n")
print("evaluated", env["GITSNAP_REV"])
"""

# Prints its metrics as a JSON object on its last line; the checkpoint comes as argv[1] ({}).
LAST_LINE = """
import json, os, sys
print("some progress output")
print(json.dumps({"size": os.path.getsize(sys.argv[1]),
                  "placeholder_is_checkpoint": int(sys.argv[1] == os.environ["GITSNAP_CHECKPOINT"]),
                  "arg": sys.argv[2]}))
"""


def _version(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    body = rng.standard_normal((16, 8), dtype=np.float32)
    head = np.full((4, 8), float(n), dtype=np.float32)
    return {"body.weight": body, "head.weight": head}


@pytest.fixture
def history(local_remote: Path) -> dict[str, Any]:
    """v1 and v2 of a small safetensors model committed; HEAD~1 = v1, HEAD = v2."""
    repo = local_remote.parent / "repo"
    out: dict[str, Any] = {"repo": repo, "ckpt": repo / CKPT}
    for n in (1, 2):
        write_safetensors(repo / CKPT, _version(n))
        run_snap("save", CKPT, "-m", f"v{n}", cwd=repo)
        out[f"c{n}"] = commit_all(repo, f"v{n}")
        out[f"id{n}"] = api.show(f"{out[f'c{n}']}:{CKPT}", cwd=repo).pointer.id
        out[f"snap{n}"] = out[f"id{n}"][:12]
        out[f"bytes{n}"] = (repo / CKPT).read_bytes()
    return out


def _note(repo: Path, commit: str) -> dict[str, Any]:
    shown = run_snap("metrics", "show", commit, "--json", cwd=repo)
    note: dict[str, Any] = json.loads(shown.stdout)["note"]
    return note


def _evaluate_script(tmp_path: Path) -> Path:
    """The evaluation command the tests run (:data:`EVALUATE`), written to a file."""
    script = tmp_path / "evaluate.py"
    script.write_text(EVALUATE)
    return script


def _raw_note(repo: Path, commit: str) -> str | None:
    proc = git("notes", "--ref=gitsnap", "show", commit, cwd=repo, check=False)
    return proc.stdout if proc.returncode == 0 else None


def _work_tree(repo: Path) -> tuple[bytes, bytes, int, int, str]:
    ckpt, ptr = repo / CKPT, repo / f"{CKPT}.snap"
    status = git("status", "--porcelain", "--ignored", cwd=repo).stdout
    return (
        ckpt.read_bytes(),
        ptr.read_bytes(),
        ckpt.stat().st_mtime_ns,
        ptr.stat().st_mtime_ns,
        status,
    )


def _scratch_left(repo: Path) -> list[Path]:
    tmp = Workspace.discover(repo).git_dir / "gitsnap" / "tmp"
    return sorted(tmp.rglob("*")) if tmp.is_dir() else []


def test_eval_runs_on_each_snapshot_and_notes_its_metrics(
    history: dict[str, Any], tmp_path: Path
) -> None:
    repo = history["repo"]
    script, seen = _evaluate_script(tmp_path), tmp_path / "seen.jsonl"
    # The work tree moves on after the commits: a new checkpoint, saved but not committed.
    write_safetensors(repo / CKPT, _version(7))
    run_snap("save", CKPT, "-m", "v7", cwd=repo)
    before = _work_tree(repo)

    res = run_snap("eval", "HEAD~1", "HEAD", "--", sys.executable, script, seen, cwd=repo)

    # The table: a row per revision with its commit, snapshot and metrics.
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["REV", "COMMIT", "SNAPSHOT", "head_sum", "eval.tensors"]
    assert lines[1].split() == ["HEAD~1", history["c1"][:10], history["snap1"], "32", "2"]
    assert lines[2].split() == ["HEAD", history["c2"][:10], history["snap2"], "64", "2"]
    assert "metrics attached to 2 commits" in res.stdout
    # The command's own output goes to stderr, apart from the table.
    assert "evaluated HEAD~1" in res.stderr and "evaluated HEAD" in res.stderr
    assert "evaluated" not in res.stdout
    # The command was told which snapshot it evaluates.
    told = [json.loads(line) for line in seen.read_text().splitlines()]
    assert told == [
        {"GITSNAP_REV": rev, "GITSNAP_COMMIT": history[f"c{n}"], "GITSNAP_PATH": CKPT,
         "GITSNAP_SNAPSHOT": history[f"id{n}"]}
        for rev, n in (("HEAD~1", 1), ("HEAD", 2))
    ]  # fmt: skip
    # Each commit's note holds the metrics, the param, and the record of where they came from.
    for n, head_sum in ((1, 32.0), (2, 64.0)):
        commit = history[f"c{n}"]
        note = _note(repo, commit)
        assert note == {
            "metrics": {"eval.tensors": 2, "head_sum": head_sum},
            "params": {"eval.batch_size": 8},
        }
        raw = _raw_note(repo, commit)
        assert raw is not None
        assert "eval:\n  models/model.safetensors:\n" in raw
        assert f"snapshot: {history[f'id{n}']}" in raw
        assert "command: " in raw and "evaluate.py" in raw
    # git snap log shows each commit's evaluated metrics beside its snapshot.
    logged = json.loads(run_snap("log", "--json", cwd=repo).stdout)
    by_commit = {e["commit"]: e for e in logged if e["commit"]}
    for n, head_sum in ((1, 32.0), (2, 64.0)):
        entry = by_commit[history[f"c{n}"]]
        assert entry["snapshot_id"] == history[f"id{n}"]
        assert entry["note"]["metrics"]["head_sum"] == head_sum
    # The work tree (checkpoint and pointer bytes, times, git status) is as it was,
    # and no restored copy is left behind.
    assert _work_tree(repo) == before
    assert _scratch_left(repo) == []


def test_eval_again_gives_the_same_metrics_whatever_the_work_tree_holds(
    history: dict[str, Any], tmp_path: Path
) -> None:
    repo = history["repo"]
    script = _evaluate_script(tmp_path)
    cmd = [sys.executable, script, tmp_path / "seen.jsonl"]
    first = api.eval_snapshots(["HEAD~1", "HEAD"], [str(c) for c in cmd], cwd=repo)
    note_first = _raw_note(repo, history["c2"])
    # The checkpoint in the work tree changes (not even saved), then is deleted.
    write_safetensors(repo / CKPT, _version(9))
    again = api.eval_snapshots(["HEAD~1", "HEAD"], [str(c) for c in cmd], cwd=repo)
    (repo / CKPT).unlink()
    third = api.eval_snapshots(["HEAD~1", "HEAD"], [str(c) for c in cmd], cwd=repo)
    assert [r.metrics for r in first.runs] == [r.metrics for r in again.runs]
    assert [r.metrics for r in first.runs] == [r.metrics for r in third.runs]
    assert [r.metrics["head_sum"] for r in first.runs] == [32.0, 64.0]
    assert [r.snapshot for r in third.runs] == [r.snapshot for r in first.runs]
    assert _raw_note(repo, history["c2"]) == note_first  # the same note, not a second record
    assert not (repo / CKPT).exists()  # eval restored nothing into the work tree


def test_eval_fetches_a_snapshot_missing_from_the_store(
    history: dict[str, Any], tmp_path: Path
) -> None:
    """The objects are only on the DVC remote: eval fetches them (verified) to evaluate."""
    import shutil

    repo = history["repo"]
    run_snap("push", "--all", cwd=repo)
    shutil.rmtree(Workspace.discover(repo).store.root)
    res = run_snap("eval", "HEAD~1", "--no-note", "--", sys.executable, "-c", LAST_LINE, "{}", "x",
                   cwd=repo)  # fmt: skip
    assert res.stdout.splitlines()[1].split()[3:] == [str(len(history["bytes1"])), "1", "x"]
    assert _raw_note(repo, history["c1"]) is None


def test_eval_reads_the_last_output_line_and_replaces_the_placeholder(
    history: dict[str, Any],
) -> None:
    repo = history["repo"]
    res = run_snap(
        "eval", "HEAD~1", "HEAD", "--no-note", "--json",
        "--", sys.executable, "-c", LAST_LINE, "{}", "at:{}",
        cwd=repo,
    )  # fmt: skip
    data = json.loads(res.stdout)  # stdout holds the JSON only; the command's output is on stderr
    assert "some progress output" in res.stderr
    assert set(data) == {"command", "runs"}
    assert _documented_fields() == {"command", "runs[]", *data["runs"][0]}
    assert data["command"] == [sys.executable, "-c", LAST_LINE, "{}", "at:{}"]
    for run, n in zip(data["runs"], (1, 2), strict=True):
        assert set(run) == {
            "rev", "commit", "path", "snapshot", "metrics", "params", "returncode",
            "seconds", "noted", "error", "hint",
        }  # fmt: skip
        assert run["commit"] == history[f"c{n}"]
        assert run["snapshot"] == history[f"id{n}"]
        assert run["path"] == CKPT
        assert run["metrics"]["size"] == len(history[f"bytes{n}"])
        assert run["metrics"]["placeholder_is_checkpoint"] == 1
        # "{}" inside a word is replaced too: the restored file, named as in the repository.
        assert run["metrics"]["arg"].startswith("at:")
        assert run["metrics"]["arg"].endswith("/model.safetensors")
        assert not run["metrics"]["arg"].startswith(f"at:{repo / 'models'}")
        assert (run["params"], run["returncode"], run["noted"]) == ({}, 0, False)
        assert (run["error"], run["hint"]) == (None, None)
        assert _raw_note(repo, history[f"c{n}"]) is None  # --no-note


def _documented_fields() -> set[str]:
    """The field names docs/json-output.md's table lists for ``git snap eval --json``."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "json-output.md").read_text()
    section = doc.split("## `git snap eval --json`", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for row in section.splitlines():
        if row.startswith("| `"):
            names.update(n.strip(" `") for n in row.split("|")[1].split(","))
    return names


def test_a_failing_revision_is_reported_and_the_others_go_on(
    history: dict[str, Any],
) -> None:
    repo = history["repo"]
    fails_on_v1 = (
        "import os, sys\n"
        "if os.environ['GITSNAP_REV'] == 'HEAD~1':\n"
        "    sys.exit('cannot evaluate this one')\n"
        "print('{\"ok\": 1}')\n"
    )
    res = run_snap(
        "eval", "HEAD~1", "no-such-rev", "HEAD", "--", sys.executable, "-c", fails_on_v1,
        cwd=repo, check=False,
    )  # fmt: skip
    assert res.returncode == 3, res.stderr
    rows = [line.split() for line in res.stdout.splitlines()]
    assert rows[0] == ["REV", "COMMIT", "SNAPSHOT", "ok"]
    assert rows[1] == ["HEAD~1", history["c1"][:10], history["snap1"], "failed"]
    assert rows[2] == ["no-such-rev", "-", "-", "failed"]
    assert rows[3] == ["HEAD", history["c2"][:10], history["snap2"], "1"]
    assert "metrics attached to 1 commit " in res.stdout
    assert "cannot evaluate this one" in res.stderr  # the command's own words
    assert "error: HEAD~1: " in res.stderr and "exited with status 1" in res.stderr
    assert "error: no-such-rev: unknown revision" in res.stderr
    assert res.stderr.count("hint: ") == 2
    assert _raw_note(repo, history["c1"]) is None
    assert _note(repo, history["c2"])["metrics"] == {"ok": 1}
    # In JSON the failure carries its message, hint and exit status.
    res = run_snap("eval", "HEAD~1", "--json", "--", sys.executable, "-c", fails_on_v1,
                   cwd=repo, check=False)  # fmt: skip
    assert res.returncode == 3
    [run] = json.loads(res.stdout)["runs"]
    assert run["returncode"] == 1 and "exited with status 1" in run["error"] and run["hint"]
    assert run["metrics"] == {} and run["noted"] is False


# Prints a JSON object of N names on one line.
MANY_NAMES = "print('{{' + ','.join(f'\"m{{i}}\": {{i}}' for i in range({})) + '}}')"


def _writes(content: str) -> list[str]:
    """A command that writes ``content`` (a Python expression) to $GITSNAP_METRICS."""
    code = f"import os; open(os.environ['GITSNAP_METRICS'], 'wb').write({content})"
    return [sys.executable, "-c", code]


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (_writes("b'{\"a\": ' + b'1' * (2 << 20) + b'}'"), "is larger than 1048576 bytes"),
        (_writes("b'{\"a\": ' * 200 + b'1' + b'}' * 200"), "nested deeper than 32 levels"),
        (_writes("b'\\x00\\x01\\xff not json: [' "), "the metrics file (YAML/JSON)"),
        (_writes("b'[1, 2, 3]'"), "the metrics file is not a mapping"),
        (_writes("b'null'"), "the metrics file ($GITSNAP_METRICS) is empty"),
        (_writes("b'{\"a\": {\"b\": 1}, \"params\": 3}'"), "'params' in the metrics file"),
        (
            [sys.executable, "-c", "print('{\"a\": ' * 100000 + '1' + '}' * 100000)"],
            "reported no metrics",
        ),
        (
            [sys.executable, "-c", "print('{\"a\": \"' + 'x' * (1 << 20) + '\"}')"],
            "the last line of the command's output is longer than 1048576 bytes",
        ),
        (
            [sys.executable, "-c", MANY_NAMES.format(10001)],
            "the last output line: more than 10000 metrics/params",
        ),
        ([sys.executable, "-c", "print('done')"], "the command reported no metrics"),
        ([sys.executable, "-c", "import os; os.kill(os.getpid(), 9)"], "was killed by signal 9"),
        (["/nonexistent/evaluator"], "cannot run '/nonexistent/evaluator'"),
    ],
    ids=[
        "huge", "deep", "not-json", "not-a-mapping", "empty", "bad-section",
        "deep-last-line", "last-line-too-long", "too-many-names", "no-metrics", "killed",
        "no-command",
    ],
)  # fmt: skip
def test_hostile_or_missing_metrics_give_a_clear_error(
    history: dict[str, Any], command: list[str], message: str
) -> None:
    repo = history["repo"]
    res = api.eval_snapshots(["HEAD"], command, cwd=repo, output=lambda _: None)
    [run] = res.runs
    assert not run.ok and res.failed == [run]
    assert message in (run.error or ""), run.error
    assert run.hint
    assert run.metrics == {} and not run.noted
    assert _raw_note(repo, history["c2"]) is None
    assert _scratch_left(repo) == []


def test_eval_needs_a_command_and_one_checkpoint(history: dict[str, Any]) -> None:
    repo = history["repo"]
    res = run_snap("eval", "HEAD", cwd=repo, check=False)
    assert res.returncode == 2
    assert "no command to run" in res.stderr and "hint: " in res.stderr
    # A second checkpoint in the commit: eval asks which one, then evaluates the one named.
    write_safetensors(repo / "models/other.safetensors", _version(3))
    run_snap("save", "models/other.safetensors", cwd=repo)
    commit_all(repo, "other")
    res = run_snap("eval", "HEAD", "--", sys.executable, "-c", "print(1)", cwd=repo, check=False)
    assert res.returncode == 3
    assert "HEAD: 2 checkpoints at this revision" in res.stderr and "-- PATH -- CMD" in res.stderr
    res = run_snap(
        "eval", "HEAD", "HEAD~1", "--no-note", "--", "models/other.safetensors",
        "--", sys.executable, "-c", LAST_LINE, "{}", "--", cwd=repo, check=False,
    )  # fmt: skip
    assert res.returncode == 3  # HEAD~1 has no other.safetensors; HEAD is evaluated
    rows = [line.split() for line in res.stdout.splitlines()]
    size = (repo / "models/other.safetensors").stat().st_size
    assert rows[1][0] == "HEAD" and rows[1][3:] == [str(size), "1", "--"]
    assert "error: HEAD~1: models/other.safetensors has no snapshot at HEAD~1" in res.stderr
    res = run_snap("eval", "--", "a", "b", "--", "c", cwd=repo, check=False)
    assert res.returncode == 2 and "one checkpoint at a time" in res.stderr


def test_eval_of_a_folder_snapshot_gets_the_folder(dvc_repo: Path) -> None:
    """A sharded folder is restored whole; the command sees the folder, named as committed."""
    folder = dvc_repo / "models" / "sharded"
    for i in (1, 2):
        write_safetensors(folder / f"part-{i}.safetensors", {"x": np.full(4, i, np.float32)})
    (folder / "config.json").write_text('{"layers": 2}')
    run_snap("save", "models/sharded", cwd=dvc_repo)
    commit_all(dvc_repo, "folder")
    listing = (
        "import json, os; p = os.environ['GITSNAP_CHECKPOINT']; "
        "print(json.dumps({'files': len(os.listdir(p)), 'is_dir': int(os.path.isdir(p)), "
        "'name': os.path.basename(p)}))"
    )
    res = api.eval_snapshots(["HEAD"], [sys.executable, "-c", listing], cwd=dvc_repo)
    [run] = res.runs
    assert run.ok, run.error
    assert run.path == "models/sharded"
    assert run.metrics == {"files": 3, "is_dir": 1, "name": "sharded"}
    assert _note(dvc_repo, run.commit or "")["metrics"] == run.metrics


def test_terminal_escapes_from_the_command_are_shown_escaped(history: dict[str, Any]) -> None:
    repo = history["repo"]
    code = 'print(\'{"\\\\u001b[31mred": "\\\\u001b]0;title\\\\u0007"}\')'
    res = run_snap("eval", "HEAD", "--no-note", "--", sys.executable, "-c", code, cwd=repo)
    assert "\x1b" not in res.stdout and "\x07" not in res.stdout
    assert "\\x1b[31mred" in res.stdout


# ---------------------------------------------------------------- metrics eval wrote read as eval


def _diff_metrics(repo: Path, *args: str) -> dict[str, dict[str, Any]]:
    """``git snap diff ARGS --json``'s metrics of its one checkpoint, by name."""
    doc = json.loads(run_snap("diff", *args, "--json", cwd=repo).stdout)
    [ck] = doc["checkpoints"]
    return {m["name"]: m for m in ck["metrics"]}


def _rows(text: str, name: str) -> list[str]:
    """The lines of a rendered table that start with the metric ``name``."""
    return [line for line in text.splitlines() if line.split()[:1] == [name]]


def test_metrics_eval_wrote_are_labelled_eval_in_every_view(
    history: dict[str, Any], tmp_path: Path
) -> None:
    repo = history["repo"]
    script = _evaluate_script(tmp_path)
    run_snap("eval", "HEAD~1", "HEAD", "--", sys.executable, script, tmp_path / "seen", cwd=repo)
    # A metric attached by hand, beside the evaluated ones, stays a note's.
    run_snap("metrics", "add", "--rev", "HEAD", "by_hand=1", cwd=repo)

    # diff, as a table and as Markdown: the source column says eval, or note for the other.
    table = run_snap("diff", "HEAD~1", "HEAD", cwd=repo).stdout
    assert _rows(table, "head_sum")[0].split()[1:] == ["32", "64", "+32", "+100%", "eval"]
    assert _rows(table, "eval.tensors")[0].split()[-1] == "eval"
    assert _rows(table, "by_hand")[0].split()[1:] == ["-", "1", "note"]
    md = run_snap("diff", "HEAD~1", "HEAD", "--format", "markdown", cwd=repo).stdout
    assert "| head\\_sum | 32 | 64 | +32 | +100% | eval |" in md
    assert "| by\\_hand | - | 1 |  |  | note |" in md

    # diff --json: origin says eval; source stays note, as before.
    for args in (("HEAD~1", "HEAD"), (f"HEAD~1:{CKPT}", f"HEAD:{CKPT}")):
        got = _diff_metrics(repo, *args)
        head_sum = got["head_sum"]
        assert (head_sum["source_before"], head_sum["source_after"]) == ("note", "note")
        assert (head_sum["origin_before"], head_sum["origin_after"]) == ("eval", "eval")
        assert head_sum["sources"] == {"before": {"note": 32.0}, "after": {"note": 64.0}}
        assert (got["by_hand"]["origin_before"], got["by_hand"]["origin_after"]) == (None, "note")
    # The work tree holds HEAD's snapshot: HEAD's note applies to it, eval's label with it.
    assert _diff_metrics(repo, "HEAD")["head_sum"]["origin_after"] == "eval"

    # log: the names eval wrote for each snapshot, in JSON, the terminal and the HTML page.
    logged = json.loads(run_snap("log", "--json", cwd=repo).stdout)
    by_commit = {e["commit"]: e for e in logged if e["commit"]}
    assert by_commit[history["c1"]]["evaluated"] == ["eval.tensors", "head_sum"]
    assert by_commit[history["c2"]]["evaluated"] == ["eval.tensors", "head_sum"]
    assert by_commit[history["c2"]]["note"]["metrics"]["by_hand"] == 1
    text = run_snap("log", cwd=repo).stdout.splitlines()
    assert "    metrics (eval):    eval.tensors=2  head_sum=64" in text
    assert "    metrics (note):    by_hand=1" in text
    page = run_snap("log", "--format", "html", cwd=repo).stdout
    assert "by_hand=1 (note), eval.tensors=2 (eval), head_sum=64 (eval)" in page

    # compare: each column's cell, in JSON and in the table.
    doc = json.loads(run_snap("compare", "HEAD~1", "HEAD", "--json", cwd=repo).stdout)
    [ck] = doc["checkpoints"]
    rows = {r["name"]: r["columns"] for r in ck["metrics"]}
    assert [(c["value"], c["source"], c["origin"]) for c in rows["head_sum"]] == [
        (32.0, "note", "eval"),
        (64.0, "note", "eval"),
    ]
    assert [c["origin"] for c in rows["by_hand"]] == [None, "note"]
    shown = run_snap("compare", "HEAD~1", "HEAD", cwd=repo).stdout
    assert _rows(shown, "head_sum")[0].split()[1:] == ["32", "(eval)", "64", "(eval)", "+32"]
    assert _rows(shown, "by_hand")[0].split()[1:] == ["-", "1", "(note)"]

    # metrics show
    assert "  metric head_sum = 64  (eval)\n" in run_snap("metrics", "show", cwd=repo).stdout
    [ck] = json.loads(run_snap("metrics", "show", "--json", cwd=repo).stdout)["checkpoints"]
    assert ck["metrics"]["head_sum"] == {
        "value": 64.0, "source": "note", "origin": "eval", "sources": {"note": 64.0}
    }  # fmt: skip
    assert ck["metrics"]["by_hand"]["origin"] == "note"


def test_a_metric_rewritten_by_hand_or_on_another_snapshot_is_not_eval(
    history: dict[str, Any], tmp_path: Path
) -> None:
    repo = history["repo"]
    script = _evaluate_script(tmp_path)
    run_snap("eval", "HEAD", "--", sys.executable, script, tmp_path / "seen", cwd=repo)
    # head_sum written again by hand: its value is no longer the evaluation's.
    run_snap("metrics", "add", "head_sum=0", cwd=repo)
    raw = _raw_note(repo, history["c2"]) or ""
    assert "metrics:\n    - eval.tensors\n    snapshot:" in raw  # off the eval record
    got = _diff_metrics(repo, "HEAD~1", "HEAD")
    assert (got["head_sum"]["after"], got["head_sum"]["origin_after"]) == (0, "note")
    assert got["eval.tensors"]["origin_after"] == "eval"
    # The same note on a commit of another snapshot: its record names HEAD's snapshot, not this
    # one's, so nothing there reads as eval.
    git("notes", "--ref=gitsnap", "copy", history["c2"], history["c1"], cwd=repo)
    logged = json.loads(run_snap("log", "--json", cwd=repo).stdout)
    by_commit = {e["commit"]: e for e in logged if e["commit"]}
    assert by_commit[history["c1"]]["note"]["metrics"]["eval.tensors"] == 2
    assert by_commit[history["c1"]]["evaluated"] == []
    assert by_commit[history["c2"]]["evaluated"] == ["eval.tensors"]
    got = _diff_metrics(repo, "HEAD~1", "HEAD")
    assert (got["eval.tensors"]["origin_before"], got["eval.tensors"]["origin_after"]) == (
        "note",
        "eval",
    )
    # Evaluating again makes head_sum the evaluation's once more.
    run_snap("eval", "HEAD", "--", sys.executable, script, tmp_path / "seen", cwd=repo)
    logged = json.loads(run_snap("log", "--json", cwd=repo).stdout)
    assert [e["evaluated"] for e in logged if e["commit"] == history["c2"]] == [
        ["eval.tensors", "head_sum"]
    ]
