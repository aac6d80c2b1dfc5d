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

Safety (DESIGN D9): the file is never unpickled by running its code. The
zip structure is parsed directly; the tensor list comes from
``torch.load(weights_only=True, map_location="meta")``, whose unpickler only
accepts an allowlist of tensor-rebuilding functions and plain containers and
refuses any other global (``os.system``, ``builtins.eval``, ...) *before*
calling anything. Loading to the meta device reads no tensor data at all: a
storage becomes an empty meta storage that remembers its offset in the file
(``_checkpoint_offset``). Older PyTorch releases lack that attribute; then
the same weights-only load runs with ``mmap=True`` on the CPU, and each
storage's offset is its address minus the address of the file's mapping
(checked to agree for every storage). A refused pickle is a
:class:`FormatError`. torch is imported here only, and lazily (DESIGN D10).

Non-tensor leaves of the object tree (``epoch``, ``step``,
``optimizer.param_groups.0.lr``) become the layout's metadata. Lists of more
than ``MAX_LIST`` scalars (e.g. the parameter ids of an optimizer's param
groups) are left out, and strings are cut at ``MAX_STR`` characters, so the
pointer stays small.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitsnap.errors import FormatError
from gitsnap.formats import raw
from gitsnap.formats._zip import Member
from gitsnap.formats.base import Layout, Segment, TensorInfo, View

NAME = "torch"
LEGACY_NAME = "torch-legacy"
SUFFIXES = frozenset({".pt", ".pth", ".bin", ".ckpt", ".tar"})
MAX_LIST = 8
MAX_STR = 256
MAX_DEPTH = 64
# Locate storages through a meta-device load (reads no tensor bytes); False forces the
# mmap fallback that torch releases without ``_checkpoint_offset`` use.
PREFER_META = True

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


# ------------------------------------------------------------------ dtypes


def _dtype_names() -> dict[Any, str]:
    import torch

    table = {
        "float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16",
        "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2", "float8_e8m0fnu": "F8_E8M0",
        "int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8",
        "uint64": "U64", "uint32": "U32", "uint16": "U16", "uint8": "U8",
        "bool": "BOOL", "complex64": "C64",
    }  # fmt: skip
    return {getattr(torch, k): v for k, v in table.items() if hasattr(torch, k)}


def dtype_name(dtype: Any) -> str:
    """safetensors spelling of a torch dtype (``torch.bfloat16`` -> ``BF16``), else upper-cased."""
    names = _dtype_names()
    return names.get(dtype) or str(dtype).removeprefix("torch.").upper()


# ------------------------------------------------------------------ the object tree


@dataclass
class _Found:
    name: str
    tensor: Any  # a torch.Tensor on the meta device (or an mmapped CPU tensor)
    order: int


@dataclass
class _Tree:
    """What a walk over the loaded object finds: tensors in pickle order, scalar leaves."""

    tensors: list[_Found] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    path_ids: set[int] = field(default_factory=set)  # containers on the current path (cycles)


def _walk(obj: Any, name: str, tree: _Tree, depth: int = 0) -> None:
    import torch

    tensors, meta, path_ids = tree.tensors, tree.meta, tree.path_ids

    if isinstance(obj, torch.Tensor):
        tensors.append(_Found(name, obj, len(tensors)))
        return
    if depth >= MAX_DEPTH or id(obj) in path_ids:
        return
    if isinstance(obj, Mapping):
        path_ids.add(id(obj))
        for k, v in obj.items():
            key = k if isinstance(k, str) else str(k) if isinstance(k, (int, bool)) else None
            if key is not None:
                _walk(v, f"{name}.{key}" if name else key, tree, depth + 1)
        path_ids.discard(id(obj))
        return
    if isinstance(obj, (list, tuple)):
        if len(obj) > MAX_LIST and all(_scalar(v) is not _SKIP for v in obj):
            return  # e.g. param_groups.*.params: hundreds of ints nobody reviews
        path_ids.add(id(obj))
        for i, v in enumerate(obj):
            _walk(v, f"{name}.{i}" if name else str(i), tree, depth + 1)
        path_ids.discard(id(obj))
        return
    value = _scalar(obj)
    if value is not _SKIP:
        meta[name] = value


_SKIP = object()


def _scalar(v: Any) -> Any:
    import torch

    if v is None or isinstance(v, (bool, int)):
        return v
    if isinstance(v, float):
        return v
    if isinstance(v, str):
        return v if len(v) <= MAX_STR else v[:MAX_STR] + "…"
    if isinstance(v, (torch.dtype, torch.device)):
        return str(v)
    if type(v).__module__ == "numpy" and getattr(v, "shape", None) == ():
        return _scalar(v.item())  # a numpy scalar someone allowlisted
    return _SKIP


def _load_tree(path: Path, *, meta_device: bool) -> Any:
    """The object tree, through the weights-only unpickler: refuses code, runs none."""
    import pickle

    import torch

    try:
        if meta_device:
            return torch.load(path, map_location="meta", weights_only=True)
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = next(
            (ln for ln in lines if "GLOBAL" in ln or "nsupported" in ln), lines[-1] if lines else ""
        )
        raise FormatError(
            f"{path}: refusing to read this PyTorch checkpoint: its pickle asks to run code "
            f"that safe (weights-only) loading does not allow: {detail}",
            hint="gitsnap never runs code from a checkpoint. If you trust the file, re-save its "
            "tensors and plain values (dicts, lists, numbers, strings) with torch.save or "
            "safetensors, then save that file",
        ) from None
    except Exception as exc:  # any other failure: a malformed file
        raise _fail(
            path, f"torch.load(weights_only=True) failed: {type(exc).__name__}: {exc}"
        ) from None


