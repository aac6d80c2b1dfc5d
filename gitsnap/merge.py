"""Three-way merge of snapshots, tensor by tensor: what ``git merge`` of a ``.snap`` runs.

Pure: pointers in, a pointer or a list of conflicts out; no file, git or
store is touched (:mod:`gitsnap.commands.resolve` is the merge driver around it).

The rules, applied file by file (a single-file checkpoint is one file):

- a file changed on one side only is taken from that side; changed the same
  way on both sides, it merges; deleted on one side and unchanged on the
  other, it goes;
- a file changed differently on both sides is merged tensor by tensor when
  it is a safetensors or PyTorch file: a tensor changed on one side only is
  taken from that side, the same change on both sides merges, a tensor
  changed differently on both sides is a conflict;
- the merged file must be a checkpoint that really exists byte for byte
  with no new object: its non-tensor segments (the safetensors header, a
  PyTorch file's pickle and zip records) are taken whole from one side, and
  every chosen tensor must fit that side's layout (same dtype, shape and
  size, so its bytes go at that side's offset). A safetensors header changed
  on one side only is that side's. Changed on both sides (each added,
  removed or reshaped tensors), it is rebuilt -- only when every side's own
  header is byte for byte what :func:`safetensors_header` writes for that
  side (the safetensors library's layout, no gaps) and ``__metadata__``
  merges key by key; the new header is an object the caller must store
  (:attr:`MergeOutcome.objects`). A PyTorch file merges only when both sides'
  non-tensor segments agree: its zip records carry each storage's CRC, so
  two sides that changed different storages never agree, and are a conflict;
- any other file (config, tokenizer, chunks of a raw file) changed
  differently on both sides is a conflict.

The merged pointer's id is computed as a save computes it (:func:`layout_id`),
so the merged checkpoint restores byte-exactly from objects both branches
already stored. Its record of the merge (top-level ``merge`` key, kept by
every reader as an unknown key) holds the base id and each side's id,
message, metrics and params; ``parent`` is ours (the branch merged into),
the ``merge`` record names theirs. Metrics describe weights that were
measured: the merged pointer keeps them only when its weights are one side's.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gitsnap.pointer.model import Entry, FileEntry, Pointer, layout_id

# Formats whose non-tensor segments are known to describe only the tensors'
# names, dtypes, shapes and offsets (or, for PyTorch, to be compared whole).
SAFETENSORS = "safetensors"
TORCH = ("torch", "torch-legacy")
MERGE_KEY = "merge"  # the top-level key of the merge record
MAX_SHOWN = 20  # conflicts listed in the summary; the rest are counted


@dataclass(frozen=True)
class Conflict:
    """One thing the two sides changed in ways that cannot both hold."""

    what: str  # "tensor 'head.weight'", "file config.json", "header of model.safetensors"
    reason: str


@dataclass(frozen=True)
class MergeOutcome:
    """A merged pointer, or the conflicts that prevent one (never both)."""

    pointer: Pointer | None
    conflicts: tuple[Conflict, ...] = ()
    from_ours: tuple[str, ...] = ()  # tensors (and whole files) taken from ours / theirs
    from_theirs: tuple[str, ...] = ()
    # Objects the merged snapshot needs that neither side stored (a rebuilt
    # safetensors header): the caller puts them in the store.
    objects: dict[str, bytes] = dataclasses.field(default_factory=dict)

    @property
    def merged(self) -> bool:
        return self.pointer is not None


# ------------------------------------------------------------------ one file of a checkpoint


@dataclass(frozen=True)
class _File:
    """One file of a snapshot: its entry, its segments and views, its metadata."""

    entry: FileEntry
    tensors: tuple[Entry, ...]  # views included
    blobs: tuple[Entry, ...]
    metadata: tuple[tuple[str, Any], ...]

    def signature(self) -> tuple[Any, ...]:
        """Equal exactly when the two files hold the same bytes, mode, metadata and views."""
        return (
            self.entry.size,
            self.entry.format,
            self.entry.executable,
            tuple(sorted(_sig(e) for e in self.tensors)),
            tuple(sorted(_sig(e) for e in self.blobs)),
            self.metadata,
        )

    def frame(self) -> tuple[Any, ...]:
        """The non-tensor segments (header, gaps, pickle, zip records), in offset order."""
        return tuple(sorted(_sig(e) for e in self.blobs))

    def views(self) -> tuple[Any, ...]:
        return tuple(sorted(_sig(e) for e in self.tensors if e.view))

    def named(self) -> dict[str, Entry]:
        return {e.name or "": e for e in self.tensors if not e.view}


def _sig(e: Entry) -> tuple[Any, ...]:
    return (e.offset, e.size, e.oid, e.name or "", e.dtype or "", e.shape or (), e.role or "",
            e.view, e.stride or ())  # fmt: skip


def _content(e: Entry | None) -> tuple[Any, ...] | None:
    """What a tensor *is*, wherever it lies in the file: equal contents compare equal."""
    return None if e is None else (e.dtype, e.shape, e.size, e.oid)


def _files(ptr: Pointer) -> dict[str, _File]:
    """A snapshot as files; a single-file checkpoint is the one file ``""``."""
    if not ptr.files:
        entry = FileEntry("", ptr.size, ptr.format)
        meta = tuple(sorted(ptr.metadata.items()))
        return {"": _File(entry, tuple(ptr.tensors), tuple(ptr.blobs), meta)}
    out = {}
    for f in ptr.files:
        prefix = f.path + ":"
        meta = tuple(sorted((k, v) for k, v in ptr.metadata.items() if k.startswith(prefix)))
        out[f.path] = _File(
            f,
            tuple(e for e in ptr.tensors if e.file == f.path),
            tuple(e for e in ptr.blobs if e.file == f.path),
            meta,
        )
    return out


def _three_way(base: Any, ours: Any, theirs: Any) -> str | None:
    """Which side wins ("ours" / "theirs"), or None for a conflict; compares by ``==``."""
    if theirs in (ours, base):
        return "ours"
    if base == ours:
        return "theirs"
    return None


def _change(base: Any, side: Any) -> str:
    if base is None:
        return "added"
    return "deleted" if side is None else "changed"


# ------------------------------------------------------------------ the merge


def merge(base: Pointer | None, ours: Pointer | None, theirs: Pointer | None) -> MergeOutcome:
    """Merge two snapshots of one checkpoint against their common ancestor ``base``.

    ``None`` is a side without the pointer (added on both sides: no base).
    Example::

        outcome = merge(base, ours, theirs)
        if outcome.merged:
            text = gitsnap.pointer.dumps(outcome.pointer)
        else:
            for c in outcome.conflicts:
                print(c.what, c.reason)
    """
    early = _whole(base, ours, theirs)
    if early is not None:
        return early
    assert ours is not None and theirs is not None  # _whole answered every other case
    fmt_side = _three_way(base.format if base else None, ours.format, theirs.format)
    if fmt_side is None:
        return MergeOutcome(
            None,
            (
                Conflict(
                    "the checkpoint", f"format {ours.format} on ours, {theirs.format} on theirs"
                ),
            ),
        )
    b_files = _files(base) if base is not None and bool(base.files) == bool(ours.files) else {}
    o_files, t_files = _files(ours), _files(theirs)
    names = sorted(set(b_files) | set(o_files) | set(t_files))
    merged: dict[str, _File] = {}
    conflicts: list[Conflict] = []
    from_ours: list[str] = []
    from_theirs: list[str] = []
    objects: dict[str, bytes] = {}
    for name in names:
        b, o, t = b_files.get(name), o_files.get(name), t_files.get(name)
        side = _three_way(*(x.signature() if x else None for x in (b, o, t)))
        label = f"file {name}" if name else "the checkpoint"
        if side is not None:
            chosen = o if side == "ours" else t
            if chosen is not None:
                merged[name] = chosen
            if name and (b.signature() if b else None) != (chosen.signature() if chosen else None):
                (from_ours if side == "ours" else from_theirs).append(name)
            continue
        if o is None or t is None:
            gone = "ours" if o is None else "theirs"
            conflicts.append(Conflict(label, f"deleted on {gone}, changed on the other side"))
            continue
        result = _merge_file(name, b, o, t)
        if isinstance(result, list):
            conflicts += result
            continue
        merged[name], taken_o, taken_t, new_objects = result
        objects.update(new_objects)
        from_ours += taken_o
        from_theirs += taken_t
    if conflicts:
        return MergeOutcome(None, tuple(conflicts))
    if not merged:
        return MergeOutcome(None, (Conflict("the checkpoint", "no file is left after the merge"),))
    ptr = _assemble(
        base, ours, theirs, merged, ours.format if fmt_side == "ours" else theirs.format
    )
    return MergeOutcome(ptr, (), tuple(from_ours), tuple(from_theirs), objects)


def _whole(
    base: Pointer | None, ours: Pointer | None, theirs: Pointer | None
) -> MergeOutcome | None:
    """The outcome when the pointers decide it whole (a side absent, unchanged, a kind change)."""
    if ours is None or theirs is None:
        if ours is None and theirs is None:
            return MergeOutcome(None, (Conflict("the pointer", "deleted on both sides"),))
        kept = "theirs" if ours is None else "ours"
        return MergeOutcome(
            None,
            (Conflict("the pointer", f"deleted on one side, kept or changed on {kept}"),),
        )
    if theirs in (ours, base):
        return MergeOutcome(ours)
    if base == ours:
        return MergeOutcome(theirs)
    if bool(ours.files) != bool(theirs.files):
        return MergeOutcome(
            None, (Conflict("the checkpoint", "a folder on one side, a single file on the other"),)
        )
    return None


def _merge_file(  # noqa: PLR0911 - one return per reason a file cannot merge
    name: str, b: _File | None, o: _File, t: _File
) -> tuple[_File, list[str], list[str], dict[str, bytes]] | list[Conflict]:
    """A file both sides changed: merge its tensors, or say why not.

    Also returns the new objects the merged file needs (a rebuilt header).
    """
    where = f" of {name}" if name else ""
    label = f"file {name}" if name else "the checkpoint"
    fmt = o.entry.format
    if t.entry.format != fmt:
        return [Conflict(label, f"a {fmt} file on ours, a {t.entry.format} file on theirs")]
    if fmt in TORCH and (o.frame() != t.frame() or o.views() != t.views()):
        return [
            Conflict(
                label,
                "a PyTorch file whose non-tensor segments (pickle, zip records with each "
                "storage's CRC) differ between the sides; it cannot be merged tensor by tensor",
            )
        ]
    if fmt != SAFETENSORS and fmt not in TORCH:
        return [
            Conflict(label, f"changed on both sides; a {fmt or 'raw'} file merges only as a whole")
        ]
    chosen, taken_o, taken_t, conflicts = _choose_tensors(b, o, t, where)
    if conflicts:
        return conflicts
    done = ([f"{n}{where}" for n in taken_o], [f"{n}{where}" for n in taken_t])
    frame_side = _three_way(b.frame() if b else None, o.frame(), t.frame())
    if fmt in TORCH:
        frame_side = "ours"  # both sides' frames are equal (checked above)
    if frame_side is not None:
        frame = o if frame_side == "ours" else t
        kept = _fit_layout(frame, chosen)
        if kept is not None:
            return kept, *done, {}
        if fmt in TORCH:
            return [
                Conflict(
                    f"tensor {n!r}{where}",
                    "its dtype, shape or presence does not fit the PyTorch file's layout",
                )
                for n in _misfits(frame, chosen)
            ]
    rebuilt = _rebuild(name, (b, o, t), chosen, where)
    if isinstance(rebuilt, list):
        return rebuilt
    merged, objects = rebuilt
    return merged, *done, objects


def _choose_tensors(
    b: _File | None, o: _File, t: _File, where: str
) -> tuple[dict[str, Entry], list[str], list[str], list[Conflict]]:
    """Three-way by tensor name on contents (dtype, shape, bytes), wherever they lie."""
    b_named = b.named() if b else {}
    o_named, t_named = o.named(), t.named()
    chosen: dict[str, Entry] = {}
    taken_o: list[str] = []
    taken_t: list[str] = []
    conflicts: list[Conflict] = []
    for tname in _ordered(o_named, t_named, b_named):
        be, oe, te = b_named.get(tname), o_named.get(tname), t_named.get(tname)
        side = _three_way(_content(be), _content(oe), _content(te))
        if side is None:
            conflicts.append(
                Conflict(
                    f"tensor {tname!r}{where}",
                    f"{_change(be, oe)} on ours ({_oid(oe)}), "
                    f"{_change(be, te)} on theirs ({_oid(te)})",
                )
            )
            continue
        entry = oe if side == "ours" else te
        if entry is not None:
            chosen[tname] = entry
        if _content(be) != _content(entry):
            (taken_o if side == "ours" else taken_t).append(tname)
    return chosen, taken_o, taken_t, conflicts


def _misfits(frame: _File, chosen: dict[str, Entry]) -> list[str]:
    layout = frame.named()
    return sorted(set(chosen) ^ set(layout)) + sorted(
        n for n in set(chosen) & set(layout) if not _fits(chosen[n], layout[n])
    )


def _fit_layout(frame: _File, chosen: dict[str, Entry]) -> _File | None:
    """The chosen tensors in ``frame``'s layout (same dtype, shape, size each), or None."""
    if _misfits(frame, chosen):
        return None
    tensors = [
        dataclasses.replace(chosen[e.name or ""], offset=e.offset, file=e.file) if not e.view else e
        for e in frame.tensors
    ]
    return _File(frame.entry, tuple(tensors), frame.blobs, frame.metadata)


