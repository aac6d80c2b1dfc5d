"""The pointer format: canonical round trip, validation, unknown keys (docs/pointer-format.md)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

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
    for a, b in zip(again.tensors, ptr.tensors, strict=True):
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


@pytest.mark.parametrize("value", [":0", "a,b", "[x]", "{y}", "k: v", "- z", "#c", "&a", "*b"])
def test_unknown_entry_keys_whose_values_need_flow_quoting_round_trip(value: str) -> None:
    """An entry's unknown key is written inside a flow mapping: a plain ``:0`` would not read."""
    import dataclasses

    ptr = _ptr()
    t = dataclasses.replace(ptr.tensors[0], extra={"zz_future": value})
    ptr = dataclasses.replace(ptr, tensors=[t])
    text = dumps(ptr)
    back = loads(text)
    assert back.tensors[0].extra == {"zz_future": value}
    assert dumps(back) == text


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
def test_defective_pointers_are_refused_with_a_reason(
    mutate: Callable[[str], str], message: str
) -> None:
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


# ---------------------------------------------------------------- fast reader (pointer.fast)
#
# pointer.loads reads canonical text without YAML. These tests hold it to
# "same result or no result": on generated pointers, and on hand edits of
# them, it gives what PyYAML gives (pointer.load_yaml), error for error.

from gitsnap import pointer  # noqa: E402 - the section's own imports
from gitsnap.errors import NotCanonical  # noqa: E402
from gitsnap.pointer import fast as fast_reader  # noqa: E402
from gitsnap.pointer import write  # noqa: E402

