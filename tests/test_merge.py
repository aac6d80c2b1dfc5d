"""The tensor-level merge of ``*.snap`` pointers: the pure merge, the git merge driver, resolve.

End to end with the real ``git merge`` (the driver configured by ``git snap
init``), real ``dvc``, checkpoints written by the safetensors library; the
merged checkpoint is compared byte for byte with one the library writes from
the expected tensors.
"""

from __future__ import annotations

import json
from pathlib import Path

import blake3
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitsnap.merge import MERGE_KEY, merge
from gitsnap.pointer import Entry, Pointer, dumps, is_pointer, layout_id, loads
from gitsnap.pointer.peek import is_conflicted
from tests import helpers
from tests.helpers import git, run_snap

# --------------------------------------------------------------------------
# the pure merge, on generated pointers


def _oid(token: object) -> str:
    return blake3.blake3(repr(token).encode()).hexdigest()


def _pointer(tensors: dict[str, tuple[int, int]], meta: int = 0, message: str = "") -> Pointer:
    """A safetensors-like pointer: name -> (byte size, content token).

    The header's object id stands for what a real header holds: names,
    sizes, offsets and metadata; tensors lie in name order, as the library
    writes them.
    """
    offset = 64
    entries = []
    layout = []
    for name in sorted(tensors):
        size, token = tensors[name]
        entries.append(
            Entry(offset, size, _oid((size, token)), name=name, dtype="U8", shape=(size,))
        )
        layout.append((name, size, offset))
        offset += size
    header = Entry(0, 64, _oid(("header", tuple(layout), meta)), role="header")
    return Pointer(
        id=layout_id([header, *entries], offset),
        path="model.safetensors",
        format="safetensors",
        size=offset,
        tensors=entries,
        blobs=[header],
        message=message,
        metadata={"meta": str(meta)} if meta else {},
    )


NAMES = ("a", "b", "c", "d")
_tensor_maps = st.dictionaries(
    st.sampled_from(NAMES), st.tuples(st.sampled_from((4, 8)), st.integers(0, 2)), min_size=1
)


def _edit(
    base: dict[str, tuple[int, int]], edits: dict[str, tuple[str, int]]
) -> dict[str, tuple[int, int]]:
    out = dict(base)
    for name, (op, token) in edits.items():
        if op == "content" and name in out:
            out[name] = (out[name][0], 10 + token)
        elif op == "resize" and name in out:
            out[name] = (out[name][0] * 2, out[name][1])
        elif op == "delete" and len(out) > 1:
            out.pop(name, None)
        elif op == "add":
            out[name] = (4, 20 + token)
    return out


_edits = st.dictionaries(
    st.sampled_from(NAMES),
    st.tuples(
        st.sampled_from(("content", "content", "resize", "delete", "add")), st.integers(0, 1)
    ),
)


@settings(max_examples=300, deadline=None)
@given(base=_tensor_maps, e1=_edits, e2=_edits, meta=st.integers(0, 1))
def test_merge_properties(
    base: dict[str, tuple[int, int]],
    e1: dict[str, tuple[str, int]],
    e2: dict[str, tuple[str, int]],
    meta: int,
) -> None:
    b = _pointer(base, message="base")
    x = _pointer(_edit(base, e1), meta=meta, message="x")
    y = _pointer(_edit(base, e2), message="y")
    # One side unchanged: the other side, exactly.
    assert merge(b, b, x).pointer == x
    assert merge(b, x, b).pointer == x
    # The same change on both sides: that change.
    same = merge(b, x, x).pointer
    assert same is not None and same.id == x.id
    # Conflicts are symmetric, and so is the merged content.
    xy, yx = merge(b, x, y), merge(b, y, x)
    assert xy.merged == yx.merged
    assert sorted(c.what for c in xy.conflicts) == sorted(c.what for c in yx.conflicts)
    if xy.pointer is not None and yx.pointer is not None:
        assert xy.pointer.id == yx.pointer.id
        # What the driver writes reads back, layout checked, as the same pointer.
        assert loads(dumps(xy.pointer)) == xy.pointer
        # Every tensor of the result comes from one of the sides.
        known = {e.oid for p in (b, x, y) for e in p.tensors}
        assert {e.oid for e in xy.pointer.tensors} <= known