def _rebuild(
    name: str, sides: tuple[_File | None, _File, _File], chosen: dict[str, Entry], where: str
) -> tuple[_File, dict[str, bytes]] | list[Conflict]:
    """A safetensors file whose layout both sides changed: write the header anew.

    Only when the header is certain to be the one the safetensors library
    writes for the merged tensors: every side's own header must be exactly
    what :func:`safetensors_header` gives for that side (same writer
    conventions, no gaps), and ``__metadata__`` must merge key by key.
    """
    what = f"header{where}"
    prefix = f"{name}:" if name else ""
    b, o, t = sides
    for label, f in (("base", b), ("ours", o), ("theirs", t)):
        if f is None:
            continue
        if len(f.blobs) != 1 or f.blobs[0].role != "header":
            why = "file holds bytes outside its tensors"
            return [Conflict(what, f"both sides changed the layout, and {label}'s {why}")]
        built = safetensors_header(f.named().values(), _unprefixed(f, prefix))
        if built is None or _hash(built[0]) != f.blobs[0].oid:
            why = "header is not in the form gitsnap can rebuild exactly"
            return [Conflict(what, f"both sides changed the layout, and {label}'s {why}")]
    meta_b = _unprefixed(b, prefix) if b else {}
    meta_o, meta_t = _unprefixed(o, prefix), _unprefixed(t, prefix)
    metadata: dict[str, str] = {}
    for key in sorted(set(meta_b) | set(meta_o) | set(meta_t)):
        side = _three_way(meta_b.get(key), meta_o.get(key), meta_t.get(key))
        if side is None:
            return [Conflict(what, f"__metadata__ {key!r} changed differently on both sides")]
        value = (meta_o if side == "ours" else meta_t).get(key)
        if value is not None:
            metadata[key] = value
    built = safetensors_header(chosen.values(), metadata)
    if built is None:
        return [Conflict(what, "a tensor of the merge has a dtype gitsnap cannot lay out")]
    header, offsets = built
    oid = _hash(header)
    file = o.entry.path or None
    tensors = tuple(
        dataclasses.replace(e, offset=len(header) + offsets[e.name or ""], file=file)
        for e in sorted(chosen.values(), key=lambda e: offsets[e.name or ""])
    )
    size = len(header) + sum(e.size for e in tensors)
    blobs = (Entry(0, len(header), oid, role="header", file=file),)
    entry = dataclasses.replace(o.entry, size=size)
    meta = tuple(sorted((prefix + k, v) for k, v in metadata.items()))
    return _File(entry, tensors, blobs, meta), {oid: header}


