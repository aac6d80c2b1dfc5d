"""The Mermaid charts of ``git snap diff --format markdown``, rendered by the real mermaid.

A matrix of real diffs (real git, real dvc, real safetensors checkpoints,
the installed ``git snap``): a dense fine-tune with and without ``--values``,
one changed tensor, 2,000 tensors (10 and 30 bars), a diff whose stats did
not move, and tensor names in other scripts, with quotes, markup, entities
and control characters. Every chart is parsed and rendered by the pinned
``mermaid`` package (tests/js/package-lock.json) in Debian's headless
Chromium, driven by ``playwright-core``; a parse error, a missing bar or two
axis labels drawn over each other fails the test.

It needs ``/usr/bin/chromium`` (``apt-get install chromium``) and
``npm ci`` in ``tests/js``; ``.ci/run`` installs both. A missing one fails
the test with the command to run; it never skips.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests import helpers
from tests.helpers import git

JS, CHROMIUM = helpers.JS, helpers.CHROMIUM


@pytest.fixture
def mermaid() -> Any:
    """``render(charts) -> results``: each chart through mermaid.parse and mermaid.render."""
    helpers.require_js("mermaid", "playwright-core", chromium=True)

    def render(charts: list[dict[str, str]], tmp: Path) -> list[dict[str, Any]]:
        src, out = tmp / "charts.json", tmp / "rendered.json"
        src.write_text(json.dumps(charts), encoding="utf-8")
        subprocess.run(
            ["node", JS / "render-mermaid.mjs", src, out],
            check=True,
            timeout=240,
            env={**os.environ, "CHROMIUM": CHROMIUM},
        )
        result: list[dict[str, Any]] = json.loads(out.read_text(encoding="utf-8"))
        return result

    return render


def _layers(rng: np.random.Generator, names: list[str], n: int) -> dict[str, np.ndarray]:
    return {name: rng.normal(0, 0.05, size=(n, n)).astype(np.float32) for name in names}


def _dense_update(
    state: dict[str, np.ndarray], rng: np.random.Generator, lr: float
) -> dict[str, np.ndarray]:
    """Adam's first steps move every element by about ``lr``: a sign-like dense update."""
    out = {}
    for i, (name, w) in enumerate(state.items()):
        step = lr * (1 + i % 5) * np.sign(rng.normal(size=w.shape)).astype(np.float32)
        out[name] = w + step
    return out


ODD = [
    'quote"d.weight',
    "angle<b>bold</b>.weight",
    "entity&#x202e;.weight",
    "hash#semi;colon.weight",
    "pipe|and`tick`.weight",
    "数据.层.0.weight",
    "emoji😀.layer.1.weight",
    "bidi\u202etxt.exe.layer.2.weight",
    "esc\x1b]0;pwned\x07.layer.3.weight",
    "a" * 60 + ".layer.4.weight",
    "brackets[0],(1).weight",
]


def _scenarios(repo: Path) -> dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
    rng = np.random.default_rng(0)
    dense = _layers(rng, [f"encoder.layer.{i}.{p}" for i in range(12) for p in ("q", "k")], 32)
    one = _layers(rng, [f"blocks.{i}.fc.weight" for i in range(6)], 16)
    one_after = {**one, "blocks.3.fc.weight": one["blocks.3.fc.weight"] * 1.01}
    many = _layers(rng, [f"model.layers.{i}.w{j}" for i in range(250) for j in range(8)], 4)
    odd = _layers(rng, ODD, 8)
    # Every element moves, but the mean and the spread stay: only --values sees it.
    # Eighths sum exactly in float32, so the shuffled stats are the same bits.
    still = {
        f"h.{i}.weight": (rng.integers(-8, 9, size=(16, 16)) / 8).astype(np.float32)
        for i in range(4)
    }
    still_after = {k: rng.permutation(v.ravel()).reshape(v.shape) for k, v in still.items()}
    return {
        "dense.safetensors": (dense, _dense_update(dense, rng, 1e-6)),
        "one.safetensors": (one, one_after),
        "many.safetensors": (many, _dense_update(many, rng, 1e-4)),
        "odd.safetensors": (odd, _dense_update(odd, rng, 1e-3)),
        "still.safetensors": (still, still_after),
    }


def _charts(markdown: str) -> list[str]:
    return re.findall(r"```mermaid\n(.*?)```", markdown, flags=re.S)


def test_every_chart_renders_in_mermaid(dvc_repo: Path, tmp_path: Path, mermaid: Any) -> None:
    helpers.run_snap("init")
    scenarios = _scenarios(dvc_repo)
    for name, (before, _) in scenarios.items():
        helpers.write_safetensors(dvc_repo / "models" / name, before)
    helpers.run_snap("save", *(f"models/{n}" for n in scenarios))
    git("add", "-A")
    git("commit", "-q", "-m", "base")
    for name, (_, after) in scenarios.items():
        helpers.write_safetensors(dvc_repo / "models" / name, after)
    helpers.run_snap("save", *(f"models/{n}" for n in scenarios))
    git("commit", "-q", "-am", "tuned")

    reports: dict[str, str] = {}
    for name in scenarios:
        for flags in ([], ["--values"], ["--top", "30"]):
            out = helpers.run_snap(
                "diff", "HEAD~1", "HEAD", "--format", "markdown", *flags, "--", f"models/{name}"
            )
            reports[f"{name} {' '.join(flags)}".strip()] = out.stdout

    charts = [
        {"name": f"{key} #{i}", "source": chart}
        for key, md in reports.items()
        for i, chart in enumerate(_charts(md))
    ]
    # The matrix must chart something in each case that has two layers to compare.
    charted = {c["name"].rsplit(" #", 1)[0] for c in charts}
    for key in ("dense.safetensors", "dense.safetensors --values", "many.safetensors --top 30"):
        assert key in charted, reports[key]
    assert "odd.safetensors" in charted and "still.safetensors --values" in charted
    # One changed tensor: one bar says nothing; the layer table says it all.
    assert "one.safetensors" not in charted
    # Stats that did not move: a sentence instead of a chart of zeros.
    assert "still.safetensors" not in charted
    assert "No layer moved by its stored mean and std" in reports["still.safetensors"]

    results = mermaid(charts, tmp_path)
    assert len(results) == len(charts)
    for chart, r in zip(charts, results, strict=True):
        assert r["ok"], f"{r['name']}: {r['error']}\n{chart['source']}"
        assert not r["pageErrors"], r
        values = re.search(r"bar \[(.*)\]", chart["source"])
        assert values is not None
        assert "e" not in values.group(1).lower()
        assert r["bars"] == len(values.group(1).split(",")), r
        assert r["overlaps"] == 0, f"{r['name']}: axis labels drawn over each other"
        assert "\x1b" not in chart["source"] and "\u202e" not in chart["source"]
    thirty = next(r for r in results if r["name"].startswith("many.safetensors --top 30"))
    assert thirty["bars"] == 30
    odd = next(r for r in results if r["name"].startswith("odd.safetensors #"))
    assert any("数据" in label for label in odd["labels"])
