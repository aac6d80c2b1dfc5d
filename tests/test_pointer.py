"""The pointer format: canonical round trip, validation, unknown keys (docs/pointer-format.md)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitsnap.errors import PointerError
from gitsnap.pointer import Entry, Pointer, dumps, layout_id, loads, round_stat

HEX = "0123456789abcdef"
oids = st.text(HEX, min_size=64, max_size=64)
names = st.text(min_size=1, max_size=40).filter(lambda s: "\x00" not in s)
stat_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64).map(round_stat),
    st.integers(min_value=0, max_value=2**40),
)
scalars = st.one_of(
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.booleans(),
)


@st.composite
def pointers(draw: st.DrawFn) -> Pointer:
    sizes = draw(st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=12))
    entries: list[Entry] = []
    offset = 0
    for i, size in enumerate(sizes):
        oid = draw(oids)
        if i == 0 or draw(st.booleans()):
            entries.append(
                Entry(
                    offset=offset, size=size, oid=oid, role=draw(st.sampled_from(["header", "gap"]))
                )
            )
        else:
            stats = draw(
                st.dictionaries(
                    st.sampled_from(["count", "nonfinite", "mean", "std", "min", "max", "l2"]),
                    stat_values,
                )
            )
            extra = draw(
                st.dictionaries(st.sampled_from(["zz_future", "note"]), scalars, max_size=1)
            )
            entries.append(
                Entry(
                    offset=offset,
                    size=size,
                    oid=oid,
                    name=draw(names),
                    dtype=draw(st.sampled_from(["F32", "BF16", "F8_E4M3", "I64", "BOOL"])),
                    shape=tuple(draw(st.lists(st.integers(0, 4096), max_size=4))),
                    stats=stats,
                    extra=extra,
                )
            )
        offset += size
    tensors = [e for e in entries if e.name is not None]
    blobs = [e for e in entries if e.name is None]
    return Pointer(
        id=draw(oids),
        parent=draw(st.one_of(st.none(), oids)),
        path=draw(st.sampled_from(["model.safetensors", "models/a b/ckpt.bin", "ünï/çødé.pt"])),
        format="safetensors",
        size=offset,
        tensors=tensors,
        blobs=blobs,
        created="2026-11-22T06:00:00Z",
        message=draw(st.text(max_size=60)),
        metrics=draw(st.dictionaries(st.text(min_size=1, max_size=10), scalars, max_size=4)),
        params=draw(st.dictionaries(st.text(min_size=1, max_size=10), scalars, max_size=4)),
        tool={"gitsnap": "0.1.0", "python": "3.11.7", "torch": None},
        extra=draw(st.dictionaries(st.sampled_from(["x_future", "zzz"]), scalars, max_size=2)),
    )


@settings(max_examples=150, deadline=None)
@given(pointers())
def test_dump_load_dump_is_identity(ptr: Pointer) -> None:
    text = dumps(ptr)
    assert text.startswith("gitsnap: 1\n")
    again = loads(text)
    assert dumps(again) == text
    assert [e.name for e in again.tensors] == [e.name for e in ptr.tensors]
    assert again.extra == ptr.extra
    for a, b in zip(again.tensors, ptr.tensors):
        assert a.extra == b.extra
        for key, value in b.stats.items():
            got = a.stats[key]
            assert (math.isnan(got) and math.isnan(value)) or got == value


def _ptr() -> Pointer:
    header = Entry(offset=0, size=100, oid="a" * 64, role="header")
    t = Entry(
        offset=100, size=40, oid="b" * 64, name="w", dtype="F32", shape=(10,), stats={"mean": 0.5}
    )
    return Pointer(
        id=layout_id([header, t], 140),
        path="m.safetensors",
        format="safetensors",
        size=140,
        tensors=[t],
        blobs=[header],
    )


def test_one_line_per_tensor_and_sorted_keys() -> None:
    text = dumps(_ptr())
    lines = text.splitlines()
    assert lines[0] == "gitsnap: 1"
    tensor_lines = [line for line in lines if line.startswith("- {name:")]
    assert tensor_lines == [
        f"- {{name: w, dtype: F32, shape: [10], offset: 100, size: 40, oid: {'b' * 64}, mean: 0.5}}"
    ]
    top_keys = [
        line.split(":")[0] for line in lines[1:] if line and not line.startswith((" ", "-"))
    ]
    assert top_keys == sorted(top_keys)


def test_unknown_keys_survive_a_rewrite() -> None:
    text = dumps(_ptr()).replace(
        "format: safetensors\n", "format: safetensors\nfuture_key:\n  a: 1\n"
    )
    text = text.replace("mean: 0.5}", "mean: 0.5, zeta: [1, 2]}")
    ptr = loads(text)
    assert ptr.extra == {"future_key": {"a": 1}}
    assert ptr.tensors[0].extra == {"zeta": [1, 2]}
    assert dumps(ptr) == text


def test_awkward_names_are_quoted_and_round_trip() -> None:
    ptr = _ptr()
    for name in [
        "yes",
        "a: b",
        "null",
        "- x",
        'quote"d',
        "tab\there",
        "ünïcode",
        "#hash",
        "[x]",
        "on",
    ]:
        ptr.tensors[0].name = name
        assert loads(dumps(ptr)).tensors[0].name == name


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t.replace("gitsnap: 1", "gitsnap: 2"), "newer than this gitsnap"),
        (lambda t: t.replace("gitsnap: 1\n", ""), "not a gitsnap pointer"),
        (lambda t: t + "tensors: [unclosed\n", "malformed pointer YAML"),
        (
            lambda t: t.replace("path: m.safetensors", "path: ../../etc/passwd"),
            "outside the repository",
        ),
        (lambda t: t.replace("path: m.safetensors", "path: /etc/passwd"), "outside the repository"),
        (lambda t: t.replace("size: 140\n", "size: 141\n"), "layout covers 140 bytes"),
        (lambda t: t.replace("offset: 100, size: 40", "offset: 90, size: 40"), "overlaps"),
        (lambda t: t.replace("hash: blake3", "hash: md5"), "unsupported object hash"),
        (lambda t: t.replace("oid: " + "b" * 64, "oid: xyz"), "not a 64-digit"),
        (lambda t: t.replace("shape: [10]", "shape: [-1]"), "bad shape"),
    ],
)
def test_defective_pointers_are_refused_with_a_reason(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PointerError, match=message) as info:
        loads(mutate(dumps(_ptr())), source="m.safetensors.snap")
    assert "m.safetensors.snap" in str(info.value)
    assert info.value.hint


def test_not_utf8_and_not_a_mapping() -> None:
    with pytest.raises(PointerError, match="not UTF-8"):
        loads(b"gitsnap: 1\n\xff\xfe")
    with pytest.raises(PointerError, match="not a gitsnap pointer"):
        loads("- just\n- a list\n")


def test_layout_id_depends_on_every_segment() -> None:
    ptr = _ptr()
    base = layout_id(ptr.segments(), ptr.size)
    ptr.tensors[0].oid = "c" * 64
    assert layout_id(ptr.segments(), ptr.size) != base


def test_round_stat_keeps_seven_digits() -> None:
    assert round_stat(1 / 3) == 0.3333333
    assert round_stat(123456789.0) == 123456800.0
    assert math.isnan(round_stat(float("nan")))


@settings(max_examples=100, deadline=None)
@given(pointers())
def test_line_scan_of_a_canonical_pointer_finds_its_objects(ptr: Pointer) -> None:
    from gitsnap.pointer import scan_oids

    assert scan_oids(dumps(ptr).encode()) == ptr.oids()