def _unprefixed(f: _File, prefix: str) -> dict[str, str]:
    return {k[len(prefix) :]: str(v) for k, v in f.metadata}


def _hash(data: bytes) -> str:
    import blake3

    return str(blake3.blake3(data).hexdigest())


def safetensors_header(
    tensors: Iterable[Entry], metadata: dict[str, str]
) -> tuple[bytes, dict[str, int]] | None:
    """The header the safetensors library writes for these tensors, and each one's data offset.

    The library lays tensors out by item size, largest first, then by name;
    writes compact JSON (``__metadata__`` first, when there is any) and pads
    it with spaces to a multiple of 8 bytes. None when a dtype is unknown.
    Callers check the result against a real header before trusting it
    (metadata order, for one, is the writer's own).
    """
    import struct

    from gitsnap.formats.safetensors import ITEM_BITS

    items = list(tensors)
    if any(e.dtype not in ITEM_BITS for e in items):
        return None
    items.sort(key=lambda e: (-ITEM_BITS[e.dtype or ""], e.name or ""))
    doc: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    offsets: dict[str, int] = {}
    pos = 0
    for e in items:
        doc[e.name or ""] = {"dtype": e.dtype, "shape": list(e.shape or ()),
                             "data_offsets": [pos, pos + e.size]}  # fmt: skip
        offsets[e.name or ""] = pos
        pos += e.size
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text, offsets


