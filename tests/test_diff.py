"""gitsnap.diff as a library: structure, grouping, summaries, value deltas, fast pointer reading."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import blake3
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitsnap import diff as d
from gitsnap import diff_values as dv
from gitsnap import pointer
from gitsnap.errors import ConcurrentChange, ObjectCorrupt, PointerError
from gitsnap.pointer import Entry, Pointer, fast
from gitsnap.store import ObjectStore


def oid_of(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def tensor(
    name: str,
    data: bytes | str,
    dtype: str = "F32",
    shape: tuple[int, ...] = (4,),
    offset: int = 0,
    **stats: float,
) -> Entry:
    raw = data.encode() if isinstance(data, str) else data
    return Entry(
        offset=offset,
        size=len(raw),
        oid=oid_of(raw),
        name=name,
        dtype=dtype,
        shape=shape,
        stats=dict(stats),
    )


def by_name(changes: list[d.TensorChange]) -> dict[str, d.TensorChange]:
    return {c.name: c for c in changes}


# ---------------------------------------------------------------- structure


def test_every_status_is_found() -> None:
    before = [
        tensor("same", "aaaa"),
        tensor("tuned", "bbbb", l2=2.0),
        tensor("shape", "cccc", shape=(2, 2)),
        tensor("typed", "dddd", dtype="F32"),
        tensor("old.name", "eeee"),
        tensor("gone", "ffff", l2=3.0),
    ]
    after = [
        tensor("same", "aaaa"),
        tensor("tuned", "BBBB", l2=2.5),
        tensor("shape", "cccc", shape=(4,)),
        tensor("typed", "dddd", dtype="I32"),
        tensor("new.name", "eeee"),
        tensor("fresh", "gggg", l2=1.0),
    ]
    changes = by_name(d.diff_tensors(before, after))
    assert {n: c.status for n, c in changes.items()} == {
        "same": "unchanged",
        "tuned": "modified",
        "shape": "reshaped",
        "typed": "modified",
        "new.name": "renamed",
        "gone": "removed",
        "fresh": "added",
    }
    assert changes["new.name"].old_name == "old.name"
    assert changes["typed"].dtype_changed and not changes["tuned"].dtype_changed
    assert changes["tuned"].norm_change == pytest.approx(0.25)
    assert changes["gone"].after is None and changes["fresh"].before is None
    assert set(d.STATUSES) == {c.status for c in changes.values()}


def test_rename_needs_the_old_name_gone_and_ignores_empty_tensors() -> None:
    before = [tensor("a", "xxxx"), tensor("e1", b"", shape=(0,))]
    after = [tensor("a", "xxxx"), tensor("copy", "xxxx"), tensor("e2", b"", shape=(0,))]
    changes = by_name(d.diff_tensors(before, after))
    assert changes["copy"].status == "added"  # "a" still exists: a copy, not a rename
    assert changes["e2"].status == "added" and changes["e1"].status == "removed"


def test_changes_sort_in_natural_order() -> None:
    names = ["layers.10.w", "layers.2.w", "layers.1.w", "emb"]
    changes = d.diff_tensors([], [tensor(n, n) for n in names])
    assert [c.name for c in changes] == ["emb", "layers.1.w", "layers.2.w", "layers.10.w"]


def test_summary_counts_params_and_new_bytes() -> None:
    before = [
        tensor("a", b"1" * 16, shape=(4,)),
        tensor("b", b"2" * 16, shape=(4,)),
        tensor("c", b"3" * 8, shape=(2,)),
    ]
    after = [
        tensor("a", b"1" * 16, shape=(4,)),
        tensor("b", b"9" * 16, shape=(4,)),
        tensor("d", b"3" * 8, shape=(2,)),
    ]
    s = d.summarize(d.diff_tensors(before, after))
    assert s.counts == {
        "added": 0,
        "removed": 0,
        "renamed": 1,
        "reshaped": 0,
        "modified": 1,
        "unchanged": 1,
    }
    assert s.tensors_changed == 2
    assert s.params_changed == 4  # the rename moved no number
    assert (s.bytes_after, s.bytes_new) == (40, 16)
    assert s.bytes_new_fraction == pytest.approx(0.4)
    removed_all = d.summarize(d.diff_tensors(before, []))
    assert removed_all.bytes_new_fraction == 1.0 and removed_all.params_changed == 10


@pytest.mark.parametrize(
    ("name", "depth", "group"),
    [
        ("encoder.layer.3.attn.q.weight", None, "encoder.layer.3"),
        ("model.layers.12.mlp.up_proj.weight", None, "model.layers.12"),
        ("lm_head.weight", None, "lm_head"),
        ("model.embed_tokens.weight", None, "model.embed_tokens"),
        ("bias", None, "bias"),
        ("encoder.layer.3.attn.q.weight", 2, "encoder.layer"),
        ("encoder.layer.3.attn.q.weight", 5, "encoder.layer.3.attn.q"),
        ("encoder.layer.3.attn.q.weight", 99, "encoder.layer.3.attn.q"),
        ("head.weight", 1, "head"),
    ],
)
def test_group_name(name: str, depth: int | None, group: str) -> None:
    assert d.group_name(name, depth) == group


def test_groups_rank_by_movement() -> None:
    before = [
        tensor("l.0.w", "a0", l2=10.0),
        tensor("l.0.b", "a1", l2=1.0),
        tensor("l.1.w", "b0", l2=10.0),
        tensor("head.w", "c0", l2=2.0),
    ]
    after = [
        tensor("l.0.w", "A0", l2=10.5),
        tensor("l.0.b", "a1", l2=1.0),
        tensor("l.1.w", "b0", l2=10.0),
        tensor("head.w", "C0", l2=3.0),
    ]
    groups = d.group_changes(d.diff_tensors(before, after))
    assert [g.name for g in groups] == ["head", "l.0", "l.1"]
    head, l0, l1 = groups
    assert head.norm_change == pytest.approx(0.5) and head.rel_change is None
    assert l0.tensors == 2 and l0.tensors_changed == 1
    assert l0.l2_before == pytest.approx(math.sqrt(101))
    assert l1.movement == 0 and l1.tensors_changed == 0


def test_group_rel_change_uses_values_and_counts_added_tensors_in_full() -> None:
    b = d.TensorSide("F32", (4,), 0, 16, "0" * 64, {"l2": 3.0})
    a = d.TensorSide("F32", (4,), 0, 16, "1" * 64, {"l2": 4.0})
    v = d.ValueDelta(
        4, 4, 0, l2_delta=1.0, l2_before=3.0, l2_after=4.0, max_abs_delta=1.0, cosine=0.9
    )
    modified = d.TensorChange("g.0.w", "modified", b, a, values=v)
    added = d.TensorChange(
        "g.0.new", "added", None, d.TensorSide("F32", (4,), 0, 16, "2" * 64, {"l2": 2.0})
    )
    [g] = d.group_changes([modified, added])
    assert g.rel_change == pytest.approx(math.sqrt(1 + 4) / 3.0)
    assert g.movement == g.rel_change


# ---------------------------------------------------------------- values


def _store_with(tmp_path: Path, arrays: dict[str, bytes]) -> tuple[ObjectStore, dict[str, str]]:
    store = ObjectStore(tmp_path / "store")
    oids = {}
    for key, raw in arrays.items():
        oid = oid_of(raw)
        store.put(oid, raw)
        oids[key] = oid
    return store, oids


def _bf16(x: np.ndarray) -> bytes:
    # Round to nearest even, as torch does.
    bits = x.astype("<f4").view("<u4").astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")
    return rounded.tobytes()


def _from_bf16(raw: bytes) -> np.ndarray:
    return (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def _reference(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    delta = y - x
    return {
        "l2_delta": float(np.linalg.norm(delta)),
        "l2_before": float(np.linalg.norm(x)),
        "l2_after": float(np.linalg.norm(y)),
        "max_abs_delta": float(np.abs(delta).max()),
        "cosine": float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y))),
    }


@pytest.mark.parametrize("dtype", ["F32", "F16", "BF16", "F64"])
def test_value_delta_matches_numpy(
    tmp_path: Path, dtype: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Several blocks and a ragged last one: shrink the block so the test stays small.
    from gitsnap import stats

    monkeypatch.setattr(stats, "BLOCK", 1000)
    rng = np.random.default_rng(0)
    n = 4321
    x = rng.standard_normal(n)
    y = x.copy()
    y[::3] += 0.01 * rng.standard_normal(len(y[::3]))
    if dtype == "BF16":
        raw_x, raw_y = _bf16(x), _bf16(y)
        x, y = _from_bf16(raw_x), _from_bf16(raw_y)
    else:
        np_dtype = {"F32": "<f4", "F16": "<f2", "F64": "<f8"}[dtype]
        raw_x, raw_y = x.astype(np_dtype).tobytes(), y.astype(np_dtype).tobytes()
        x, y = x.astype(np_dtype).astype(np.float64), y.astype(np_dtype).astype(np.float64)
    store, oids = _store_with(tmp_path, {"x": raw_x, "y": raw_y})
    before = [Entry(0, len(raw_x), oids["x"], name="w", dtype=dtype, shape=(n,))]
    after = [Entry(0, len(raw_y), oids["y"], name="w", dtype=dtype, shape=(n,))]
    src = dv.StoreSource(store)
    [c] = dv.compute_values(d.diff_tensors(before, after), src, src, workers=2)
    v = c.values
    assert v is not None
    ref = _reference(x, y)
    tol = 1e-6 if dtype != "F64" else 1e-12
    for key, want in ref.items():
        assert getattr(v, key) == pytest.approx(want, rel=tol, abs=1e-12), key
    assert v.changed == int(np.count_nonzero(x != y))
    assert v.rel_change == pytest.approx(ref["l2_delta"] / ref["l2_before"], rel=tol)
    assert v.elements == n and v.nonfinite == 0


def test_value_delta_across_a_dtype_change_and_with_non_finite_values(tmp_path: Path) -> None:
    x = np.array([1.0, 2.0, np.nan, 4.0, np.inf, -1.0], dtype="<f4")
    y = np.array([1.0, 2.5, 3.0, 4.0, 5.0, -1.0], dtype="<f8")
    store, oids = _store_with(tmp_path, {"x": x.tobytes(), "y": y.tobytes()})
    before = [Entry(0, x.nbytes, oids["x"], name="w", dtype="F32", shape=(6,))]
    after = [Entry(0, y.nbytes, oids["y"], name="w", dtype="F64", shape=(6,))]
    [c] = d.diff_tensors(before, after)
    assert c.status == "modified" and c.dtype_changed
    [c] = dv.compute_values([c], dv.StoreSource(store), dv.StoreSource(store), workers=1)
    v = c.values
    assert v is not None
    assert v.nonfinite == 2
    assert v.l2_delta == pytest.approx(0.5)
    assert v.max_abs_delta == pytest.approx(0.5)
    assert v.changed == 3  # 2 -> 2.5, NaN -> 3, inf -> 5 (widened values compared)


def test_changed_counts_values_not_bits(tmp_path: Path) -> None:
    x = np.array([0.0, 1.0, np.nan], dtype="<f4")
    y = np.array([-0.0, 1.0, np.nan], dtype="<f4")
    store, oids = _store_with(tmp_path, {"x": x.tobytes(), "y": y.tobytes()})
    before = [Entry(0, 12, oids["x"], name="w", dtype="F32", shape=(3,))]
    after = [Entry(0, 12, oids["y"], name="w", dtype="F32", shape=(3,))]
    [c] = dv.compute_values(
        d.diff_tensors(before, after), dv.StoreSource(store), dv.StoreSource(store)
    )
    assert c.status == "modified" and c.values is not None  # the bytes differ, the numbers do not
    assert c.values.changed == 0 and c.values.nonfinite == 1
    assert c.values.l2_delta == 0.0 and c.values.cosine == pytest.approx(1.0)


def test_only_modified_tensors_of_readable_dtypes_get_values(tmp_path: Path) -> None:
    store, oids = _store_with(tmp_path, {"a": b"\0" * 8, "b": b"\1" * 8, "c": b"\2" * 8})
    before = [
        Entry(0, 8, oids["a"], name="same", dtype="F32", shape=(2,)),
        Entry(8, 8, oids["a"], name="complex", dtype="C64", shape=(1,)),
        Entry(16, 8, oids["a"], name="reshaped", dtype="F32", shape=(2,)),
    ]
    after = [
        Entry(0, 8, oids["a"], name="same", dtype="F32", shape=(2,)),
        Entry(8, 8, oids["b"], name="complex", dtype="C64", shape=(1,)),
        Entry(16, 8, oids["c"], name="reshaped", dtype="F32", shape=(1, 2)),
    ]
    changes = dv.compute_values(
        d.diff_tensors(before, after), dv.StoreSource(store), dv.StoreSource(store)
    )
    assert all(c.values is None for c in changes)


def test_a_corrupt_object_is_reported_not_diffed(tmp_path: Path) -> None:
    x = np.arange(8, dtype="<f4").tobytes()
    y = (np.arange(8, dtype="<f4") + 1).tobytes()
    store, oids = _store_with(tmp_path, {"x": x, "y": y})
    path = store.path(oids["y"])
    path.chmod(0o644)
    path.write_bytes(y[:-4] + b"\0\0\0\0")
    before = [Entry(0, 32, oids["x"], name="w", dtype="F32", shape=(8,))]
    after = [Entry(0, 32, oids["y"], name="w", dtype="F32", shape=(8,))]
    with pytest.raises(ObjectCorrupt):
        dv.compute_values(
            d.diff_tensors(before, after), dv.StoreSource(store), dv.StoreSource(store)
        )


def test_file_source_reads_at_offsets_and_detects_a_changed_file(tmp_path: Path) -> None:
    x = np.arange(8, dtype="<f4").tobytes()
    y = (np.arange(8, dtype="<f4") * 2).tobytes()
    store, oids = _store_with(tmp_path, {"x": x})
    f = tmp_path / "ckpt.bin"
    f.write_bytes(b"HEADER--" + y)
    before = [Entry(0, 32, oids["x"], name="w", dtype="F32", shape=(8,))]
    after = [Entry(8, 32, oid_of(y), name="w", dtype="F32", shape=(8,))]
    changes = d.diff_tensors(before, after)
    with dv.FileSource(f) as src:
        [c] = dv.compute_values(changes, dv.StoreSource(store), src)
    assert c.values is not None
    assert c.values.l2_delta == pytest.approx(float(np.linalg.norm(np.arange(8))))
    f.write_bytes(b"HEADER--" + x)  # changed after the pointer was made
    with dv.FileSource(f) as src, pytest.raises(ConcurrentChange):
        dv.compute_values(changes, dv.StoreSource(store), src)


def test_exact_reader_spans_chunk_edges() -> None:
    chunks = [memoryview(b"abc"), memoryview(b"defg"), memoryview(b"h")]
    r = dv._Exact(iter(chunks), bytearray(8), PointerError("short"))
    assert bytes(r.read(2)) == b"ab"
    assert bytes(r.read(4)) == b"cdef"
    assert bytes(r.read(2)) == b"gh"
    r.finish()
    short = dv._Exact(iter([memoryview(b"ab")]), bytearray(8), PointerError("short"))
    with pytest.raises(PointerError):
        short.read(3)


# ---------------------------------------------------------------- fast pointer reading

names = st.one_of(
    st.from_regex(r"[a-z_][a-z0-9_.]{0,20}", fullmatch=True),
    st.text(min_size=1, max_size=12),
    st.sampled_from(["yes", "null", "on", "1e5", "a: b", 'quo"te', "emoji😀", "0x1f", "a:"]),
)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(min_value=-(10**12), max_value=10**12),
)


@st.composite
def pointers(draw: st.DrawFn) -> Pointer:
    n = draw(st.integers(min_value=0, max_value=6))
    entries = []
    pos = 10
    for i in range(n):
        size = draw(st.integers(min_value=0, max_value=64))
        stats = draw(st.dictionaries(st.sampled_from(pointer.STAT_KEYS[2:]), numbers, max_size=4))
        stats.update(
            draw(
                st.dictionaries(
                    st.sampled_from(pointer.STAT_KEYS[:2]), st.integers(0, 10**9), max_size=2
                )
            )
        )
        oid = draw(st.one_of(st.just("1" * 64), st.from_regex(r"[0-9a-f]{64}", fullmatch=True)))
        extra = draw(st.dictionaries(st.sampled_from(["zeta", "note"]), st.integers(), max_size=1))
        entries.append(
            Entry(
                offset=pos,
                size=size,
                oid=oid,
                name=draw(names) + str(i),
                dtype=draw(st.sampled_from(["F32", "BF16", "I8", "yes"])),
                shape=tuple(draw(st.lists(st.integers(0, 9), max_size=3))),
                stats=stats,
                extra=extra,
            )
        )
        pos += size
    if draw(st.booleans()):  # a view into the header's bytes, maybe strided
        shape = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=2)))
        stride = (
            tuple(draw(st.lists(st.integers(0, 4), min_size=len(shape), max_size=len(shape))))
            if draw(st.booleans())
            else None
        )
        entries.append(
            Entry(
                offset=2,
                size=4,
                oid="c" * 64,
                name="view",
                dtype="F32",
                shape=shape,
                view=True,
                stride=stride,
            )
        )
    blobs = [
        Entry(
            offset=0, size=10, oid="a" * 64, role=draw(st.sampled_from(["header", "null", "gap x"]))
        )
    ]
    return Pointer(
        id="b" * 64,
        path="m.safetensors",
        format="safetensors",
        size=pos,
        tensors=entries,
        blobs=blobs,
        message=draw(st.text(max_size=20)),
        metrics=draw(st.dictionaries(st.text(min_size=1, max_size=5), numbers, max_size=3)),
        extra=draw(
            st.dictionaries(st.sampled_from(["future", "zzz"]), st.text(max_size=5), max_size=1)
        ),
    )


def _same(a: Pointer, b: Pointer) -> bool:
    # NaN != NaN: compare the canonical text instead.
    return pointer.dumps(a) == pointer.dumps(b)


@settings(max_examples=300, deadline=None)
@given(pointers())
def test_fast_loader_agrees_with_the_yaml_loader(p: Pointer) -> None:
    text = pointer.dumps(p)
    assert _same(pointer.loads(text.encode()), pointer.loads(text))


def test_fast_loader_reads_folder_pointers() -> None:
    files = [pointer.FileEntry("a.safetensors", 12, "safetensors"), pointer.FileEntry("b.bin", 4)]
    p = Pointer(
        id="c" * 64,
        path="shards",
        format="folder",
        size=16,
        files=files,
        tensors=[
            Entry(
                8,
                4,
                "d" * 64,
                name="w",
                dtype="F32",
                shape=(1,),
                file="a.safetensors",
                stats={"l2": 1.0},
            )
        ],
        blobs=[
            Entry(0, 8, "e" * 64, role="header", file="a.safetensors"),
            Entry(0, 4, "f" * 64, role="file", file="b.bin"),
        ],
    )
    text = pointer.dumps(p)
    assert "files:" in text
    fast.load(text, "x", {})  # canonical: no fallback
    assert _same(pointer.loads(text), pointer.loads(text))


def test_fast_loader_falls_back_on_hand_edits_and_reports_the_same_errors() -> None:
    e = tensor("w", "abcd", l2=1.5)
    p = Pointer(id="c" * 64, path="m", format="raw", size=4, tensors=[e], blobs=[])
    text = pointer.dumps(p)
    edited = text.replace("l2: 1.5}", "l2: 15.0e-1}").replace("dtype: F32", "dtype:  F32")
    assert edited != text
    assert _same(pointer.loads(edited), pointer.loads(edited))
    broken = text.replace("size: 4, oid", "size: 5, oid")
    with pytest.raises(pointer.PointerError) as fast:
        pointer.loads(broken, "x.snap")
    with pytest.raises(pointer.PointerError) as slow:
        pointer.loads(broken, "x.snap")
    assert str(fast.value) == str(slow.value)


def test_structural_diff_imports_no_numpy() -> None:
    code = (
        "import sys\n"
        "from gitsnap import diff, pointer\n"
        "from gitsnap.render import json, markdown, text\n"
        "e = pointer.Entry(0, 4, 'a' * 64, name='w', dtype='F32', shape=(1,))\n"
        "f = pointer.Entry(0, 4, 'b' * 64, name='w', dtype='F32', shape=(1,))\n"
        "c = diff.diff_tensors([e], [f]); diff.group_changes(c); diff.summarize(c)\n"
        "heavy = sorted(m for m in ('numpy', 'torch', 'dvc', 'rich') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_shared_lines_are_parsed_once_and_give_the_same_diff() -> None:
    same = tensor("a", "aaaa", l2=1.0)
    p1 = Pointer(
        id="c" * 64,
        path="m",
        format="raw",
        size=8,
        tensors=[same, tensor("b", "bbbb", offset=4)],
        blobs=[],
    )
    p2 = Pointer(
        id="d" * 64,
        path="m",
        format="raw",
        size=8,
        tensors=[same, tensor("b", "BBBB", offset=4)],
        blobs=[],
    )
    shared: dict[str, Entry] = {}
    a = pointer.loads(pointer.dumps(p1), shared=shared)
    b = pointer.loads(pointer.dumps(p2), shared=shared)
    assert a.tensors[0] is b.tensors[0] and a.tensors[1] is not b.tensors[1]
    fresh = d.diff_tensors(
        pointer.loads(pointer.dumps(p1)).tensors, pointer.loads(pointer.dumps(p2)).tensors
    )
    assert d.diff_tensors(a.tensors, b.tensors) == fresh
    assert [c.status for c in fresh] == ["unchanged", "modified"]