def test_disjoint_changes_merge_and_keep_a_record() -> None:
    base = _pointer({"a": (4, 0), "b": (4, 0), "c": (8, 0)}, message="base")
    ours = _pointer({"a": (4, 1), "b": (4, 0), "c": (8, 0)}, message="tune a")
    theirs = _pointer({"a": (4, 0), "b": (4, 2), "c": (8, 0)}, message="tune b")
    out = merge(base, ours, theirs)
    assert out.pointer is not None
    assert out.pointer.id == _pointer({"a": (4, 1), "b": (4, 2), "c": (8, 0)}).id
    assert out.from_ours == ("a",) and out.from_theirs == ("b",)
    record = out.pointer.extra[MERGE_KEY]
    assert record["base"] == base.id
    assert record["ours"]["message"] == "tune a" and record["theirs"]["message"] == "tune b"
    assert out.pointer.parent == ours.id


def test_same_tensor_changed_differently_conflicts() -> None:
    base = _pointer({"a": (4, 0), "b": (4, 0)})
    out = merge(base, _pointer({"a": (4, 1), "b": (4, 0)}), _pointer({"a": (4, 2), "b": (4, 0)}))
    assert not out.merged
    assert [c.what for c in out.conflicts] == ["tensor 'a'"]


def test_both_sides_changing_the_header_is_a_conflict() -> None:
    base = _pointer({"a": (4, 0), "b": (4, 0)})
    out = merge(base, _pointer({"a": (8, 0), "b": (4, 0)}), _pointer({"a": (4, 0), "b": (8, 0)}))
    assert not out.merged
    assert out.conflicts[0].what == "header"


def test_a_layout_change_on_one_side_keeps_the_others_contents() -> None:
    # theirs grows "a" (its header changes, "b" moves); ours changes "b"'s values only.
    base = _pointer({"a": (4, 0), "b": (4, 0)})
    ours = _pointer({"a": (4, 0), "b": (4, 1)})
    theirs = _pointer({"a": (8, 0), "b": (4, 0)})
    out = merge(base, ours, theirs)
    assert out.pointer is not None
    assert out.pointer.id == _pointer({"a": (8, 0), "b": (4, 1)}).id


# --------------------------------------------------------------------------
# end to end with git


def _ckpt(
    path: Path, added: dict[str, np.ndarray] | None = None, **changed: float
) -> dict[str, np.ndarray]:
    """Base tensors, with each named tensor filled with the given value, plus ``added``."""
    tensors = {
        "head.weight": np.arange(8 * 16, dtype=np.float32).reshape(8, 16),
        "layers.0.weight": np.arange(16 * 16, dtype=np.float32).reshape(16, 16) / 7,
        "layers.1.weight": np.ones((16, 16), dtype=np.float32),
    }
    for name, value in changed.items():
        key = name.replace("_", ".") + ".weight"
        tensors[key] = np.full(tensors[key].shape, value, dtype=np.float32)
    tensors.update(added or {})
    helpers.write_safetensors(path, tensors)
    return tensors