def _fits(a: Entry, b: Entry) -> bool:
    """Whether tensor ``a``'s bytes can stand where ``b`` lies: same dtype, shape and size."""
    return (a.dtype, a.shape, a.size) == (b.dtype, b.shape, b.size)


def _ordered(*maps: dict[str, Entry]) -> list[str]:
    seen: dict[str, None] = {}
    for m in maps:
        seen.update(dict.fromkeys(m))
    return list(seen)


def _oid(e: Entry | None) -> str:
    return "absent" if e is None else f"{e.dtype}{list(e.shape or ())} {e.oid[:12]}"


def _assemble(
    base: Pointer | None, ours: Pointer, theirs: Pointer, files: dict[str, _File], fmt: str
) -> Pointer:
    tensors = [e for f in files.values() for e in f.tensors]
    blobs = [e for f in files.values() for e in f.blobs]
    tensors.sort(key=lambda e: (e.file or "", e.offset, e.view, e.size))
    blobs.sort(key=lambda e: (e.file or "", e.offset, e.size))
    metadata = dict(kv for f in files.values() for kv in f.metadata)
    folder = bool(ours.files)
    entries = [f.entry for f in files.values()] if folder else []
    size = sum(f.entry.size for f in files.values())
    new_id = layout_id([*tensors, *blobs], size, entries if folder else None)
    if new_id == ours.id:
        metrics, parent = dict(ours.metrics), ours.parent
    else:
        metrics = dict(theirs.metrics) if new_id == theirs.id else {}
        parent = ours.id
    if ours.message == theirs.message:
        message = ours.message
    else:
        message = f"merge of snapshots {ours.id[:12]} and {theirs.id[:12]}"
    extra = {k: v for k, v in ours.extra.items() if k != MERGE_KEY}
    extra[MERGE_KEY] = {
        "base": base.id if base is not None else None,
        "ours": _record(ours),
        "theirs": _record(theirs),
    }
    return Pointer(
        id=new_id,
        path=ours.path,
        format=fmt,
        size=size,
        tensors=tensors,
        blobs=blobs,
        parent=parent,
        created=max(ours.created, theirs.created),
        message=message,
        metrics=metrics,
        params=_merge_params(base.params if base else {}, ours.params, theirs.params),
        tool=dict(ours.tool),
        env=dict(ours.env),
        metadata=metadata,
        extra=extra,
        files=entries,
    )


