"""Pointer additions for issue 3: ``files`` (folder checkpoints), ``file`` on entries, views.

They keep format version 1: old pointers read as before, the encoding stays
canonical (``dump(load(x)) == x``), and a layout is checked file by file.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitsnap.errors import PointerError
from gitsnap.pointer import Entry, FileEntry, Pointer, dumps, layout_id, loads

HEX = "0123456789abcdef"
oids = st.text(HEX, min_size=64, max_size=64)
paths = st.sampled_from(
    [
        "config.json",
        "model-00001-of-00002.safetensors",
        "sub dir/ünï.bin",
        "a/b/c",
        "tokenizer.json",
    ]
)


@st.composite
def folder_pointers(draw: st.DrawFn) -> Pointer:
    files = sorted(set(draw(st.lists(paths, min_size=1, max_size=4))))
    tensors: list[Entry] = []
    blobs: list[Entry] = []
    entries: list[FileEntry] = []
    for path in files:
        sizes = draw(st.lists(st.integers(0, 10**6), max_size=5))
        offset = 0
        for size in sizes:
            at = {"offset": offset, "size": size, "file": path}
            if draw(st.booleans()):
                blobs.append(Entry(**at, oid=draw(oids), role="header"))
            else:
                name = draw(st.text(min_size=1, max_size=12))
                stats = {"count": size, "mean": 0.5}
                tensors.append(
                    Entry(**at, oid=draw(oids), name=name, dtype="F32", shape=(size,), stats=stats)
                )
                if draw(st.booleans()) and size:
                    stride = draw(st.one_of(st.none(), st.just((1,))))
                    view = Entry(**at, oid=draw(oids), name="v", dtype="BF16", shape=(size,))
                    view.view, view.stride = True, stride
                    tensors.append(view)
            offset += size
        extra = draw(st.dictionaries(st.sampled_from(["zz_future"]), st.integers(), max_size=1))
        fmt = draw(st.sampled_from(["", "raw", "safetensors"]))
        executable = draw(st.booleans())
        entries.append(
            FileEntry(path=path, size=offset, format=fmt, extra=extra, executable=executable)
        )
    total = sum(f.size for f in entries)
    scalars = st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=5), st.none())
    keys = st.sampled_from(["epoch", "m.safetensors:format", "lr"])
    return Pointer(
        id=layout_id([*tensors, *blobs], total, entries),
        path="models/tiny",
        format="sharded-safetensors",
        size=total,
        tensors=tensors,
        blobs=blobs,
        files=entries,
        metadata=draw(st.dictionaries(keys, scalars)),
    )


@settings(max_examples=150, deadline=None)
@given(folder_pointers())
def test_folder_pointers_round_trip_canonically(ptr: Pointer) -> None:
    text = dumps(ptr)
    again = loads(text)
    assert dumps(again) == text
    assert [f.path for f in again.files] == [f.path for f in ptr.files]
    assert [(t.file, t.view, t.stride) for t in again.tensors] == [
        (t.file, t.view, t.stride) for t in ptr.tensors
    ]
    # Views are not objects and not part of the layout.
    assert again.oids() == {e.oid for e in [*ptr.tensors, *ptr.blobs] if not e.view}


def small_folder() -> Pointer:
    a, b, c = "a" * 64, "b" * 64, "c" * 64
    files = [FileEntry("config.json", 10, "raw"), FileEntry("model.safetensors", 30, "safetensors")]
    blobs = [
        Entry(0, 10, a, role="file", file="config.json"),
        Entry(0, 8, b, role="header", file="model.safetensors"),
    ]
    tensors = [Entry(8, 22, c, name="w", dtype="F32", shape=(5,), file="model.safetensors")]
    return Pointer(
        id=layout_id([*blobs, *tensors], 40, files),
        path="m",
        format="sharded-safetensors",
        size=40,
        tensors=tensors,
        blobs=blobs,
        files=files,
    )


def test_the_files_list_and_file_keys_read_like_the_rest() -> None:
    text = dumps(small_folder())
    assert (
        "files:\n- {path: config.json, size: 10, format: raw}\n"
        "- {path: model.safetensors, size: 30, format: safetensors}\n" in text
    )
    assert (
        "- {name: w, file: model.safetensors, dtype: F32, shape: [5], offset: 8, size: 22, oid: "
        in text
    )
    assert "- {file: config.json, offset: 0, size: 10, oid: " in text


def test_a_single_file_pointer_is_unchanged_by_the_additions() -> None:
    entries = [
        Entry(0, 8, "a" * 64, role="header"),
        Entry(8, 4, "b" * 64, name="x", dtype="F32", shape=(1,)),
    ]
    ptr = Pointer(id=layout_id(entries, 12), path="m.safetensors", format="safetensors", size=12,
                  tensors=entries[1:], blobs=entries[:1])  # fmt: skip
    text = dumps(ptr)
    assert "files" not in text and "file:" not in text and "view" not in text
    # The id formula for single files is the original one (stat caches and old pointers agree).
    assert layout_id(entries, 12) == layout_id(entries, 12, None)
    assert loads(text).files == []


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("path: config.json", "path: ../config.json", "outside the repository"),
        ("path: config.json", "path: /etc/passwd", "outside the repository"),
        ("path: config.json", "path: ./config.json", "normal form"),
        ("{file: config.json, offset: 0", "{file: other.json, offset: 0", "not in the files list"),
        ("{file: config.json, offset: 0", "{offset: 0", "does not say which file"),
        ("size: 30, format", "size: 31, format", "add up to"),
        ("{path: config.json, size: 10", "{path: config.json, size: 11", "add up to"),
    ],
)
def test_folder_layouts_are_checked_file_by_file(old: str, new: str, message: str) -> None:
    text = dumps(small_folder())
    assert old in text
    with pytest.raises(PointerError, match=message):
        loads(text.replace(old, new, 1))


def test_layout_breaks_inside_one_file_are_found() -> None:
    ptr = small_folder()
    ptr.tensors[0].offset = 9  # a gap inside model.safetensors
    with pytest.raises(PointerError, match="leaves a gap"):
        loads(dumps(ptr))
    ptr = small_folder()
    ptr.files[0].size, ptr.files[1].size = 9, 31  # same total, wrong per file
    with pytest.raises(
        PointerError, match=r"layout covers 10 bytes of config\.json but its size is 9"
    ):
        loads(dumps(ptr))


def test_views_must_lie_inside_their_file_and_strides_need_views() -> None:
    ptr = small_folder()
    ptr.tensors.append(
        Entry(
            20, 20, "d" * 64, name="v", dtype="F32", shape=(5,), file="model.safetensors", view=True
        )
    )
    with pytest.raises(PointerError, match="reaches past the end"):
        loads(dumps(ptr))
    text = dumps(small_folder()).replace(
        "shape: [5], offset: 8", "shape: [5], stride: [1], offset: 8"
    )
    with pytest.raises(PointerError, match="bad stride"):
        loads(text)


def test_the_snapshot_id_covers_file_names_and_sizes() -> None:
    ptr = small_folder()
    renamed = [FileEntry("config2.json", 10), ptr.files[1]]
    for e in ptr.blobs:
        if e.file == "config.json":
            e.file = "config2.json"
    assert layout_id([*ptr.tensors, *ptr.blobs], 40, renamed) != ptr.id
    # Views never change the id: they are not part of the layout.
    view = Entry(
        8, 4, "e" * 64, name="v", dtype="F32", shape=(1,), file="model.safetensors", view=True
    )
    base = small_folder()
    assert layout_id([*base.tensors, view, *base.blobs], 40, base.files) == base.id
