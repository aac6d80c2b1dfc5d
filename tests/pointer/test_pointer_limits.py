"""The hard limits of gitsnap.pointer.limits, at the library level: each hostile shape is
refused with a PointerError / NoteError / PathError (never a crash), by both readers alike.
The same inputs through the real CLI, timed and memory-capped: test_pointer_hostile.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gitsnap import metrics, notes
from gitsnap.errors import PathError, PointerError
from gitsnap.pointer import Entry, Pointer, dumps, load_yaml, loads
from gitsnap.pointer import limits as L

BASE = Pointer(
    id="c" * 64,
    path="m.bin",
    format="raw",
    size=4,
    tensors=[],
    blobs=[Entry(0, 4, "a" * 64, role="file")],
)
TEXT = dumps(BASE)


def both_refuse(text: str, pattern: str) -> str:
    """loads and load_yaml raise the same PointerError, matching ``pattern``."""
    with pytest.raises(PointerError) as fast:
        loads(text, "p.snap")
    with pytest.raises(PointerError) as slow:
        load_yaml(text, "p.snap")
    assert str(fast.value) == str(slow.value)
    assert re.search(pattern, str(fast.value)), str(fast.value)
    assert fast.value.hint
    return str(fast.value)


def test_document_end_line_is_refused_by_both_readers_alike() -> None:
    # The line reader used to take a "..." line that PyYAML refuses.
    both_refuse(TEXT.replace("params: {}", "...\nparams: {}"), "malformed pointer YAML")
    both_refuse(TEXT.replace("params: {}", "---\nparams: {}"), "malformed pointer YAML")
    # A "..." closing the document is YAML (and both read it).
    assert dumps(loads(TEXT + "...\n")) == dumps(load_yaml(TEXT + "...\n")) == TEXT


def test_aliases_and_anchors_are_refused() -> None:
    both_refuse(TEXT.replace("metrics: {}", "metrics: &m {}\nx_alias: *m"), "alias or anchor")
    laughs = "metrics:\n  a: &a [1, 1, 1]\n  b: [*a, *a, *a]\n"
    both_refuse(TEXT.replace("metrics: {}\n", laughs), "alias or anchor")


@pytest.mark.parametrize("depth", [33, 1000, 50_000])
def test_nesting_deeper_than_the_limit_is_refused_before_the_c_loader(depth: int) -> None:
    deep = TEXT.replace("metrics: {}", "x_deep: " + "[" * depth + "]" * depth + "\nmetrics: {}")
    both_refuse(deep, "nested deeper than 32 levels")


def test_nesting_at_the_limit_is_read() -> None:
    ok = TEXT.replace("metrics: {}", "metrics: {}\nx_deep: " + "[" * 30 + "]" * 30)
    assert loads(ok).extra["x_deep"] == load_yaml(ok).extra["x_deep"]


def test_block_nesting_is_bounded_in_the_line_reader_too() -> None:
    block = "".join("  " * i + f"k{i}:\n" for i in range(1, 40))
    both_refuse(TEXT.replace("metrics: {}\n", "metadata:\n" + block + "metrics: {}\n"), "nested")


@pytest.mark.parametrize("key", ["1", "null", "true", "[a, b]", "2026-01-02"])
def test_non_string_keys_are_a_pointer_error_not_a_crash(key: str) -> None:
    text = TEXT.replace("metrics: {}", f"x_future:\n  {key}: v\nmetrics: {{}}")
    if key == "[a, b]":
        text = TEXT.replace("metrics: {}", "x_future: {? [a, b] : v}\nmetrics: {}")
    with pytest.raises(PointerError) as exc:
        loads(text, "p.snap")
    assert "not a string" in str(exc.value) or "unhashable" in str(exc.value)


def test_metrics_are_flat_names_to_scalars() -> None:
    both_refuse(TEXT.replace("metrics: {}", "metrics:\n  a:\n    b: 1"), "metrics 'a' is not")
    both_refuse(TEXT.replace("metrics: {}", "metrics:\n  a: [1, 2]"), "metrics 'a' is not")
    assert loads(TEXT.replace("metrics: {}", "metrics:\n  a.b: 1\n  c: x\n  d: null")).metrics == {
        "a.b": 1,
        "c": "x",
        "d": None,
    }


def test_entry_count_is_checked_before_the_lines_are_parsed() -> None:
    line = f"- {{offset: 4, size: 0, oid: {'b' * 64}, role: gap}}\n"
    many = TEXT.replace("created:", line * (L.MAX_ENTRIES + 1) + "created:")
    with pytest.raises(PointerError, match="more than 250000 entries"):
        loads(many, "p.snap")


def test_a_long_tensor_name_is_refused_by_both_readers() -> None:
    name = "n" * (L.MAX_NAME_CHARS + 1)
    t = Entry(4, 0, "b" * 64, name="x", dtype="F32", shape=(0,))
    text = dumps(Pointer(**{**BASE.__dict__, "tensors": [t]})).replace("name: x", f"name: {name}")
    message = both_refuse(text, "tensor name is longer than 4096")
    assert len(message) < 200  # the name is not echoed whole
    with pytest.raises(PointerError, match="tensor name longer"):
        t.name = name
        dumps(Pointer(**{**BASE.__dict__, "tensors": [t]}))  # never written either


def test_metadata_size_is_bounded() -> None:
    big = "x" * (L.MAX_METADATA_CHARS + 1)
    both_refuse(TEXT.replace("metrics: {}", f"metadata:\n  k: {big}\nmetrics: {{}}"), "metadata")


def test_sizes_past_a_file_offset_and_overlong_integers_are_refused() -> None:
    both_refuse(TEXT.replace("\nsize: 4\n", f"\nsize: {2**63}\n"), "larger than any file")
    both_refuse(TEXT.replace("\nsize: 4\n", "\nsize: 1" + "0" * 5000 + "\n"), "number too long")


def test_non_canonical_text_is_read_by_yaml_only_up_to_its_limit() -> None:
    filler = "x_pad: '" + "y" * L.MAX_YAML_BYTES + "'\n"
    with pytest.raises(PointerError, match="not in the form gitsnap writes"):
        load_yaml(TEXT + filler, "p.snap")


def test_whole_pointer_size_is_checked_first() -> None:
    with pytest.raises(PointerError, match="larger than"):
        loads(b"gitsnap: 1\n" + b" " * L.MAX_POINTER_BYTES, "p.snap")


# ---------------------------------------------------------------- notes and metrics files


def laughs() -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        (laughs(), "alias or anchor"),
        ("metrics: " + "[" * 50_000 + "]" * 50_000, "nested deeper"),
        ("{" + ",".join(f"m{i}: {i}" for i in range(L.MAX_METRICS + 1)) + "}", "more than 10000"),
        ("acc: '" + "x" * (L.MAX_VALUE_CHARS + 1) + "'", "longer than"),
        ("acc: 0.5\n" + "#" * L.MAX_NOTE_BYTES, "larger than"),
        ("a: " + "{b: " * 40 + "1" + "}" * 40, "nested deeper"),
    ],
    ids=["laughs", "deep-flow", "many", "long-value", "big", "deep-mapping"],
)
def test_a_hostile_note_is_a_note_error(text: str, pattern: str) -> None:
    with pytest.raises(notes.NoteError, match=pattern) as exc:
        notes.parse(text.encode(), "note on abc")
    assert exc.value.hint.startswith("fix or replace it")


def test_a_nested_note_still_flattens() -> None:
    note = notes.parse(b"metrics:\n  eval: {acc: 0.9, per_class: [0.5, {f1: 0.1}]}\n")
    assert note.metrics == {"eval.acc": 0.9, "eval.per_class.0": 0.5, "eval.per_class.1.f1": 0.1}


def test_metrics_files_are_bounded(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(laughs())
    with pytest.raises(PathError, match="alias or anchor"):
        metrics.read_file(tmp_path / "m.yaml")
    (tmp_path / "m.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(PathError, match="cannot parse"):
        metrics.read_file(tmp_path / "m.json")
    (tmp_path / "ok.json").write_text(json.dumps({"eval": {"acc": 0.9}, "n": 2**70}))
    assert metrics.read_file(tmp_path / "ok.json") == {"eval.acc": 0.9, "n": float(2**70)}