def _record(ptr: Pointer) -> dict[str, Any]:
    return {
        "id": ptr.id,
        "message": ptr.message,
        "metrics": dict(ptr.metrics),
        "params": dict(ptr.params),
    }


def _merge_params(
    base: dict[str, Any], ours: dict[str, Any], theirs: dict[str, Any]
) -> dict[str, Any]:
    """Key by key as tensors; a key both sides set differently is left out (the record has both)."""
    out = {}
    for key in sorted(set(base) | set(ours) | set(theirs)):
        missing = object()
        b, o, t = (d.get(key, missing) for d in (base, ours, theirs))
        side = _three_way(b, o, t)
        if side is None:
            continue
        value = o if side == "ours" else t
        if value is not missing:
            out[key] = value
    return out


# ------------------------------------------------------------------ the conflict summary


def conflict_text(
    path: str,
    conflicts: Sequence[Conflict],
    sides: Iterable[tuple[str, Pointer | None]],
) -> str:
    """The readable summary the merge driver leaves in a conflicted pointer file.

    Every line is a YAML comment, and the first is :data:`gitsnap.pointer.peek.CONFLICT_HEAD`,
    by which every command recognises a pointer in conflict. Names from the
    pointers are JSON-quoted, so no control character reaches a terminal.
    """
    from gitsnap.pointer.peek import CONFLICT_HEAD

    shown = json.dumps(path)
    lines = [f"{CONFLICT_HEAD.decode()} in {shown}: the branches changed it in ways that "
             "cannot both hold"]  # fmt: skip
    for label, ptr in sides:
        if ptr is None:
            lines.append(f"#   {label:<7} no snapshot")
        else:
            lines.append(f"#   {label:<7} snapshot {ptr.id[:12]}  {json.dumps(ptr.message)}")
    lines.append("# conflicts:")
    for c in conflicts[:MAX_SHOWN]:
        lines.append(f"#   {_printable(c.what)}: {_printable(c.reason)}")
    if len(conflicts) > MAX_SHOWN:
        lines.append(f"#   ... and {len(conflicts) - MAX_SHOWN} more")
    lines += [
        "# to end the conflict, choose one side's weights (the pointer is written and staged,",
        "# the checkpoint restored):",
        f"#   git snap resolve {shown} --ours | --theirs | --base",
    ]
    return "\n".join(lines) + "\n"


def _printable(text: str) -> str:
    # JSON escapes control characters (ESC, newlines); the quotes it adds are dropped.
    return json.dumps(text, ensure_ascii=False)[1:-1]


__all__ = ["MERGE_KEY", "Conflict", "MergeOutcome", "conflict_text", "merge", "safetensors_header"]