def _commit_snapshot(repo: Path, rel: str, message: str) -> None:
    run_snap("save", rel, "-m", message, cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", message, cwd=repo)


@pytest.fixture
def branched(dvc_repo: Path) -> Path:
    """gitsnap set up (merge driver included) and a committed base ``model.safetensors``."""
    run_snap("init", cwd=dvc_repo)
    _ckpt(dvc_repo / "model.safetensors")
    _commit_snapshot(dvc_repo, "model.safetensors", "base")
    return dvc_repo


def _branch(
    repo: Path,
    name: str,
    rel: str,
    message: str,
    added: dict[str, np.ndarray] | None = None,
    **changed: float,
) -> None:
    git("checkout", "-q", "-b", name, "main", cwd=repo)
    run_snap("checkout", cwd=repo)
    _ckpt(repo / rel, added, **changed)
    _commit_snapshot(repo, rel, message)


def test_init_configures_the_driver(branched: Path) -> None:
    attrs = (branched / ".gitattributes").read_text().splitlines()
    assert "*.snap merge=gitsnap" in attrs and "*.snap diff=gitsnap" in attrs
    driver = git("config", "merge.gitsnap.driver", cwd=branched).stdout.strip()
    assert driver == "git snap merge-driver %O %A %B %P"
    # A clone has no .git/config entry until install writes it.
    git("config", "--unset", "merge.gitsnap.driver", cwd=branched)
    run_snap("install", cwd=branched)
    assert git("config", "merge.gitsnap.driver", cwd=branched).stdout.strip() == driver


def test_disjoint_tensor_changes_merge_and_restore(branched: Path, tmp_path: Path) -> None:
    _branch(branched, "head", "model.safetensors", "tune head", head=0.5)
    _branch(branched, "layers", "model.safetensors", "tune layer 0", layers_0=-2.0)
    git("checkout", "-q", "head", cwd=branched)
    run_snap("checkout", cwd=branched)
    merged = git("merge", "--no-edit", "layers", cwd=branched)
    assert merged.returncode == 0
    assert not git("diff", "--name-only", "--diff-filter=U", cwd=branched).stdout.strip()
    pointer = loads((branched / "model.safetensors.snap").read_bytes())
    assert pointer.extra[MERGE_KEY]["theirs"]["message"] == "tune layer 0"
    run_snap("checkout", cwd=branched)
    expected = tmp_path / "expected.safetensors"
    _ckpt(expected, head=0.5, layers_0=-2.0)
    assert (branched / "model.safetensors").read_bytes() == expected.read_bytes()
    status = run_snap("status", "--json", cwd=branched)
    assert json.loads(status.stdout)["entries"][0]["state"] == "clean"


def test_same_tensor_changed_on_both_conflicts_then_resolve(branched: Path, tmp_path: Path) -> None:
    _branch(branched, "one", "model.safetensors", "head one", head=1.0)
    _branch(branched, "two", "model.safetensors", "head two", head=2.0)
    git("checkout", "-q", "one", cwd=branched)
    run_snap("checkout", cwd=branched)
    failed = git("merge", "--no-edit", "two", cwd=branched, check=False)
    assert failed.returncode != 0
    assert "cannot merge model.safetensors tensor by tensor" in failed.stderr + failed.stdout
    raw = (branched / "model.safetensors.snap").read_bytes()
    assert is_conflicted(raw) and is_pointer(raw)
    assert b"tensor 'head.weight'" in raw
    assert b"git snap resolve" in raw
    status = run_snap("status", cwd=branched)
    assert "conflicted: model.safetensors" in status.stdout
    assert "git snap resolve" in status.stdout
    checkout = run_snap("checkout", cwd=branched)
    assert "skipped model.safetensors" in checkout.stdout
    show = run_snap("show", "model.safetensors", cwd=branched, check=False)
    assert show.returncode == 3 and "git snap resolve" in show.stderr
    resolved = run_snap("resolve", "model.safetensors", "--theirs", cwd=branched)
    assert "resolved model.safetensors with theirs" in resolved.stdout
    assert not git("diff", "--name-only", "--diff-filter=U", cwd=branched).stdout.strip()
    expected = tmp_path / "two.safetensors"
    _ckpt(expected, head=2.0)
    assert (branched / "model.safetensors").read_bytes() == expected.read_bytes()
    git("commit", "-q", "--no-edit", cwd=branched)
    assert "clean" in run_snap("status", cwd=branched).stdout


def test_resolve_refuses_unsaved_work(branched: Path) -> None:
    _branch(branched, "one", "model.safetensors", "head one", head=1.0)
    _branch(branched, "two", "model.safetensors", "head two", head=2.0)
    git("checkout", "-q", "one", cwd=branched)
    run_snap("checkout", cwd=branched)
    assert git("merge", "--no-edit", "two", cwd=branched, check=False).returncode != 0
    _ckpt(branched / "model.safetensors", head=9.0)  # trained on, never saved
    refused = run_snap("resolve", "model.safetensors", "--base", cwd=branched, check=False)
    assert refused.returncode == 3 and "not saved" in refused.stderr
    assert is_conflicted((branched / "model.safetensors.snap").read_bytes())
    run_snap("resolve", "model.safetensors", "--base", "--force", cwd=branched)
    assert loads((branched / "model.safetensors.snap").read_bytes()).message == "base"


def test_folder_with_disjoint_file_changes_merges(dvc_repo: Path, tmp_path: Path) -> None:
    run_snap("init", cwd=dvc_repo)
    folder = dvc_repo / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text('{"lr": 1}\n')
    (folder / "run.sh").write_text("#!/bin/sh\n")
    _ckpt(folder / "model.safetensors")
    _commit_snapshot(dvc_repo, "ckpt", "base")
    git("checkout", "-q", "-b", "config", cwd=dvc_repo)
    (folder / "config.json").write_text('{"lr": 2}\n')
    _commit_snapshot(dvc_repo, "ckpt", "config")
    git("checkout", "-q", "-b", "weights", "main", cwd=dvc_repo)
    run_snap("checkout", cwd=dvc_repo)
    _ckpt(folder / "model.safetensors", layers_1=3.0)
    (folder / "run.sh").chmod(0o755)  # a mode change is a change of that file too
    _commit_snapshot(dvc_repo, "ckpt", "weights")
    git("checkout", "-q", "config", cwd=dvc_repo)
    run_snap("checkout", cwd=dvc_repo)
    assert git("merge", "--no-edit", "weights", cwd=dvc_repo).returncode == 0
    run_snap("checkout", cwd=dvc_repo)
    assert (folder / "config.json").read_text() == '{"lr": 2}\n'
    assert (folder / "run.sh").stat().st_mode & 0o100
    expected = tmp_path / "w.safetensors"
    _ckpt(expected, layers_1=3.0)
    assert (folder / "model.safetensors").read_bytes() == expected.read_bytes()


def test_driver_added_on_both_sides(tmp_path: Path, git_repo: Path) -> None:
    hostile = "a\x1b[31m\nfake line"
    ptr = _pointer({hostile: (4, 0)}, message="one")
    other = _pointer({hostile: (4, 1)}, message="two\x1b]0;title\x07")
    empty, ours, theirs = tmp_path / "o", tmp_path / "a", tmp_path / "b"
    empty.write_bytes(b"")
    ours.write_text(dumps(ptr))
    theirs.write_text(dumps(ptr))
    run_snap("merge-driver", empty, ours, theirs, "m.safetensors.snap", cwd=git_repo)
    assert loads(ours.read_bytes()).id == ptr.id
    theirs.write_text(dumps(other))
    failed = run_snap(
        "merge-driver", empty, ours, theirs, "m.safetensors.snap", cwd=git_repo, check=False
    )
    assert failed.returncode == 1
    assert is_conflicted(ours.read_bytes())
    # A hostile name reaches neither the summary nor the terminal as a control character.
    summary = ours.read_bytes()
    assert b"\x1b" not in summary and b"\x07" not in summary
    assert all(line.startswith(b"#") for line in summary.splitlines())
    assert b"\x1b" not in failed.stderr.encode()


def test_post_merge_hook_restores_the_merged_weights(branched: Path, tmp_path: Path) -> None:
    run_snap("install", cwd=branched)
    _branch(branched, "head", "model.safetensors", "tune head", head=0.25)
    _branch(branched, "layers", "model.safetensors", "tune layer 1", layers_1=4.0)
    git("checkout", "-q", "head", cwd=branched)  # post-checkout restores head's weights
    git("merge", "--no-edit", "layers", cwd=branched)  # post-merge restores the merged ones
    expected = tmp_path / "expected.safetensors"
    _ckpt(expected, head=0.25, layers_1=4.0)
    assert (branched / "model.safetensors").read_bytes() == expected.read_bytes()
    log = run_snap("log", "model.safetensors", cwd=branched)
    assert log.returncode == 0


def test_torch_files_with_different_changes_conflict(dvc_repo: Path) -> None:
    """A .pt file's zip records hold each storage's CRC: disjoint changes still disagree there."""
    import torch

    run_snap("init", cwd=dvc_repo)

    def write(head: float, body: float) -> None:
        state = {"head": torch.full((4, 4), head), "body": torch.full((8, 4), body)}
        torch.save(state, dvc_repo / "model.pt")

    write(0.0, 0.0)
    _commit_snapshot(dvc_repo, "model.pt", "base")
    git("checkout", "-q", "-b", "head", cwd=dvc_repo)
    write(1.0, 0.0)
    _commit_snapshot(dvc_repo, "model.pt", "head")
    git("checkout", "-q", "-b", "body", "main", cwd=dvc_repo)
    run_snap("checkout", cwd=dvc_repo)
    write(0.0, 1.0)
    _commit_snapshot(dvc_repo, "model.pt", "body")
    git("checkout", "-q", "head", cwd=dvc_repo)
    run_snap("checkout", cwd=dvc_repo)
    failed = git("merge", "--no-edit", "body", cwd=dvc_repo, check=False)
    assert failed.returncode != 0
    summary = (dvc_repo / "model.pt.snap").read_text()
    assert "non-tensor segments" in summary
    run_snap("resolve", "model.pt", "--ours", cwd=dvc_repo)
    assert loads((dvc_repo / "model.pt.snap").read_bytes()).message == "head"


def test_both_sides_changing_the_layout_rebuild_the_header(branched: Path, tmp_path: Path) -> None:
    """Each branch adds a tensor (both headers change): the merged header is written anew."""
    lora = {"lora.A": np.full((4, 16), 0.5, dtype=np.float16)}
    bias = {"head.bias": np.arange(8, dtype=np.float64), "layers.0.scale": np.ones(3, np.int8)}
    _branch(branched, "lora", "model.safetensors", "add lora", lora, head=3.0)
    _branch(branched, "bias", "model.safetensors", "add bias", bias, layers_0=1.5)
    git("checkout", "-q", "lora", cwd=branched)
    run_snap("checkout", cwd=branched)
    git("merge", "--no-edit", "bias", cwd=branched)
    run_snap("checkout", cwd=branched)
    expected = tmp_path / "expected.safetensors"
    _ckpt(expected, {**lora, **bias}, head=3.0, layers_0=1.5)
    assert (branched / "model.safetensors").read_bytes() == expected.read_bytes()
    fsck = run_snap("fsck", cwd=branched)
    assert fsck.returncode == 0


@settings(max_examples=200, deadline=None)
@given(base=_tensor_maps, e1=_edits, e2=_edits, meta=st.integers(0, 1))
def test_rebuilt_headers_are_the_library_s(
    base: dict[str, tuple[int, int]],
    e1: dict[str, tuple[str, int]],
    e2: dict[str, tuple[str, int]],
    meta: int,
) -> None:
    """With real headers a merge of any two layouts either conflicts on a tensor or on
    metadata, or gives exactly the file the safetensors library writes."""
    import safetensors.numpy

    def arrays(spec: dict[str, tuple[int, int]]) -> dict[str, np.ndarray]:
        return {n: np.full(size, token, dtype=np.uint8) for n, (size, token) in spec.items()}

    def real(spec: dict[str, tuple[int, int]], metadata: dict[str, str] | None) -> Pointer:
        data = safetensors.numpy.save(arrays(spec), metadata=metadata)
        header = 8 + int.from_bytes(data[:8], "little")
        entries = [Entry(0, header, blake3.blake3(data[:header]).hexdigest(), role="header")]
        doc = json.loads(data[8:header])
        doc.pop("__metadata__", None)
        for n, info in doc.items():
            begin, end = info["data_offsets"]
            body = data[header + begin : header + end]
            entries.append(Entry(header + begin, end - begin, blake3.blake3(body).hexdigest(),
                                 name=n, dtype="U8", shape=(end - begin,)))  # fmt: skip
        return Pointer(
            id=layout_id(entries, len(data)), path="m.safetensors", format="safetensors",
            size=len(data), tensors=entries[1:], blobs=entries[:1],
            metadata=dict(metadata or {}),
        )  # fmt: skip

    specs = [base, _edit(base, e1), _edit(base, e2)]
    metas = [None, {"m": str(meta)} if meta else None, None]
    b, x, y = (real(spec, m) for spec, m in zip(specs, metas, strict=True))
    out = merge(b, x, y)
    if out.pointer is None:
        return
    merged_spec = {e.name: e for e in out.pointer.tensors}
    contents = {}
    for spec in specs:
        for n, (size, token) in spec.items():
            contents.setdefault((n, size), {})[blake3.blake3(bytes([token]) * size).hexdigest()] = (
                token
            )
    want = {n: (e.size, contents[(n, e.size)][e.oid]) for n, e in merged_spec.items()}
    data = safetensors.numpy.save(arrays(want), metadata=out.pointer.metadata or None)
    assert out.pointer.size == len(data)
    assert out.pointer.id == real(want, out.pointer.metadata or None).id
    [header] = out.pointer.blobs
    assert blake3.blake3(data[: header.size]).hexdigest() == header.oid
    if header.oid not in {p.blobs[0].oid for p in (b, x, y)}:
        assert out.objects[header.oid] == data[: header.size]


def test_a_staged_conflict_summary_is_refused_by_the_hook_and_still_resolves(
    branched: Path, tmp_path: Path
) -> None:
    run_snap("install", cwd=branched)
    _branch(branched, "one", "model.safetensors", "head one", head=1.0)
    _branch(branched, "two", "model.safetensors", "head two", head=2.0)
    git("checkout", "-q", "one", cwd=branched)
    assert git("merge", "--no-edit", "two", cwd=branched, check=False).returncode != 0
    git("add", "model.safetensors.snap", cwd=branched)  # the summary, staged by mistake
    commit = git("commit", "-q", "--no-edit", cwd=branched, check=False)
    assert commit.returncode != 0
    assert "merge conflict" in commit.stderr and "git snap resolve" in commit.stderr
    assert "internal error" not in commit.stderr
    # No index stages any more: resolve takes the sides from HEAD and MERGE_HEAD.
    run_snap("resolve", "model.safetensors", "--theirs", cwd=branched)
    expected = tmp_path / "two.safetensors"
    _ckpt(expected, head=2.0)
    assert (branched / "model.safetensors").read_bytes() == expected.read_bytes()
    git("commit", "-q", "--no-edit", cwd=branched)
