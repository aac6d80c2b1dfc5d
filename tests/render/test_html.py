"""The self-contained HTML reports, loaded in headless Chromium as a reviewer opens them.

Real repositories, real dvc, the installed ``git snap``: ``diff --format html``
(stats only, and ``--values``, with hostile tensor names, metrics coloured by the
direction ``.gitsnap.yaml`` declares) and ``log PATH --format html``. Debian's
Chromium, driven by the pinned ``playwright-core`` (tests/js), loads each page
from a file: no console error, no uncaught exception, not one request besides
the page itself, the charts drawn, and a click on a header of the tensor table
sorts it. Screenshots are written to ``tests/artifacts/`` (ignored by git) for a
person to look at; their paths are printed.

A missing Chromium or ``npm ci`` fails the test with the command to run
(``bash .ci/run`` installs both); it never skips.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gitsnap import api
from gitsnap.pickle_policy import SecurityFinding
from gitsnap.render import html as render_html
from tests import helpers
from tests.helpers import git

JS = helpers.JS
ARTIFACTS = Path(__file__).parents[1] / "artifacts"
CHROMIUM = helpers.CHROMIUM
CKPT = "models/model.safetensors"

HOSTILE = [
    "angle<b>bold</b>.weight",
    "entity&#x202e;.weight",
    "esc\x1b]0;pwned\x07.layer.3.weight",
    "bidi\u202etxt.exe.layer.2.weight",
    "quote\"d'.weight",
    "数据.层.0.weight",
]


def _browser() -> Any:
    helpers.require_js("playwright-core", chromium=True)

    def load(pages: list[dict[str, Any]], tmp: Path) -> dict[str, dict[str, Any]]:
        src, out = tmp / "pages.json", tmp / "loaded.json"
        src.write_text(json.dumps(pages), encoding="utf-8")
        subprocess.run(
            ["node", JS / "render-html.mjs", src, out],
            check=True,
            timeout=240,
            env={**os.environ, "CHROMIUM": CHROMIUM},
        )
        return {r["name"]: r for r in json.loads(out.read_text(encoding="utf-8"))}

    return load


def _state(rng: np.random.Generator) -> dict[str, np.ndarray]:
    names = [f"encoder.layer.{i}.{p}" for i in range(8) for p in ("q.weight", "k.weight", "bias")]
    return {n: rng.normal(0, 0.05, size=(24, 24)).astype(np.float32) for n in names + HOSTILE}


def _tuned(state: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    out = {}
    for i, (name, w) in enumerate(state.items()):
        if i % 7 == 6:
            out[name] = w  # some tensors stay: counted, not listed
            continue
        out[name] = w + (1e-3 * (1 + i % 5) * rng.normal(size=w.shape)).astype(np.float32)
    return out


@pytest.fixture
def reviewed(dvc_repo: Path) -> Path:
    """Four snapshots of one checkpoint with metrics; the last one is a dense fine-tune."""
    helpers.run_snap("init")
    (dvc_repo / ".gitsnap.yaml").write_text(
        "metrics:\n  accuracy: {better: higher}\n  loss: {better: lower}\n", encoding="utf-8"
    )
    rng = np.random.default_rng(0)
    state = _state(rng)
    history = [("0.81", "0.62", "1e-3"), ("0.86", "0.51", "1e-3"), ("0.9", "0.44", "5e-4")]
    history.append(("0.89", "0.41", "5e-4"))
    for i, (acc, loss, lr) in enumerate(history):
        state = state if i == 0 else _tuned(state, rng)
        helpers.write_safetensors(dvc_repo / CKPT, state)
        helpers.run_snap(
            "save", CKPT, "-m", f"epoch {i} <script>", "-M", f"accuracy={acc}",
            "-M", f"loss={loss}", "-M", "note=text\x1b[31m", "-P", f"lr={lr}",
        )  # fmt: skip
        git("add", "-A")
        git("commit", "-q", "-m", f"epoch {i}")
    return dvc_repo


def _write(name: str, text: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.write_text(text, encoding="utf-8")
    return path


def test_html_reports_load_in_chromium(reviewed: Path, tmp_path: Path) -> None:
    load = _browser()
    stats = helpers.run_snap(
        "diff", "HEAD~1", "HEAD", "--format", "html", "--fail-on", "accuracy regresses"
        , check=False
    )  # fmt: skip
    assert stats.returncode == 1  # accuracy 0.9 -> 0.89: the gate failed, the page is written
    values = helpers.run_snap("diff", "HEAD~3", "HEAD", "--values", "--format", "html").stdout
    log = helpers.run_snap("log", CKPT, "--format", "html").stdout
    pages = {"diff": stats.stdout, "values": values, "log": log}
    for name, text in pages.items():
        assert text.startswith("<!doctype html>"), name
        # Self-contained: nothing to fetch, and a policy that forbids fetching anything.
        assert "default-src 'none'" in text
        for needle in ("http://", "https://", "src=", "<link", "@import", "url("):
            assert needle not in text.replace('xmlns="http://www.w3.org/2000/svg"', ""), (
                name,
                needle,
            )
        # Escaped: no control or bidi character, no markup from a name, message or metric.
        assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text
        assert "<b>" not in text and "<script> " not in text and "epoch 1 <script>" not in text
    assert "angle&lt;b&gt;bold&lt;/b&gt;.weight" in stats.stdout
    assert "esc\\x1b]0,pwned" in stats.stdout or "esc\\x1b]0;pwned\\x07" in stats.stdout
    assert "entity&amp;#x202e;.weight" in stats.stdout
    assert '<tr class="worse"><td>accuracy</td>' in stats.stdout
    assert '<tr class="better"><td>loss</td>' in stats.stdout

    paths = {name: _write(f"{name}.html", text) for name, text in pages.items()}
    shots = {name: ARTIFACTS / f"{name}.png" for name in pages}
    specs = [
        {
            "name": name,
            "path": str(paths[name]),
            "screenshot": str(shots[name]),
            "sort": {"table": "table.sortable", "column": 3} if name != "log" else None,
        }
        for name in pages
    ]
    loaded = load(specs, tmp_path)
    for name, r in loaded.items():
        print(f"screenshot of the {name} page: {shots[name]}")
        assert not r["consoleErrors"], r["consoleErrors"]
        assert not r["pageErrors"], r["pageErrors"]
        assert not r["requests"], r["requests"]
        assert shots[name].stat().st_size > 10_000
    d = loaded["diff"]
    assert d["svgs"] == 1 and d["bars"] >= 8  # the layer chart, one bar per moved layer
    assert "Gate failed" in d["text"] and "angle<b>bold</b>.weight" in d["text"]
    v = loaded["values"]
    assert v["svgs"] == 1 and v["bars"] >= 8
    # A click on "‖ΔW‖/‖W‖" sorts descending by the exact value, a second click ascending.
    for r in (d, v):
        s = r["sorted"]
        keys = s["afterKeys"]
        assert keys == sorted(keys, reverse=True) and len(set(keys)) > 3
        assert s["again"] == list(reversed(s["after"])) or s["again"] != s["after"]
        assert sorted(s["before"]) == sorted(s["after"]) == sorted(s["again"])
        assert s["ariaSort"] == "ascending"
    lg = loaded["log"]
    # One line chart per numeric metric (accuracy, loss); "note" is text: no chart.
    assert lg["svgs"] == 2 and lg["lines"] == 2
    assert "epoch 3 <script>" in lg["text"]


def test_log_chart_runs_oldest_to_newest(reviewed: Path) -> None:
    page = render_html.render_log_html(api.log(CKPT))
    acc = page.split("<title>accuracy</title>", 1)[1].split("</svg>", 1)[0]
    values = [float(t.split("</title>")[0].split(": ")[1]) for t in acc.split("<title>")[1:]]
    assert values == [0.81, 0.86, 0.9, 0.89]


def test_the_security_section_renders_what_the_newer_side_would_run(reviewed: Path) -> None:
    r = api.diff("HEAD~1", "HEAD")
    assert 'class="security"' not in render_html.diff(r)
    finding = SecurityFinding(CKPT, "posix.system <x>\x1b[2J", "unsafe")
    ck = dataclasses.replace(r.checkpoints[0], security=[finding])
    page = render_html.diff(dataclasses.replace(r, checkpoints=[ck]))
    security = page.split('<section class="security">', 1)[1].split("</section>", 1)[0]
    assert "runs posix.system &lt;x&gt;\\x1b[2J when loaded with torch.load" in security


def test_the_compare_page_loads_in_chromium(reviewed: Path, tmp_path: Path) -> None:
    load = _browser()
    helpers.run_snap("metrics", "add", "--rev", "HEAD~2", "accuracy=0.95")
    page = helpers.run_snap(
        "compare", "HEAD~3", "HEAD~2", "HEAD~1", "HEAD", "--metric", "accuracy", "--values",
        "--format", "html",
    ).stdout  # fmt: skip
    assert page.startswith("<!doctype html>") and "default-src 'none'" in page
    assert "\x1b" not in page and "epoch 1 <script>" not in page
    assert "epoch 1 &lt;script&gt;" in page and "text\\x1b[31m" in page
    path = _write("compare.html", page)
    shot = ARTIFACTS / "compare.png"
    spec = {"name": "compare", "path": str(path), "screenshot": str(shot), "sort": None}
    r = load([spec], tmp_path)["compare"]
    print(f"screenshot of the compare page: {shot}")
    assert not r["consoleErrors"] and not r["pageErrors"] and not r["requests"], r
    assert shot.stat().st_size > 10_000
    # accuracy and loss (lr is a param, note is text), and how far each snapshot moved
    assert r["svgs"] == 3 and r["bars"] == 4 + 4 + 3 and r["tables"] == 1
    assert "HEAD~2" in r["text"] and "(best)" in r["text"] and "0.95 (note)" in r["text"]
