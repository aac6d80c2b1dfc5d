"""PyTorch checkpoints in ``torch.save``'s zip format (``.pt``, ``.pth``, ``.bin``, ``.ckpt``).

A ``torch.save`` file is a zip archive, written uncompressed:
``<prefix>/data.pkl`` (the pickled object tree), a few small records
(``byteorder``, ``version``, ...), and one member ``<prefix>/data/<key>`` per
tensor *storage*, its raw bytes aligned to 64. Segmentation (DESIGN D1):

* each storage's bytes are a segment of their own, so an optimizer-only or a
  head-only change stores only the storages that changed. When one tensor
  covers its storage exactly (the usual case) the segment *is* that tensor
  and carries its name, dtype, shape and stats. When a storage holds several
  tensors side by side (parameters that are views of one flat buffer) it is
  split at their boundaries, one segment per tensor;
* the pickle is one ``pickle`` segment; local headers, data descriptors,
  the small records and the central directory are ``zip`` segments (tens of
  bytes each between storages).

Tensors that cannot be segments -- a second name for the same storage (tied
weights), a slice, a transposed or otherwise strided view -- are
:class:`~gitsnap.formats.base.View` s: they name the bytes of the file they
span, which other segments hold.

Safety (DESIGN D9, D16): the file is never unpickled and torch is never
imported. The zip structure is parsed directly, and ``data.pkl`` is run by
gitsnap's own pickle VM (:mod:`gitsnap.formats.pickle_vm`), which turns every
global into an inert placeholder and records calls instead of making them;
the tensors are the rebuild calls found in that tree
(:mod:`gitsnap.formats.torch_pickle`), each storage located by its key
(``data/<key>``). Every global the pickle names is recorded on the layout
with its class (:mod:`gitsnap.formats.pickle_globals`) so that saving can
judge it. A pickle stored deflated is inflated up to ``MAX_PICKLE`` bytes.

Non-tensor leaves of the object tree (``epoch``, ``step``,
``optimizer.param_groups.0.lr``) become the layout's metadata. Lists of more
than ``MAX_LIST`` scalars (e.g. the parameter ids of an optimizer's param
groups) are left out, and strings are cut at ``MAX_STR`` characters, so the
pointer stays small.

A Lightning checkpoint's optimizer moments are named by their parameter
(``optimizer_states.0.state[layer.weight].exp_avg``) when its structure makes
the mapping certain (:func:`~gitsnap.formats.torch_pickle.name_moments`), by
index otherwise.

Legacy (pre-1.6, non-zip) files are several pickles followed by the raw
storages: they stay opaque CDC chunks (no tensor list), but their pickles are
run by the same VM so that their globals are recorded and judged too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gitsnap.errors import FormatError, PickleError
from gitsnap.formats import _zip, pickle_globals, pickle_vm, raw
from gitsnap.formats import torch_pickle as tp
from gitsnap.formats._zip import Member
from gitsnap.formats.base import Layout, PickleGlobal, Segment, TensorInfo, View

NAME = "torch"
LEGACY_NAME = "torch-legacy"
SUFFIXES = frozenset({".pt", ".pth", ".bin", ".ckpt", ".tar"})
MAX_LIST = tp.MAX_LIST
MAX_STR = tp.MAX_STR
# data.pkl holds the object tree, not tensor bytes: a few MB for the largest models.
MAX_PICKLE = 64 * 1024 * 1024
# A legacy file: magic number, protocol, system info, the object tree (then storage keys).
_LEGACY_PICKLES = 4

# The magic number a legacy (pre-1.6, non-zip) torch.save pickles first.
_LEGACY_HEAD = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"


def sniff_legacy(head: bytes) -> bool:
    return head.startswith(_LEGACY_HEAD)


def archive_prefix(members: list[Member]) -> str | None:
    """``prefix`` if the archive is a torch.save zip (``prefix/data.pkl``, all members below)."""
    for m in members:
        parts = m.name.split("/")
        if len(parts) == 2 and parts[1] == "data.pkl":
            prefix = parts[0]
            if all(x.name.startswith(prefix + "/") for x in members):
                return prefix
    return None


def _fail(path: Path, what: str) -> FormatError:
    return FormatError(
        f"{path}: not a valid PyTorch checkpoint: {what}",
        hint="the file may be truncated or still being written; save it again with torch.save",
    )


# ------------------------------------------------------------------ the pickle


def _run(path: Path, data: bytes) -> pickle_vm.Result:
    try:
        return pickle_vm.run(data)
    except PickleError as exc:
        raise _fail(path, f"its pickle (data.pkl) is malformed: {exc}") from None


def read_legacy(path: Path, fd: int, size: int) -> Layout:
    """A pre-1.6 ``torch.save`` file: opaque chunks, plus the globals its pickles name."""
    found: dict[str, PickleGlobal] = {}
    want = min(size, 1 << 20)
    while True:
        data = os.pread(fd, want, 0)
        try:
            pos = 0
            for _ in range(_LEGACY_PICKLES):
                result, pos = pickle_vm.run_prefix(data, pos)
                for pg in pickle_globals.judge(result):
                    found.setdefault(pg.name, pg)
            break
        except PickleError as exc:
            # The pickles may run past what was read so far: read more, up to the bound.
            if want >= min(size, MAX_PICKLE) or (
                "truncated" not in str(exc) and "ends" not in str(exc)
            ):
                raise _fail(path, f"its pickles are malformed: {exc}") from None
            want = min(size, MAX_PICKLE, want * 4)
            found.clear()
    layout = raw.read_layout(path, name=LEGACY_NAME)
    globals_ = tuple(sorted(found.values(), key=lambda pg: pg.name))
    return Layout(layout.format, layout.size, layout.segments, {}, [], globals_)


# ------------------------------------------------------------------ layout


def read_layout(path: Path, fd: int, size: int, members: list[Member], prefix: str) -> Layout:
    storages: dict[str, Member] = {}  # key -> member
    pickle_member = None
    torchscript = False
    compressed = False
    for m in members:
        rest = m.name[len(prefix) + 1 :]
        if rest.startswith("data/") and "/" not in rest[5:]:
            if not m.stored:
                compressed = True  # someone re-compressed the archive: not verbatim bytes
            storages[rest[5:]] = m
        elif rest == "data.pkl":
            pickle_member = m
        elif rest == "constants.pkl" or rest.startswith("code/"):
            torchscript = True
    if pickle_member is None:  # pragma: no cover - archive_prefix found it
        raise _fail(path, "no data.pkl")

    result = _run(path, _zip.read_member(fd, pickle_member, MAX_PICKLE, path))
    globals_ = pickle_globals.judge(result)
    if compressed or not pickle_member.stored:
        layout = raw.read_layout(path, name=NAME)
        leaves = {} if torchscript else _tree(path, result).metadata
        return Layout(NAME, size, layout.segments, dict(sorted(leaves.items())), [], globals_)

    found: list[tp.TensorRef] = []
    meta: dict[str, Any] = {}
    if not torchscript:  # TorchScript archives carry code: list their storages only
        tree = _tree(path, result)
        found, meta = tp.name_moments(result.value, tree.tensors), tree.metadata

    by_storage: dict[str, list[tuple[tp.TensorRef, int, int, bool]]] = {k: [] for k in storages}
    for t in found:
        member = storages.get(t.storage.key)
        if member is None:
            raise _fail(path, f"tensor {t.name!r} names storage {t.storage.key!r}, not in the file")
        start = t.offset * t.itemsize
        span = t.span
        if start + span > member.size:
            raise _fail(
                path, f"tensor {t.name!r} reaches past the end of its storage {member.name!r}"
            )
        by_storage[t.storage.key].append(
            (t, start, span, t.contiguous and span == t.numel * t.itemsize)
        )

    pieces: list[Segment] = []
    views: list[View] = []
    for key, member in sorted(storages.items(), key=lambda kv: kv[1].data_offset):
        data_off = member.data_offset
        users = by_storage[key]
        chosen: list[tuple[tp.TensorRef, int, int]] = []
        cover = next((u for u in users if u[3] and u[1] == 0 and u[2] == member.size), None)
        if cover is not None:
            chosen = [(cover[0], 0, member.size)]
        else:
            pos = 0
            for t, start, span, _ in sorted(
                (u for u in users if u[3] and u[2] > 0), key=lambda u: (u[1], u[0].order)
            ):
                if start >= pos:
                    chosen.append((t, start, span))
                    pos = start + span
        chosen_ids = {id(c[0]) for c in chosen}
        pos = 0
        for t, start, span in chosen:
            if start > pos:
                pieces.append(Segment(data_off + pos, start - pos, "storage"))
            pieces.append(Segment(data_off + start, span, "tensor", _info(t)))
            pos = start + span
        if pos < member.size or (member.size == 0 and not chosen):
            pieces.append(Segment(data_off + pos, member.size - pos, "storage"))
        for t, start, span, contiguous in users:
            if id(t) not in chosen_ids:
                stride = None if contiguous else t.stride
                views.append(View(_info(t), data_off + start, span, stride))
    pieces.append(Segment(pickle_member.data_offset, pickle_member.size, "pickle"))
    pieces.sort(key=lambda s: (s.offset, s.size))

    segments: list[Segment] = []
    pos = 0
    for seg in [*pieces, Segment(size, 0, "end")]:
        if seg.offset < pos:
            raise _fail(path, f"storage bytes at offset {seg.offset} overlap other archive data")
        # Headers, descriptors and small records; an unexpected big member gets CDC chunks.
        segments += raw.segments(fd, pos, seg.offset, role="zip")
        if seg.role != "end":
            segments.append(seg)
        pos = seg.offset + seg.size
    views.sort(key=lambda v: (v.offset, v.tensor.name))
    return Layout(NAME, size, segments, dict(sorted(meta.items())), views, globals_)


def _tree(path: Path, result: pickle_vm.Result) -> tp.Tree:
    try:
        return tp.walk(result.value)
    except PickleError as exc:
        raise _fail(path, str(exc)) from None


def _info(t: tp.TensorRef) -> TensorInfo:
    return TensorInfo(t.name, t.dtype, t.shape)
