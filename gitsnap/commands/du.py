"""``git snap du``: logical size, stored bytes and dedup ratio per model and in total.

Per model and in total: the logical size (the sum of the sizes of the
distinct live snapshots), the bytes stored (each distinct object once), the
bytes of those in the local store, and the dedup ratio logical / stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gitsnap.liveness import LiveSnapshot, live_snapshots
from gitsnap.workspace import Workspace


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
