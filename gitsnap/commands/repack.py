"""``git snap repack``: compact the local store into few packs (docs/storage-format.md).

A save or fetch of fewer than :data:`gitsnap.pack.UNPACK_LIMIT` small objects
writes them loose (a file each), and every larger one adds its own packs; over
many saves a store gathers thousands of small files and packs. ``repack``
moves the loose objects below :data:`gitsnap.pack.THRESHOLD` and the members
of packs smaller than half of :data:`gitsnap.pack.MAX_PACK` into new packs of
up to 64 MiB, as ``git repack`` does.

Safe under ``kill -9`` at any point, like :func:`gitsnap.pack.rewrite`: every
object is re-hashed before it is copied, the new packs are published (pack,
then index) before anything is deleted, and only then the old indexes, their
packs and the loose copies go. An interrupted run leaves objects in two
places at worst, which the next run (or gc) tidies.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from gitsnap import codec, pack
from gitsnap.hashing import hash_range
from gitsnap.workspace import Workspace

SMALL_PACK = pack.MAX_PACK // 2  # packs below this are merged


@dataclass(frozen=True)
class RepackResult:
    location: str  # the store folder
    dry_run: bool
    loose_packed: int  # loose objects moved into packs (with dry_run: would be)
    packs_merged: int  # small packs whose members were moved into new packs
    objects_packed: int  # objects written into the new packs
    packs_written: int
    packs_before: int
    packs_after: int
    loose_before: int  # loose files in the store before
    loose_after: int
    bytes_stored: int  # stored bytes of every pack after
    corrupt: list[str]  # loose objects that did not hash to their id: left in place
    seconds: float


def repack(*, cwd: Path | None = None, dry_run: bool = False) -> RepackResult:
    """Compact the local store: small loose objects and small packs into packs of up to 64 MiB.

    Example::

        res = api.repack()
        print(res.loose_before, "->", res.loose_after, "loose files")
    """
    ws = Workspace.discover(cwd)
    ws.require_dvc()
    with ws.lock("repack"):
        return _repack(ws, dry_run)


def _repack(ws: Workspace, dry_run: bool) -> RepackResult:
    started = time.perf_counter()
    store = ws.store
    store.root.mkdir(parents=True, exist_ok=True)
    packs = store.packs()
    loose: list[tuple[str, int]] = []
    loose_total = 0
    for oid in store.iter_oids():
        try:
            st = store.path(oid).lstat()
        except FileNotFoundError:
            continue
        loose_total += 1
        if st.st_size < pack.THRESHOLD and not packs.has(oid):
            loose.append((oid, st.st_size))
    # A pack whose every member another remaining pack holds too (a repack killed after
    # it published) goes without being copied; judged one at a time, smallest first,
    # against the packs still there, so two copies never both go.
    holders = Counter(o for p in packs.packs for o in p.entries)  # packs holding each object
    dropped = False
    for p in sorted(packs.packs, key=lambda q: q.size):
        if not dry_run and all(holders[o] > 1 for o in p.entries):
            holders.subtract(list(p.entries))  # its ids (entries maps id -> Entry)
            p.idx_path.unlink(missing_ok=True)
            p.path.unlink(missing_ok=True)
            dropped = True
    if dropped:
        store.reload_packs()
        packs = store.packs()
    small = [p for p in packs.packs if p.size < SMALL_PACK]
    if len(small) < 2 and not loose:
        small = []  # one small pack alone: nothing to merge it with
    before = len(packs.packs)
    corrupt: list[str] = []
    moved: list[str] = []
    written: list[tuple[str, int]] = []
    if not dry_run and (loose or small):
        with pack.PackWriter(store.packs_dir) as w:
            for p in small:
                for oid in sorted(p.entries):
                    for _ in codec.iter_decoded(packs, oid, pack.codec_buf()):
                        pass  # decoded and re-hashed before it is copied
                    w.add_stored(oid, p.stored(oid))
            for oid, size in loose:
                fd = os.open(store.path(oid), os.O_RDONLY)
                try:
                    if hash_range(fd, 0, size) != (oid, size):
                        corrupt.append(oid)  # left where it is, for fsck to name
                        continue
                    w.add_raw(oid, fd=fd, offset=0, size=size)
                finally:
                    os.close(fd)
                moved.append(oid)
            written = w.finish()
        names = {name for name, _ in written}
        for p in small:
            if p.name in names:
                continue
            p.idx_path.unlink(missing_ok=True)
            p.path.unlink(missing_ok=True)
        for oid in moved:
            with contextlib.suppress(FileNotFoundError):
                store.path(oid).unlink()
        for prefix in {oid[:2] for oid in moved}:
            with contextlib.suppress(OSError):
                (store.root / prefix).rmdir()  # only when empty
        pack.clean(store.packs_dir)
        store.reload_packs()
    packs = store.packs()
    return RepackResult(
        str(store.root),
        dry_run,
        len(moved) if not dry_run else len(loose),
        len(small),
        sum(n for _, n in written),
        len(written),
        before,
        len(packs.packs),
        loose_total,
        loose_total - len(moved),
        sum(p.size for p in packs.packs),
        corrupt,
        round(time.perf_counter() - started, 3),
    )


__all__ = ["RepackResult", "repack"]