odd_names = st.one_of(
    st.from_regex(r"[a-z_][a-z0-9_.]{0,12}", fullmatch=True),  # plain
    st.from_regex(r"[0-9][a-z0-9_.]{0,8}", fullmatch=True),  # torch Sequential: "0.weight"
    st.sampled_from(["yes", "No", "null", "on", "a:", "a:b", "x, y", '"q"', "back\\slash"]),
    st.sampled_from(["tab\there", "new\nline", "ünï", "中文", "\u2028", "\x85", "\ufeff", "\x01"]),
    names,
)
header_leaves = st.one_of(
    scalars,
    st.none(),
    st.sampled_from(["0.1.0", "2.13.0+cpu", "2026-01-02", "0x1f", "012", "1_000", "1:30"]),
    st.sampled_from(["1e5", ".5", "-.inf", "y", "~", "a b", "a  b", " lead", "it's", "#x"]),
    st.floats(allow_nan=True, allow_infinity=True),
)
header_values = st.recursive(
    header_leaves,
    lambda inner: st.dictionaries(st.text(min_size=1, max_size=6), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def canonical_pointers(draw: st.DrawFn) -> Pointer:
    """Pointers with every v1 feature: folders, views with strides, blobs, odd names and stats."""
    folder = draw(st.booleans())
    files = (
        [
            pointer.FileEntry(
                p,
                0,
                draw(st.sampled_from(["", "safetensors", "raw"])),
                executable=draw(st.booleans()),
            )
            for p in sorted(
                draw(
                    st.sets(
                        st.sampled_from(["a.safetensors", "b c.bin", "sub/x.pt", "ü/y", "0.bin"]),
                        min_size=1,
                        max_size=3,
                    )
                )
            )
        ]
        if folder
        else []
    )
    tensors: list[Entry] = []
    blobs: list[Entry] = []
    for f in files or [None]:
        pos = 0
        for i in range(draw(st.integers(1, 5))):
            size = draw(st.integers(0, 10**6))
            if i == 0 or draw(st.integers(0, 3)) == 0:
                role = draw(st.sampled_from(["header", "gap", "file", "two words", "null"]))
                blobs.append(Entry(pos, size, draw(oids), role=role, file=f and f.path))
            else:
                stats = draw(
                    st.dictionaries(
                        st.sampled_from(["count", "nonfinite", "mean", "std", "min", "max", "l2"]),
                        stat_values,
                    )
                )
                shape = tuple(draw(st.lists(st.integers(0, 4096), max_size=4)))
                tensors.append(
                    Entry(
                        pos,
                        size,
                        draw(st.one_of(oids, st.text("0123456789", min_size=64, max_size=64))),
                        name=draw(odd_names),
                        dtype=draw(st.sampled_from(["F32", "BF16", "F8_E4M3", "I64", "odd type"])),
                        shape=shape,
                        stats=stats,
                        file=f and f.path,
                    )
                )
            pos += size
        if f is not None:
            f.size = pos
        if draw(st.booleans()) and pos > 0:
            shape = tuple(draw(st.lists(st.integers(1, 8), min_size=1, max_size=3)))
            strided = draw(st.booleans())
            tensors.append(
                Entry(
                    0,
                    pos,
                    draw(oids),
                    name=draw(odd_names),
                    dtype="F32",
                    shape=shape,
                    view=True,
                    stride=tuple(reversed(shape)) if strided else None,
                    file=f and f.path,
                )
            )
    size = sum(f.size for f in files) if files else pos
    return Pointer(
        id=draw(oids),
        parent=draw(st.one_of(st.none(), oids)),
        path=draw(st.sampled_from(["model.safetensors", "models/a b/ckpt.bin", "ünï/çødé.pt"])),
        format=draw(st.sampled_from(["safetensors", "folder", "torch-zip"])),
        size=size,
        tensors=tensors,
        blobs=blobs,
        created=draw(st.sampled_from(["2026-11-22T06:00:00Z", ""])),
        message=draw(st.one_of(st.text(max_size=30), st.sampled_from(["fine tune", "a\nb"]))),
        metrics=draw(st.dictionaries(st.text(min_size=1, max_size=8), header_leaves, max_size=4)),
        params=draw(st.dictionaries(st.text(min_size=1, max_size=8), scalars, max_size=3)),
        tool={
            "gitsnap": "0.1.0",
            "python": "3.11.7",
            "torch": draw(st.sampled_from([None, "2.1"])),
        },
        # Absent (older pointers) or as save records it; versions YAML would read as numbers.
        env=draw(
            st.one_of(
                st.just({}),
                st.fixed_dictionaries(
                    {
                        "python": st.sampled_from(["3.11.7", "3.12"]),
                        "packages": st.dictionaries(
                            st.sampled_from(["torch", "numpy", "scikit-learn", "huggingface-hub"]),
                            st.sampled_from(["2.13.0+cpu", "1.0", "2", "0.4.5rc1", "1e3", "yes"]),
                            max_size=4,
                        ),
                        "installed": st.integers(0, 10_000),
                        "digest": oids,
                    }
                ),
            )
        ),
        metadata=draw(st.dictionaries(st.text(min_size=1, max_size=6), header_values, max_size=3)),
        extra=draw(
            st.dictionaries(st.sampled_from(["x_future", "zzz"]), header_values, max_size=2)
        ),
        files=files,
        pickle=draw(pickle_records(files)),
    )


pickle_globals = st.dictionaries(
    st.one_of(
        st.sampled_from(["posix.system", "torch._utils._rebuild_tensor_v2", "__main__.Evil"]),
        st.sampled_from(["builtins.getattr", "numpy.random._pickle.__bit_generator_ctor"]),
        odd_names,
    ),
    st.sampled_from(pointer.PICKLE_KINDS),
    max_size=4,
)


def pickle_records(files: list[pointer.FileEntry]) -> st.SearchStrategy[dict[str, Any]]:
    """The ``pickle`` key: none, or a record for the file or for some files of the folder."""
    record = st.builds(pointer.PickleRecord, pickle_globals, st.booleans())
    keys = [f.path for f in files] if files else [""]
    return st.dictionaries(st.sampled_from(keys), record, max_size=len(keys))


def _same_or_same_error(text: str | bytes) -> None:
    """pointer.loads (fast where canonical) and the YAML reader agree, error for error."""
    try:
        slow = pointer.load_yaml(text.decode() if isinstance(text, bytes) else text, "p.snap")
    except PointerError as exc:
        with pytest.raises(PointerError) as fast_exc:
            loads(text, "p.snap")
        assert str(fast_exc.value) == str(exc)
        assert fast_exc.value.hint == exc.hint
        return
    fast = loads(text, "p.snap")
    assert dumps(fast) == dumps(slow)  # NaN != NaN: compare the canonical text
    assert fast.extra == slow.extra or dumps(fast) == dumps(slow)
    assert fast.pickle == slow.pickle
    for a, b in zip(fast.tensors, slow.tensors, strict=True):
        assert (a.name, a.dtype, a.shape, a.file, a.view, a.stride) == (
            b.name,
            b.dtype,
            b.shape,
            b.file,
            b.view,
            b.stride,
        )
        assert {k: type(v) for k, v in a.stats.items()} == {k: type(v) for k, v in b.stats.items()}


@settings(max_examples=400, deadline=None)
@given(canonical_pointers())
def test_fast_reader_equals_yaml_on_generated_pointers(ptr: Pointer) -> None:
    try:
        text = dumps(ptr)
    except PointerError:
        return
    _same_or_same_error(text)
    _same_or_same_error(text.encode())


@settings(max_examples=300, deadline=None)
@given(pointers())
def test_fast_reader_equals_yaml_on_round_trip_pointers(ptr: Pointer) -> None:
    _same_or_same_error(dumps(ptr))


@settings(max_examples=400, deadline=None)
@given(canonical_pointers(), st.data())
def test_fast_reader_equals_yaml_on_hand_edits(ptr: Pointer, data: st.DataObject) -> None:
    text = dumps(ptr)
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        edit = data.draw(
            st.one_of(
                st.sampled_from(["", " ", "\n", "-", ":", "'", '"', "#", "{", "}", ",", "0", "\t"]),
                st.sampled_from(["\n- ", "tensors:\n", "  x: 1\n", ": ", "\r", ".nan", "\\"]),
                # What the limits refuse: document markers, aliases, tags, keys that
                # are not strings, deep nesting, overlong integers.
                st.sampled_from(["\n...\n", "...\n", "\n---\n", "&a ", "*a", "!!str ", "1: "]),
                st.sampled_from(["? ", "null: ", "[" * 40, "{a: " * 40, "1" * 5000, "%TAG"]),
            )
        )
        cut = data.draw(st.integers(0, 3))
        text = text[:at] + edit + text[at + cut :]
    _same_or_same_error(text)


def test_canonical_text_takes_the_fast_path() -> None:
    # What git snap save writes, odd names included, is read without YAML.
    e = Entry(0, 8, "a" * 64, name="0.weight", dtype="F32", shape=(2,))
    e.stats = {"count": 2, "nonfinite": 1, "mean": math.nan, "min": -math.inf, "l2": 1.5}
    q = Entry(8, 4, "1" * 64, name='ü "x"\\y', dtype="BF16", shape=(2,))
    v = Entry(0, 12, "b" * 64, name="view", dtype="F32", shape=(3,), view=True, stride=(1,))
    ptr = Pointer(
        id="c" * 64,
        path="m.safetensors",
        format="safetensors",
        size=12,
        tensors=[e, q, v],
        blobs=[],
        metrics={"acc": 0.9, "run name": "fine tune", "epochs": 3, "ok": True, "t": "2026-01-02"},
        tool={"gitsnap": "0.1.0", "python": "3.11.7", "torch": "2.13.0+cpu"},
        metadata={"format": "pt", "nested": {"a": 1, "b": None}},
    )
    text = dumps(ptr)
    chunks = [[line for line in text.splitlines() if not line.startswith("- ")]]
    assert fast_reader._header_chunk(chunks[0][:1])  # the version line
    fast = fast_reader.load(text, "p", {})
    assert dumps(fast) == dumps(pointer.load_yaml(text, "p")) == text
    assert fast.tensors[1].name == 'ü "x"\\y' and fast.tensors[2].stride == (1,)


header_keys = st.one_of(
    st.from_regex(r"[a-z][a-z0-9_./ -]{0,8}", fullmatch=True), st.text(min_size=1, max_size=8)
)
header_scalars = st.one_of(
    st.from_regex(r"[-+.0-9a-zA-Z_:/ ]{0,10}", fullmatch=True),
    st.from_regex(r"-?[0-9]{1,4}(\.[0-9]{0,3})?(e[-+]?[0-9]{1,2})?", fullmatch=True),
    header_values,
)
header_blocks = st.recursive(
    header_scalars, lambda inner: st.dictionaries(header_keys, inner, max_size=3), max_leaves=8
)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(header_keys, header_blocks, min_size=1, max_size=5))
def test_header_reader_types_scalars_as_yaml_does(block: dict[str, Any]) -> None:
    import yaml

    text = write.dump_block(block)
    lines = text.rstrip("\n").split("\n")
    try:
        fast = fast_reader._header_chunk(lines)
    except NotCanonical:
        return
    slow = yaml.load(text, Loader=yaml.CSafeLoader)
    assert repr(fast) == repr(slow)  # repr: NaN, and bool vs int, compare as they print


def test_shared_lines_give_one_entry_to_both_pointers() -> None:
    ptr = _ptr()
    shared: dict[str, Entry] = {}
    a = loads(dumps(ptr), shared=shared)
    b = loads(dumps(ptr), shared=shared)
    assert a.tensors[0] is b.tensors[0]
    assert loads(dumps(ptr)).tensors[0] is not a.tensors[0]
