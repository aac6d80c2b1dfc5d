"""``git snap du``: logical size, stored bytes and dedup ratio per model and in total.

Per model and in total: the logical size (the sum of the sizes of the
distinct live snapshots), the bytes stored (each distinct object once), the
bytes of those in the local store, and the dedup ratio logical / stored.

``--remote`` (:func:`du_remote`) measures the same snapshots on the DVC
remote: the bytes the remote holds for them (packed members as stored --
compressed, delta-encoded -- and loose objects), each stored form's share,
the packs and loose objects, and what no snapshot in scope needs (garbage).
It costs one listing of the object area and one of the pack area, plus the
pack indexes not read before (cached, :func:`gitsnap.remote.packs.load`):
each index records its members' codec, so no member is read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitsnap.liveness import LiveSnapshot, live_snapshots
from gitsnap.workspace import Workspace

if TYPE_CHECKING:
    from gitsnap.remote import Remote


@dataclass(frozen=True)
class DuEntry:
    name: str | None  # model name (None: no name, see docs/registry.md)
    path: str
    snapshots: int  # distinct live snapshots
    objects: int  # distinct objects they need
    logical_bytes: int  # sum of the snapshots' sizes
    stored_bytes: int  # each distinct object once
    local_bytes: int  # of those, present in the local store
    dedup_ratio: float  # logical / stored (1.0 when nothing is stored)


@dataclass(frozen=True)
class DuResult:
    models: list[DuEntry]
    total: DuEntry  # objects shared between models count once
    store_objects: int  # everything in the local store, referenced or not
    store_bytes: int
    unreferenced_objects: int  # in the store, needed by no live snapshot (gc's candidates)
    unreferenced_bytes: int
    store_packs: int = 0  # pack files in the local store (storage v2)
    packed_objects: int = 0  # objects held in them (the rest are loose files)


def _entry(name: str | None, path: str, snaps: list[LiveSnapshot], local: set[str]) -> DuEntry:
    sizes: dict[str, int] = {}
    for snap in snaps:
        for seg in snap.segments:
            sizes[seg.oid] = seg.size
    logical = sum(s.size for s in snaps)
    stored = sum(sizes.values())
    return DuEntry(
        name,
        path,
        len(snaps),
        len(sizes),
        logical,
        stored,
        sum(v for k, v in sizes.items() if k in local),
        round(logical / stored, 3) if stored else 1.0,
    )


def du(*, cwd: Path | None = None) -> DuResult:
    """Logical size, stored bytes and dedup ratio per model and in total.

    Example::

        res = api.du()
        print(res.total.logical_bytes, res.total.stored_bytes, res.total.dedup_ratio)
    """
    from gitsnap import registry

    ws = Workspace.discover(cwd)
    live = live_snapshots(ws)
    store = ws.store
    on_disk: dict[str, int] = {}
    for oid in store.iter_oids():
        try:
            on_disk[oid] = store.path(oid).lstat().st_size
        except FileNotFoundError:
            continue
    packs = store.packs() if store.packs_dir.is_dir() else None
    packed = 0
    if packs is not None:  # a packed object's stored bytes: its member (header + body)
        for e in packs.entries():
            packed += 1
            on_disk.setdefault(e.oid, e.length)
    local = set(on_disk)
    snaps = [s for s in live.snapshots if s.snapshot_id is not None]
    by_path: dict[str, list[LiveSnapshot]] = {}
    for s in snaps:
        by_path.setdefault(s.path, []).append(s)
    cat = registry.catalog(ws, by_path)
    rows = [_entry(cat.name_for(p), p, ss, local) for p, ss in sorted(by_path.items())]
    keep = live.oids()
    unref = {o: n for o, n in on_disk.items() if o not in keep}
    return DuResult(
        rows,
        _entry(None, "", snaps, local),
        len(on_disk),
        sum(on_disk.values()),
        len(unref),
        sum(unref.values()),
        len(packs.packs) if packs is not None else 0,
        packed,
    )


# ------------------------------------------------------------------ on the DVC remote


@dataclass(frozen=True)
class RemoteDuEntry:
    name: str | None  # model name (None: no name)
    path: str
    snapshots: int
    objects: int  # distinct objects they need
    logical_bytes: int  # sum of the snapshots' sizes
    dedup_bytes: int  # each distinct object once, raw
    stored_bytes: int  # what the remote holds for those it has (packed members as stored)
    missing_objects: int  # needed, not on the remote (not pushed yet)
    dedup_ratio: float  # logical / dedup
    stored_ratio: float  # stored / dedup of the objects the remote has (compression, deltas)


@dataclass(frozen=True)
class StoredForm:
    form: str  # "raw", "planes+zstd", "xor-delta" (packed members), "loose" (raw files)
    objects: int
    raw_bytes: int
    stored_bytes: int
    share: float  # of the stored bytes of the objects in scope and the bases they need


@dataclass(frozen=True)
class RemoteDuResult:
    remote: str  # DVC remote name
    location: str  # its URL
    models: list[RemoteDuEntry]
    total: RemoteDuEntry  # objects shared between models count once
    forms: list[StoredForm]  # in scope and their delta bases, by stored form
    packs: int
    pack_bytes: int  # the .pack files
    index_bytes: int  # the .idx files
    packed_objects: int  # distinct objects in the packs
    loose_objects: int
    loose_bytes: int
    base_objects: int  # outside the scope, kept as delta bases of objects in it
    base_bytes: int
    garbage_objects: int  # neither in scope nor a base: what gc --remote may drop
    garbage_bytes: int
    duplicate_bytes: int  # second copies (an object in two packs, or packed and loose)
    remote_bytes: int  # every file of the gitsnap area (packs, indexes, loose, temp)


def _closure(found_where: dict[str, Any], roots: Iterable[str]) -> set[str]:
    need: set[str] = set()
    todo = list(roots)
    while todo:
        oid = todo.pop()
        if oid in need:
            continue
        need.add(oid)
        e = found_where.get(oid)
        if e is not None and e.base and e.base not in need:
            todo.append(e.base)
    return need


def du_remote(
    *, remote_name: str | None = None, jobs: int | None = None, cwd: Path | None = None
) -> RemoteDuResult:
    """The live snapshots (same scope as :func:`du`) as the DVC remote stores them.

    Example::

        res = api.du_remote()
        print(res.total.logical_bytes, res.total.dedup_bytes, res.total.stored_bytes)
        print({f.form: f.share for f in res.forms}, res.garbage_bytes)
    """
    from gitsnap.remote import open_remote

    ws = Workspace.discover(cwd)
    target = open_remote(ws.require_dvc(), remote_name, jobs)
    return measure_remote(ws, target)


def measure_remote(ws: Workspace, remote: Remote) -> RemoteDuResult:
    from gitsnap import codec, registry
    from gitsnap.remote import packs

    found = packs.load(remote, ws.store, remote.jobs)
    if found.damaged:
        raise found.damaged[0]  # its members' forms and bases are unknown: no half answer
    loose: dict[str, int] = {}
    everything = 0  # the listing covers the pack area, temp uploads and orphan packs too
    for f in remote.list():
        everything += f.size
        if f.oid is not None:
            loose[f.oid] = f.size
    live = live_snapshots(ws)
    snaps = [s for s in live.snapshots if s.snapshot_id is not None]
    by_path: dict[str, list[LiveSnapshot]] = {}
    for s in snaps:
        by_path.setdefault(s.path, []).append(s)

    def stored(oid: str) -> int | None:  # the copy a reader uses: packed first, as fetch does
        e = found.where.get(oid)
        return e.share if e is not None else loose.get(oid)

    def entry(name: str | None, path: str, group: list[LiveSnapshot]) -> RemoteDuEntry:
        sizes = {seg.oid: seg.size for snap in group for seg in snap.segments}
        have = {o: n for o, n in sizes.items() if stored(o) is not None}
        dedup = sum(sizes.values())
        held = sum(stored(o) or 0 for o in have)
        raw_held = sum(have.values())
        return RemoteDuEntry(
            name, path, len(group), len(sizes), sum(s.size for s in group), dedup, held,
            len(sizes) - len(have),
            round(sum(s.size for s in group) / dedup, 3) if dedup else 1.0,
            round(held / raw_held, 3) if raw_held else 1.0,
        )  # fmt: skip

    cat = registry.catalog(ws, by_path)
    rows = [entry(cat.name_for(p), p, ss) for p, ss in sorted(by_path.items())]
    scope = live.oids()
    needed = _closure(found.where, scope)
    present = set(found.where) | set(loose)
    forms: dict[str, list[int]] = {}
    for oid in sorted(needed & present):
        e = found.where.get(oid)
        form = (
            "loose"
            if e is None
            else (codec.GROUP_DELTA_NAME if e.base else codec.GROUP_NAME)
            if e.grouped
            else codec.CODEC_NAMES.get(e.codec, str(e.codec))
        )
        raw = e.raw_size if e is not None else loose[oid]
        acc = forms.setdefault(form, [0, 0, 0])
        acc[0] += 1
        acc[1] += raw
        acc[2] += stored(oid) or 0
    total_stored = sum(a[2] for a in forms.values())
    bases = (needed - scope) & present
    garbage = duplicate = 0
    garbage_oids: set[str] = set()
    for rp in found.packs.values():
        for oid, e in rp.entries.items():
            if oid not in needed:
                garbage += e.share
                garbage_oids.add(oid)
            elif found.where[oid] is not e:
                duplicate += e.share
    for oid, size in loose.items():
        if oid not in needed:
            garbage += size
            garbage_oids.add(oid)
        elif oid in found.where:
            duplicate += size
    order = ["raw", "planes+zstd", codec.GROUP_NAME, "xor-delta", codec.GROUP_DELTA_NAME, "loose"]
    return RemoteDuResult(
        remote.info.name,
        remote.info.url,
        rows,
        entry(None, "", snaps),
        [
            StoredForm(
                f,
                forms[f][0],
                forms[f][1],
                forms[f][2],
                round(forms[f][2] / total_stored, 4) if total_stored else 0.0,
            )
            for f in sorted(forms, key=lambda f: (order.index(f) if f in order else 9, f))
        ],
        len(found.packs),
        sum(rp.size for rp in found.packs.values()),
        sum(rp.files[1].size for rp in found.packs.values()),
        len(found.where),
        len(loose),
        sum(loose.values()),
        len(bases),
        sum(stored(o) or 0 for o in bases),
        len(garbage_oids),
        garbage,
        duplicate,
        everything,
    )
