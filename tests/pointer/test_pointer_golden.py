"""Pointers written by gitsnap 0.1.0 (before the pointer package) still read and re-dump
byte for byte, through both readers: the v1 format is frozen (DESIGN D13).

``golden/*.snap`` came from real ``git snap save`` runs (a safetensors file with
metrics, params and a unicode tensor name; a sharded folder with ``files:``; a
torch file with views and strides; a raw file under a unicode path) and one
hand-built pointer with every odd corner (quoted names, escapes, NaN/inf stats,
unknown keys at top level and in entries).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gitsnap.pointer import dumps, load_yaml, loads, scan_oids
from gitsnap.pointer.fast import load as fast_load

GOLDEN = sorted((Path(__file__).parent / "golden").glob("*.snap"))


def test_there_are_golden_pointers() -> None:
    assert {p.name for p in GOLDEN} >= {
        "file-metrics-unicode.snap",
        "folder.snap",
        "torch-views.snap",
        "raw-unicode-path.snap",
        "hand-written-unknown-keys.snap",
    }


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
def test_golden_pointer_re_dumps_byte_identically(path: Path) -> None:
    raw = path.read_bytes()
    text = raw.decode()
    ptr = loads(raw, path.name)
    assert dumps(ptr).encode() == raw
    assert dumps(load_yaml(text, path.name)).encode() == raw
    assert scan_oids(raw) == ptr.oids()
    if "unknown-keys" not in path.name:  # unknown keys in entries are left to YAML
        assert dumps(fast_load(text, path.name, {})).encode() == raw


def test_golden_features_are_there() -> None:
    by_name = {p.stem: loads(p.read_bytes(), p.name) for p in GOLDEN}
    assert by_name["folder"].files and all(e.file for e in by_name["folder"].tensors)
    views = [t for t in by_name["torch-views"].tensors if t.view]
    assert views and any(t.stride == (1, 4) for t in views)
    assert by_name["file-metrics-unicode"].metrics == {"acc": 0.914, "eval.loss": 0.0003}
    assert "ünïcode.名前" in {t.name for t in by_name["file-metrics-unicode"].tensors}
    assert by_name["raw-unicode-path"].path == "çødé dir/blob bin"
    odd = by_name["hand-written-unknown-keys"]
    assert odd.extra == {"x_future": {"nested": [1, "two"]}, "zzz": "later"}
    assert odd.tensors[0].extra == {"zz_future": [1, 2]}
