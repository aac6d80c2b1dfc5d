"""Golden files for the diff renderers: terminal table, JSON, Markdown.

The result rendered here is built by hand (fixed ids, stats and value deltas)
so the goldens change only when a renderer does. Regenerate them after an
intended change with::

    GITSNAP_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/render/test_diff_render.py

and review the diff of ``tests/render/golden/`` like code.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitsnap import diff as d
from gitsnap import pointer
from gitsnap.environment import env_changes
from gitsnap.metrics import Condition, compare, evaluate
from gitsnap.pointer import Entry
from gitsnap.render import json as render_json
from gitsnap.render import markdown, table
from gitsnap.render.escape import NAME_LIMIT, escape

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("GITSNAP_UPDATE_GOLDEN") == "1"


def oid(n: int) -> str:
    return f"{n:x}".rjust(2, "0") * 32


def t(name: str, n: int, shape: tuple[int, ...], dtype: str = "F32", **stats: float) -> Entry:
    size = 4 if dtype == "F32" else 2
    for dim in shape:
        size *= dim
    return Entry(
        offset=0, size=size, oid=oid(n), name=name, dtype=dtype, shape=shape, stats=dict(stats)
    )


def sample(values: bool = True) -> d.DiffResult:
    before = [
        t("embed.weight", 1, (128, 32), mean=-0.00963, std=0.9933, l2=63.57),
        t("encoder.layer.0.attn.q.weight", 2, (32, 32), mean=0.001, std=0.1, l2=3.2),
        t("encoder.layer.0.attn.q.bias", 3, (32,), mean=0.0, std=0.05, l2=0.28),
        t("encoder.layer.1.mlp.weight", 4, (32, 64), mean=0.002, std=0.09, l2=4.1),
        t("encoder.layer.1.mlp.old_name", 5, (64,), mean=0.1, std=0.2, l2=1.8),
        t("encoder.layer.1.gone", 6, (8,), mean=1.0, std=0.0, l2=2.83),
        t("head.weight", 7, (10, 32), mean=0.003, std=0.1, l2=1.798),
        t("weird|name.weight", 8, (4,), mean=0.5, std=0.1, l2=1.01),
    ]
    after = [
        t("embed.weight", 1, (128, 32), mean=-0.00963, std=0.9933, l2=63.57),
        t("encoder.layer.0.attn.q.weight", 12, (32, 32), mean=0.0012, std=0.105, l2=3.36),
        t("encoder.layer.0.attn.q.bias", 3, (32,), mean=0.0, std=0.05, l2=0.28),
        t("encoder.layer.1.mlp.weight", 4, (64, 32), mean=0.002, std=0.09, l2=4.1),
        t("encoder.layer.1.mlp.new_name", 5, (64,), mean=0.1, std=0.2, l2=1.8),
        t("encoder.layer.1.fresh", 16, (8,), mean=0.0, std=1.0, l2=2.9),
        t("head.weight", 17, (10, 32), dtype="BF16", mean=0.0059, std=0.1086, l2=1.945),
        t("weird|name.weight", 18, (4,), mean=0.52, std=0.1, l2=1.05),
    ]
    changes = d.diff_tensors(before, after)
    if values:
        deltas = {
            "encoder.layer.0.attn.q.weight": d.ValueDelta(
                1024, 1000, 0, 0.41, 3.2, 3.36, 0.052, 0.9921
            ),
            "head.weight": d.ValueDelta(320, 320, 0, 0.874, 1.798, 1.945, 0.1442, 0.893408),
            "weird|name.weight": d.ValueDelta(4, 2, 1, 0.05, 1.01, 1.05, 0.04, None),
        }
        changes = [dataclasses.replace(c, values=deltas.get(c.name)) for c in changes]
    metrics = compare(
        {"accuracy": 0.91, "loss": 0.4, "tag": "base"},
        {"accuracy": 0.905},
        {"accuracy": 0.93, "loss": 0.35, "tag": "tuned"},
        {"f1": 0.88},
    )
    params = compare({"lr": 0.001, "epochs": 3}, {}, {"lr": 0.0005, "epochs": 3}, {})
    main = d.CheckpointDiff(
        path="models/model.safetensors",
        status="modified",
        before=d.SnapshotSide(
            "a" * 64, "safetensors", 90_000, 8, "baseline", "2026-01-01T00:00:00Z", False
        ),
        after=d.SnapshotSide(
            "b" * 64, "safetensors", 90_100, 8, "tuned", "2026-01-02T00:00:00Z", False
        ),
        tensors=changes,
        groups=d.group_changes(changes),
        summary=d.summarize(changes),
        metrics=metrics,
        params=params,
        env=env_changes(
            {
                "python": "3.11.7",
                "packages": {"numpy": "1.26.4", "torch": "2.4.1"},
                "installed": 185,
                "digest": "d" * 64,
            },
            {
                "python": "3.11.7",
                "packages": {"numpy": "2.1.0", "peft": "0.13.2", "torch": "2.4.1"},
                "installed": 187,
                "digest": "e" * 64,
            },
        ),
    )
    extra_changes = d.diff_tensors([], [t("proj.weight", 30, (16, 16), mean=0.0, std=0.1, l2=1.6)])
    extra = d.CheckpointDiff(
        path="models/adapter.safetensors",
        status="added",
        before=None,
        after=d.SnapshotSide("c" * 64, "safetensors", 1_100, 1, "", "2026-01-02T00:00:00Z", True),
        tensors=extra_changes,
        groups=d.group_changes(extra_changes),
        summary=d.summarize(extra_changes),
        metrics=[],
        params=[],
    )
    checkpoints = [extra, main]
    conditions = [Condition.parse(x) for x in ("accuracy < -0.01", "loss > 5%", "bleu < 0")]
    gate = evaluate(
        conditions, [(c.path, [*c.metrics, *c.params]) for c in checkpoints], allow_missing=True
    )
    return d.DiffResult("main", "HEAD", "1" * 40, "2" * 40, values, None, checkpoints, gate)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no golden {path}; run with GITSNAP_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), (
        f"{name} differs from its golden (GITSNAP_UPDATE_GOLDEN=1 to accept)"
    )


def test_statuses_of_the_sample() -> None:
    [_, main] = sample().checkpoints
    assert {c.name: c.status for c in main.tensors} == {
        "embed.weight": "unchanged",
        "encoder.layer.0.attn.q.bias": "unchanged",
        "encoder.layer.0.attn.q.weight": "modified",
        "encoder.layer.1.fresh": "added",
        "encoder.layer.1.gone": "removed",
        "encoder.layer.1.mlp.new_name": "renamed",
        "encoder.layer.1.mlp.weight": "reshaped",
        "head.weight": "modified",
        "weird|name.weight": "modified",
    }


def test_table_golden() -> None:
    check_golden("diff-table.txt", table.diff(sample(), top=10, color=False, width=120) + "\n")
    check_golden(
        "diff-table-structural.txt",
        table.diff(sample(values=False), top=2, all_tensors=True, width=100) + "\n",
    )


def _via_rich(layout: list[table._Line | table._Table | None], width: int) -> str:
    text = table._rich(layout, False, width)
    return "\n".join(table._TRAILING.sub(r"\1", line) for line in text.splitlines())


def _via_plain(layout: list[table._Line | table._Table | None], width: int) -> str | None:
    text = table._plain(layout, width)
    if text is None:
        return None
    return "\n".join(table._TRAILING.sub(r"\1", line) for line in text.splitlines())


@pytest.mark.parametrize("width", [40, 60, 80, 100, 120, 160, 240])
@pytest.mark.parametrize("values", [False, True])
@pytest.mark.parametrize("all_tensors", [False, True])
def test_table_without_rich_is_rich_character_for_character(
    width: int, values: bool, all_tensors: bool
) -> None:
    layout = table._layout(sample(values=values), 10, all_tensors)
    plain = _via_plain(layout, width)
    if width >= 160:
        assert plain is not None  # wide enough: no wrapping, so no rich
    if plain is not None:
        assert plain == _via_rich(layout, width)


_NARROW_CHARS = [*"abcXYZ019 .-_|/()%+", "‖", "Δ", "→", "·", "…"]
_OTHER_CHARS = ["\t", "é", "中", "\x1b", "\n"]  # only rich can measure these


@st.composite
def layouts(draw: st.DrawFn) -> list[table._Line | table._Table | None]:
    # Mostly views the plain layout handles; some that it must leave to rich.
    alphabet = _NARROW_CHARS + (_OTHER_CHARS if draw(st.integers(0, 4)) == 0 else [])
    cells = st.text(st.sampled_from(alphabet), max_size=14)
    n = draw(st.integers(1, 5))
    rows = draw(st.lists(st.lists(cells, min_size=n, max_size=n), max_size=4))
    return [
        table._Line(((draw(cells), "bold"), ("tail", "")), soft_wrap=draw(st.booleans())),
        None,
        table._Table(
            draw(st.lists(cells.filter(bool), min_size=n, max_size=n)),
            draw(st.integers(0, n)),
            rows,
            [""] * len(rows),
            draw(st.dictionaries(st.integers(0, n - 1), st.integers(0, 30), max_size=1)),
        ),
        table._Line((("done", "dim"),), soft_wrap=False),
    ]


@settings(max_examples=300, deadline=None)
@given(layouts(), st.integers(20, 140))
def test_plain_tables_and_lines_match_rich(
    layout: list[table._Line | table._Table | None], width: int
) -> None:
    plain = _via_plain(layout, width)
    if plain is not None:
        assert plain == _via_rich(layout, width)


def test_plain_view_needs_no_rich() -> None:
    code = (
        "import sys\n"
        "sys.path.insert(0, 'tests/render')\n"
        "from test_diff_render import sample\n"
        "from gitsnap.render import table\n"
        "table.diff(sample(), width=200)\n"
        "print('rich' in sys.modules)\n"
    )
    root = Path(__file__).parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_table_colours_only_when_asked() -> None:
    plain = table.diff(sample(), color=False)
    coloured = table.diff(sample(), color=True)
    assert "\x1b[" not in plain and "\x1b[" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain


def test_json_golden() -> None:
    text = render_json.dumps_data(render_json.diff_dict(sample())) + "\n"
    check_golden("diff.json", text)
    data = json.loads(text)
    for ck in data["checkpoints"]:
        for entry in ck["tensors"]:
            assert entry["name"] and entry["status"] in d.STATUSES


def folder_sample() -> d.DiffResult:
    """A folder checkpoint whose entries name their file, with a strided view."""
    files = (
        pointer.FileEntry("model-00001.safetensors", 4096, "safetensors"),
        pointer.FileEntry("model-00002.safetensors", 2048, "safetensors"),
    )
    base = dataclasses.replace(
        t("lm_head.weight", 40, (8, 4), l2=2.0), file="model-00002.safetensors"
    )
    moved = dataclasses.replace(base, oid=oid(41), stats={"l2": 2.2})
    view = Entry(
        offset=8,
        size=64,
        oid=oid(42),
        name="lm_head.weight_t",
        dtype="F32",
        shape=(4, 8),
        stats={"l2": 2.0},
        file="model-00002.safetensors",
        view=True,
        stride=(1, 4),
    )
    moved_view = dataclasses.replace(view, oid=oid(43), stats={"l2": 2.2})
    changes = d.diff_tensors([base, view], [moved, moved_view])
    side = d.SnapshotSide("d" * 64, "folder", 6144, 2, "", "2026-01-01T00:00:00Z", False, files)
    ck = d.CheckpointDiff(
        path="models/sharded",
        status="modified",
        before=side,
        after=dataclasses.replace(side, snapshot_id="e" * 64),
        tensors=changes,
        groups=d.group_changes(changes),
        summary=d.summarize(changes),
        metrics=[],
        params=[],
    )
    return d.DiffResult("HEAD~1", "HEAD", "3" * 40, "4" * 40, False, None, [ck], [])


def test_json_golden_of_a_folder_with_a_view() -> None:
    text = render_json.dumps_diff(render_json.diff_dict(folder_sample())) + "\n"
    check_golden("diff-folder.json", text)
    ck = json.loads(text)["checkpoints"][0]
    assert [f["path"] for f in ck["after"]["files"]] == [
        "model-00001.safetensors",
        "model-00002.safetensors",
    ]
    view = next(x for x in ck["tensors"] if x["name"] == "lm_head.weight_t")
    assert view["after"]["view"] is True and view["after"]["stride"] == [1, 4]
    assert view["after"]["file"] == "model-00002.safetensors"
    plain = next(x for x in ck["tensors"] if x["name"] == "lm_head.weight")
    assert "view" not in plain["after"] and "stride" not in plain["after"]


def test_markdown_golden() -> None:
    check_golden("diff.md", markdown.diff(sample(), top=10))
    check_golden("diff-structural.md", markdown.diff(sample(values=False), top=3))


def test_markdown_escapes_table_cells() -> None:
    md = markdown.diff(sample())
    assert "`weird\\|name.weight`" in md
    blocks: list[list[int]] = [[]]
    for line in md.splitlines():
        if line.startswith("|"):
            blocks[-1].append(len(re.findall(r"(?<!\\)\|", line)))
        elif blocks[-1]:
            blocks.append([])
    assert all(len(set(b)) == 1 for b in blocks if b)  # every row has its table's column count


def test_markdown_stays_under_githubs_comment_limit() -> None:
    many_before = [t(f"layers.{i}.w", 1000 + i, (8, 8), l2=1.0) for i in range(4000)]
    many_after = [t(f"layers.{i}.w", 9000 + i, (8, 8), l2=1.1) for i in range(4000)]
    changes = d.diff_tensors(many_before, many_after)
    ck = d.CheckpointDiff(
        "big.safetensors",
        "modified",
        None,
        None,
        changes,
        d.group_changes(changes),
        d.summarize(changes),
        [],
        [],
    )
    md = markdown.diff(d.DiffResult("a", "b", None, None, False, None, [ck]), top=10)
    assert len(md) < 65_536
    assert "more changed tensors not shown (comment size limit)" in md
    assert md.rstrip().endswith("</details>")


@pytest.mark.parametrize("renderer", ["table", "markdown", "json"])
def test_empty_results_render(renderer: str) -> None:
    empty = d.DiffResult("HEAD", "working tree", None, None, False, None, [])
    out = {
        "table": lambda: table.diff(empty),
        "markdown": lambda: markdown.diff(empty),
        "json": lambda: render_json.dumps_data(render_json.diff_dict(empty)),
    }[renderer]()
    assert out


# ---------------------------------------------------------------- hostile text, plain logs


def test_escape_shows_control_format_and_bidi_characters() -> None:
    assert escape("a\x1b[2Jb\rc\x07d\x00e\x7f\x9bf") == "a\\x1b[2Jb\\rc\\x07d\\x00e\\x7f\\x9bf"
    assert escape("x\u202ey\u2066z\u200bw\ufeff") == "x\\u202ey\\u2066z\\u200bw\\ufeff"
    assert escape("line\nnext\ttab\u2028") == "line\\nnext\\ttab\\u2028"
    assert escape("\udc80") == "\\udc80"  # a file name git could not decode
    # Letters of every script, symbols, emoji and spaces pass unchanged.
    for ok in ("数据.层.weight", "café", "emoji😀", "a b\u00a0c", "‖ΔW‖ → ·"):
        assert escape(ok) == ok
    assert escape(escape("\x1b\u202e")) == escape("\x1b\u202e")  # idempotent
    cut = escape("n" * 10_000, NAME_LIMIT)
    assert cut.startswith("n" * NAME_LIMIT) and cut.endswith("… (10,000 characters)")
    assert len(cut) < NAME_LIMIT + 30


HOSTILE = {
    "esc": "layer.0.\x1b[2J\x1b[1;1Hcleared.weight",
    "osc": "layer.1.\x1b]0;pwned\x07title.weight",
    "cr": "layer.2.ok\rFAKE.weight",
    "bidi": "layer.3.\u202egnp.exe.weight",
    "bel": "layer.4.\x07bell.weight",
}
_RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def test_hostile_strings_never_reach_the_terminal_raw(dvc_repo: Path) -> None:
    """Names, metadata, messages and metrics full of escapes, through every view, piped."""
    import numpy as np

    from tests import helpers

    helpers.run_snap("init")
    path = dvc_repo / "models" / "m.safetensors"
    arrays = {name: np.full((4,), i, dtype=np.float32) for i, name in enumerate(HOSTILE.values())}
    meta = {"\x1b]0;meta\x07": "\x1b[31mred\u202e"}
    helpers.write_safetensors(path, arrays, metadata=meta)
    msg = "base \x1b]0;title\x07 \u202eevil\rFAKE"
    helpers.run_snap("save", "models/m.safetensors", "-m", msg, "-M", "acc\x1b[5m=0.5")
    helpers.git("add", "-A")
    helpers.git("commit", "-q", "-m", "base")
    arrays = {k: v + 1 for k, v in arrays.items()}
    helpers.write_safetensors(path, arrays, metadata=meta)
    helpers.run_snap("save", "models/m.safetensors", "-m", msg, "-M", "acc\x1b[5m=0.7")
    helpers.git("commit", "-q", "-am", "tuned \x1b[2J")
    helpers.run_snap("metrics", "add", "f1\x1b]0;x\x07=0.9")

    views = {
        "show": helpers.run_snap("show", "models/m.safetensors").stdout,
        "log": helpers.run_snap("log", "models/m.safetensors").stdout,
        "diff": helpers.run_snap("diff", "HEAD~1", "HEAD", "--all").stdout,
        "values": helpers.run_snap("diff", "HEAD~1", "HEAD", "--values").stdout,
        "markdown": helpers.run_snap("diff", "HEAD~1", "HEAD", "--format", "markdown").stdout,
        "metrics": helpers.run_snap("metrics", "show").stdout,
        "textconv": helpers.git("diff", "HEAD~1", "HEAD", "--", "models/m.safetensors.snap").stdout,
    }
    for view, out in views.items():
        assert not _RAW.findall(out), f"{view} printed a raw control character:\n{out!r}"
    for view in ("show", "diff", "markdown", "textconv"):
        assert "\\x1b]0;pwned\\x07title" in views[view], views[view]
        assert "\\u202egnp.exe" in views[view] and "ok\\rFAKE" in views[view]
    assert "\\x1b]0;title\\x07 \\u202eevil\\rFAKE" in views["log"]
    assert "acc\\x1b[5m" in views["show"] and "f1\\x1b]0;x\\x07" in views["metrics"]
    assert "message: base \\x1b]0;title" in views["textconv"]
    # JSON keeps every string exact; json.dumps writes the control characters as \u00XX.
    raw = helpers.run_snap("diff", "HEAD~1", "HEAD", "--format", "json").stdout
    assert not _RAW.findall(raw.replace("\n", ""))
    names = {t["name"] for t in json.loads(raw)["checkpoints"][0]["tensors"]}
    assert names == set(HOSTILE.values())


def _named(name: str) -> d.DiffResult:
    before = [t(name, 1, (4,), mean=0.0, std=1.0, l2=2.0), t("b.w", 2, (4,), l2=1.0)]
    after = [t(name, 3, (4,), mean=0.1, std=1.1, l2=2.2), t("b.w", 2, (4,), l2=1.0)]
    changes = d.diff_tensors(before, after)
    ck = d.CheckpointDiff(
        "m.safetensors", "modified", None, None, changes, d.group_changes(changes),
        d.summarize(changes), [], [],
    )  # fmt: skip
    return d.DiffResult("a", "b", None, None, False, None, [ck])


def test_an_8_mib_tensor_name_renders_in_bounded_time() -> None:
    import time

    name = "x" * (8 << 20) + ".weight"
    r = _named(name)
    renders: list[Callable[[], str]] = [
        lambda: table.diff(r, width=120),  # a terminal: rich wraps
        lambda: table.diff(r, width=None),  # a log: full width
        lambda: table.diff(r, width=120, color=True),
        lambda: markdown.diff(r),
    ]
    for render in renders:
        start = time.perf_counter()
        out = render()
        assert time.perf_counter() - start < 5
        assert "… (8,388,615 characters)" in out and len(out) < 20_000
    # JSON keeps the name whole.
    data = json.loads(render_json.dumps_diff(render_json.diff_dict(r)))
    assert name in {x["name"] for x in data["checkpoints"][0]["tensors"]}


def test_piped_tables_are_full_width_whatever_columns_says(dvc_repo: Path, tmp_path: Path) -> None:
    import numpy as np

    from tests import helpers

    long = "encoder.layers.11.self_attention.query_key_value.lora_A.weight"
    assert len(long) >= 60
    helpers.run_snap("init")
    path = dvc_repo / "m.safetensors"
    helpers.write_safetensors(
        path, {long: np.ones((8, 8), np.float32), "b": np.ones(2, np.float32)}
    )
    helpers.run_snap("save", "m.safetensors")
    helpers.git("add", "-A")
    helpers.git("commit", "-q", "-m", "base")
    helpers.write_safetensors(
        path, {long: np.ones((8, 8), np.float32) * 2, "b": np.ones(2, np.float32)}
    )
    helpers.run_snap("save", "m.safetensors")
    helpers.git("commit", "-q", "-am", "tuned")
    log = tmp_path / "diff.log"
    with log.open("w") as f:  # a file, as a CI log: not a terminal
        subprocess.run(
            ["git", "snap", "diff", "HEAD~1", "HEAD"],
            stdout=f, check=True, env={**os.environ, "COLUMNS": "40"},
        )  # fmt: skip
    lines = log.read_text(encoding="utf-8").splitlines()
    [row] = [line for line in lines if long in line]
    assert row.split()[:2] == ["modified", long] and "%" in row  # one line, nothing cut
    assert max(map(len, lines)) > 80  # laid out past COLUMNS and the old 120-column wrap
    assert not any("\x1b" in line for line in lines)