def _storage_offsets_from_mmap(
    found: list[_Found], data_offsets: list[int]
) -> dict[int, int] | None:
    """Fallback for torch without ``_checkpoint_offset``: storage address -> file offset.

    An mmapped load slices one mapping of the whole file, so every storage's
    address is ``base + offset``. ``base`` follows from the lowest address and
    the lowest offset; every other storage must then land on a member offset.
    """
    ptrs = sorted(
        {
            f.tensor.untyped_storage().data_ptr()
            for f in found
            if f.tensor.untyped_storage().nbytes()
        }
    )
    offs = sorted(data_offsets)
    if not ptrs or len(ptrs) != len(offs):
        return None
    base = ptrs[0] - offs[0]
    if any(p - base != o for p, o in zip(ptrs, offs, strict=True)):
        return None
    return {p: p - base for p in ptrs}


# ------------------------------------------------------------------ layout


def read_layout(path: Path, fd: int, size: int, members: list[Member], prefix: str) -> Layout:
    storages: dict[int, Member] = {}  # data offset -> member
    pickle_member = None
    torchscript = False
    for m in members:
        rest = m.name[len(prefix) + 1 :]
        if rest.startswith("data/") and "/" not in rest[5:]:
            if not m.stored:
                # Someone re-compressed the archive: storages are not verbatim bytes.
                return raw.read_layout(path, name=NAME)
            storages[m.data_offset] = m
        elif rest == "data.pkl":
            pickle_member = m
        elif rest == "constants.pkl" or rest.startswith("code/"):
            torchscript = True
    assert pickle_member is not None

    tree = _Tree()
    offset_of: dict[int, int] | None = None  # mmap fallback: storage address -> file offset
    if not torchscript:  # TorchScript archives carry code: list their storages only
        use_meta = PREFER_META
        if use_meta:
            _walk(_load_tree(path, meta_device=True), "", tree)
            first = tree.tensors[0].tensor.untyped_storage() if tree.tensors else None
            use_meta = first is None or hasattr(first, "_checkpoint_offset")
        if not use_meta:
            tree = _Tree()
            _walk(_load_tree(path, meta_device=False), "", tree)
            offsets = [o for o, m in storages.items() if m.size]
            offset_of = _storage_offsets_from_mmap(tree.tensors, offsets)
            if offset_of is None:
                tree.tensors.clear()  # cannot tell which storage is which: storages only
    found, meta = tree.tensors, tree.meta

    by_storage: dict[int, list[tuple[_Found, int, int, bool]]] = {o: [] for o in storages}
    for f in found:
        t = f.tensor
        try:
            st = t.untyped_storage()
            if offset_of is None:
                data_off = st._checkpoint_offset
            else:  # empty storages have no address to tell them apart: left out
                data_off = offset_of.get(st.data_ptr()) if st.nbytes() else None
        except (RuntimeError, NotImplementedError, AttributeError):
            continue  # sparse/quantized tensors have no plain storage: left out of the list
        if data_off not in storages:
            continue
        member = storages[data_off]
        item = t.element_size()
        start = t.storage_offset() * item
        numel = t.numel()
        if numel == 0:
            span = 0
        else:
            span = (
                1 + sum((d - 1) * s for d, s in zip(t.shape, t.stride(), strict=True) if d > 0)
            ) * item
        if start < 0 or start + span > member.size:
            raise _fail(
                path, f"tensor {f.name!r} reaches past the end of its storage {member.name!r}"
            )
        by_storage[data_off].append((f, start, span, t.is_contiguous() and span == numel * item))

    names = _dtype_names()
    pieces: list[Segment] = []
    views: list[View] = []
    for data_off, member in storages.items():
        users = by_storage[data_off]
        chosen: list[tuple[_Found, int, int]] = []
        cover = next((u for u in users if u[3] and u[1] == 0 and u[2] == member.size), None)
        if cover is not None:
            chosen = [(cover[0], 0, member.size)]
        else:
            pos = 0
            for f, start, span, _ in sorted(
                (u for u in users if u[3] and u[2] > 0), key=lambda u: (u[1], u[0].order)
            ):
                if start >= pos:
                    chosen.append((f, start, span))
                    pos = start + span
        chosen_ids = {id(c[0]) for c in chosen}
        pos = 0
        for f, start, span in chosen:
            if start > pos:
                pieces.append(Segment(data_off + pos, start - pos, "storage"))
            pieces.append(Segment(data_off + start, span, "tensor", _info(f, names)))
            pos = start + span
        if pos < member.size or (member.size == 0 and not chosen):
            pieces.append(Segment(data_off + pos, member.size - pos, "storage"))
        for f, start, span, contiguous in users:
            if id(f) not in chosen_ids:
                stride = None if contiguous else tuple(int(s) for s in f.tensor.stride())
                views.append(View(_info(f, names), data_off + start, span, stride))
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
    return Layout(NAME, size, segments, dict(sorted(meta.items())), views)


def _info(f: _Found, names: dict[Any, str]) -> TensorInfo:
    t = f.tensor
    return TensorInfo(
        f.name, names.get(t.dtype) or dtype_name(t.dtype), tuple(int(d) for d in t.shape)
    )
