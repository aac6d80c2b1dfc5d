"""gc on a remote's packs: a pack whose dead members hold enough of its bytes is rewritten
without them (DESIGN D18, D19; docs/storage.md "gc --remote").

A member is *needed* when a snapshot in gc's scope names it, when its pack is
younger than the grace period (a push in progress has not pushed its commit
yet), or when a needed member (or any member of a pack that stays as it is)
is a delta against it -- wherever that base lives: the same pack, another
pack, or loose. Everything else is *dead*.

:func:`plan` picks the packs to rewrite: those, older than the grace period,
whose dead members hold at least :data:`REWRITE_FRACTION` of the pack's
member bytes (a pack with no needed member at all is simply deleted).
:func:`execute` copies the needed members of those packs **as they are
stored** (no re-encode: a delta keeps its base id and depth) into new packs
built in the local store's temp dir -- each member read by ranged reads of at
most :data:`gitsnap.remote.packs.RUN_MAX` bytes, never a whole pack in
memory -- decodes and re-hashes every copied member from the new pack, then

1. uploads each new pack, then its index (a reader finds packs by index);
2. deletes each old index (from now on readers take the new copies);
3. deletes each old pack.

A ``kill -9`` anywhere leaves every needed object readable: before step 1
ends the old packs are untouched (an uploaded pack without its index is
invisible, and the rerun writes the same bytes under the same name); between
1 and 2 an object is in two packs, which readers allow (the first index by
name wins, :attr:`RemotePacks.where`); after 2 an old ``.pack`` without its
index is an orphan that gc deletes once it is an hour old, as after a killed
push. A rerun plans again from what the remote holds: an old pack whose
needed members a kept pack already holds is dropped without a copy.

Packs are immutable and named by their bytes, so a pack rewritten twice from
the same members gets the same name: a rerun overwrites, never duplicates.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from gitsnap import codec, pack
from gitsnap.errors import GitsnapError, ObjectCorrupt
from gitsnap.remote import large
from gitsnap.remote.base import Remote
from gitsnap.remote.packs import GAP, RUN_MAX, RemotePack, RemotePacks, replace_pack_hint
from gitsnap.store import ObjectStore

# A pack is rewritten once its dead members hold >= 25 % of its member bytes.
# A rewrite costs transfer, not just a delete: a ranged read of every member
# it keeps and an upload of them. git's gc weighs the same cost and leaves
# big packs alone rather than rewrite them for little gain (gc.bigPackThreshold,
# --keep-largest-pack; `repack --geometric=2` only merges packs that are small
# next to their neighbours). At 25 % a rewrite moves at most 3 bytes per byte it frees, and a
# pack gc leaves alone holds less than 1 dead byte per 3 live ones: the worst
# case is a remote 1/3 larger than its live packed bytes, never unbounded.
REWRITE_FRACTION = 0.25


@dataclass
class PackFate:
    """What gc does to one remote pack."""

    name: str
    size: int  # bytes of the .pack file
    members: int
    dead: int  # members no needed object is
    dead_bytes: int  # their stored bytes
    action: str  # "keep", "young" (kept: younger than the grace period), "rewrite", "delete"


@dataclass
class Plan:
    needed: set[str] = field(default_factory=set)  # objects that must stay readable
    fates: list[PackFate] = field(default_factory=list)
    # per pack to rewrite (or delete): the members to copy out of it, in offset order
    copies: dict[str, list[pack.Entry]] = field(default_factory=dict)

    def rewritten(self) -> list[PackFate]:
        return [f for f in self.fates if f.action in ("rewrite", "delete")]

    def kept(self) -> list[PackFate]:
        return [f for f in self.fates if f.action in ("keep", "young")]

    def copy_bytes(self) -> int:
        return sum(e.share for es in self.copies.values() for e in es)

    def dropped(self) -> int:
        """Members of the rewritten packs that are not copied (dead, or held by a kept pack)."""
        by_name = {f.name: f for f in self.rewritten()}
        return sum(by_name[n].members - len(es) for n, es in self.copies.items())


def plan(
    found: RemotePacks,
    live: Iterable[str],
    *,
    grace: float,
    now: float,
    fraction: float = REWRITE_FRACTION,
) -> Plan:
    """Which packs to rewrite, and what to copy out of them (see the module docstring)."""
    packs = [found.packs[n] for n in sorted(found.packs)]  # the order readers use
    young = {rp.name for rp in packs if _age(rp, now) < grace}
    roots = set(live)
    for rp in packs:
        if rp.name in young:
            roots.update(rp.entries)
    # Start from "rewrite every old pack", then keep each pack whose dead part is below the
    # threshold. A kept pack keeps all its members, and with them their delta bases, so the
    # needed set only grows and dead parts only shrink: the loop ends (at most once per pack).
    kept = set(young)
    while True:
        need = _closure(roots, packs, kept)
        more = {
            rp.name for rp in packs if rp.name not in kept and not _worth_it(rp, need, fraction)
        }
        if not more:
            break
        kept |= more
    out = Plan(needed=need)
    taken: set[str] = set()  # copied already, or held by a kept pack
    for rp in packs:
        if rp.name in kept:
            taken.update(rp.entries)
    for rp in packs:
        dead = [e for e in rp.entries.values() if e.oid not in need]
        size_dead = sum(e.share for e in dead)
        if rp.name in kept:
            action = "young" if rp.name in young else "keep"
        else:
            copy = sorted(
                (e for e in rp.entries.values() if e.oid in need and e.oid not in taken),
                key=lambda e: e.offset,
            )
            taken.update(e.oid for e in copy)
            out.copies[rp.name] = copy
            action = "rewrite" if copy else "delete"
        out.fates.append(PackFate(rp.name, rp.size, len(rp.entries), len(dead), size_dead, action))
    return out


def _age(rp: RemotePack, now: float) -> float:
    # The index is uploaded last: its time is when the pack became visible. Unknown: new.
    mtime = rp.files[1].mtime
    return 0.0 if mtime is None else now - mtime


def _worth_it(rp: RemotePack, need: set[str], fraction: float) -> bool:
    total = sum(e.share for e in rp.entries.values())
    dead = sum(e.share for e in rp.entries.values() if e.oid not in need)
    return dead > 0 and dead >= fraction * total


def _closure(roots: set[str], packs: list[RemotePack], kept: set[str]) -> set[str]:
    """Every object that must stay readable: the roots, every member of a kept pack, and the
    delta bases of the copies that stay (all copies in kept packs; for an object only the
    rewritten packs hold, the first copy by pack name, the one :func:`plan` copies)."""
    in_kept: dict[str, list[pack.Entry]] = {}
    first: dict[str, pack.Entry] = {}
    todo = list(roots)
    for rp in packs:
        for oid, e in rp.entries.items():
            if rp.name in kept:
                in_kept.setdefault(oid, []).append(e)
                todo.append(oid)
            else:
                first.setdefault(oid, e)
    need: set[str] = set()
    while todo:
        oid = todo.pop()
        if oid in need:
            continue
        need.add(oid)
        copies = in_kept.get(oid) or ([first[oid]] if oid in first else [])
        todo.extend(e.base for e in copies if e.base and e.base not in need)
    return need


# ------------------------------------------------------------------ doing it


@dataclass(frozen=True)
class Done:
    packs_written: list[str]  # new packs uploaded (with their indexes)
    packs_deleted: list[str]  # old packs whose index and pack are gone
    bytes_written: int  # .pack and .idx bytes uploaded
    pack_bytes_written: int  # of which .pack
    bytes_deleted: int  # .pack and .idx bytes deleted


def execute(remote: Remote, store: ObjectStore, found: RemotePacks, todo: Plan) -> Done:
    """Rewrite the packs ``todo`` names (see the module docstring for the order)."""
    rewritten = [f.name for f in todo.rewritten()]
    if not rewritten:
        return Done([], [], 0, 0, 0)
    tmp_root = store.root / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    up = up_packs = 0
    with tempfile.TemporaryDirectory(dir=tmp_root, prefix="rewrite-") as d:
        folder = Path(d)
        with pack.PackWriter(folder) as writer:
            for name in rewritten:
                for run in _runs(todo.copies[name]):
                    members: dict[int, tuple[codec.Stored, list[pack.Entry]]] = {}
                    for e, stored in _read_run(remote, name, run):
                        if e.grouped:  # its group member is copied once, with the live ones
                            members.setdefault(e.offset, (stored, []))[1].append(e)
                        else:
                            writer.add_stored(e.oid, stored, f"member of pack {name[:12]}…")
                    for stored, es in members.values():
                        data = bytearray(stored.length)
                        stored.read_at(0, memoryview(data))
                        writer.add_group(
                            [data],
                            [(e.oid, e.start, e.raw_size, e.base, e.depth) for e in es],
                            es[0].dtype,
                        )
            written = [name for name, _ in writer.finish()]
        _verify(remote, found, folder, written)
        for name in written:  # each pack, then its index: a reader finds packs by index
            for suffix in (".pack", ".idx"):
                local = folder / f"pack-{name}{suffix}"
                up += local.stat().st_size
                up_packs += local.stat().st_size if suffix == ".pack" else 0
                remote.put_pack_file(local, local.name)
    deleted: list[str] = []
    gone = 0
    for name in rewritten:
        if name in written:  # the same members the same way: the same pack (cannot happen
            continue  # for a pack that had a dead member, but never delete what was written)
        packfile, idx = found.packs[name].files
        remote.delete([idx.key])  # the index first: readers stop using the pack
        remote.delete([packfile.key])
        deleted.append(name)
        gone += packfile.size + idx.size
    return Done(written, deleted, up, up_packs, gone)


def _runs(entries: list[pack.Entry]) -> Iterator[list[pack.Entry]]:
    """Members (in offset order) in runs read with one request each: gaps up to GAP are read
    through, a run spans at most RUN_MAX bytes (a larger member is a run of its own, read in
    pieces by :func:`_read_run`)."""
    cur: list[pack.Entry] = []
    for e in entries:
        if cur and (
            e.offset - (cur[-1].offset + cur[-1].length) > GAP
            or e.offset + e.length - cur[0].offset > RUN_MAX
        ):
            yield cur
            cur = []
        cur.append(e)
    if cur:
        yield cur


def _read_run(
    remote: Remote, name: str, run: list[pack.Entry]
) -> Iterator[tuple[pack.Entry, codec.Stored]]:
    fname = f"pack-{name}.pack"
    start, end = run[0].offset, run[-1].offset + run[-1].length
    if end - start > RUN_MAX:  # one member larger than a run: read in pieces as it is copied
        [e] = run
        yield e, _ranged(remote, fname, e.offset, e.length)
        return
    data = memoryview(remote.read_pack_file(fname, start, end))
    for e in run:
        piece = data[e.offset - start : e.offset - start + e.length]
        if len(piece) != e.length:
            raise ObjectCorrupt(
                f"pack {name[:12]}… on remote '{remote.info.name}' is shorter than its index "
                f"says (member {e.oid[:12]}…); nothing was rewritten",
                hint=replace_pack_hint([name]),
            )
        yield e, codec.Stored(e.length, codec.bytes_reader(piece))


def _ranged(remote: Remote, fname: str, offset: int, length: int) -> codec.Stored:
    """A stored member read by ranged requests of at most RUN_MAX bytes, as it is consumed."""

    def read_at(pos: int, view: memoryview) -> int:
        want = min(len(view), length - pos, RUN_MAX)
        if want <= 0:
            return 0
        data = remote.read_pack_file(fname, offset + pos, offset + pos + want)
        view[: len(data)] = data
        return len(data)

    return codec.Stored(length, read_at)


def _verify(remote: Remote, found: RemotePacks, folder: Path, written: list[str]) -> None:
    """Decode and re-hash every member of the new packs before anything is uploaded; a delta
    base outside them is read from the remote (ranged reads, or the loose object)."""
    opened = [pack.Pack(folder / f"pack-{n}.idx") for n in written]
    loose: dict[str, IO[bytes]] = {}

    def lookup(oid: str) -> codec.Stored:
        for p in opened:
            if oid in p.entries:
                return p.stored(oid, lookup)
        e = found.where.get(oid)
        if e is not None and e.grouped:  # its group member read whole and decoded
            return large.member_stored(remote, e, lookup)
        if e is not None:
            return _ranged(remote, f"pack-{e.pack}.pack", e.offset, e.length)
        f = loose.get(oid)
        if f is None:
            f = loose[oid] = remote.read(oid, "delta base")
        size = f.seek(0, 2)

        def read_at(pos: int, view: memoryview, f: IO[bytes] = f) -> int:
            f.seek(pos)
            data = f.read(len(view))
            view[: len(data)] = data
            return len(data)

        return codec.Stored(size, read_at, encoded=False)

    buf = bytearray(codec.BLOCK)
    try:
        for p in opened:
            for oid in sorted(p.entries, key=p.order_key):
                try:
                    for _ in codec.iter_decoded(lookup, oid, buf, "pack member"):
                        pass
                except GitsnapError as exc:
                    source = next(
                        (rp.name for rp in found.packs.values() if oid in rp.entries), "?"
                    )
                    raise ObjectCorrupt(
                        f"object {oid[:12]}… in pack {source[:12]}… on remote "
                        f"'{remote.info.name}' does not decode to its id ({exc.message}); "
                        "gc rewrote no pack",
                        hint="git snap fsck --remote names what is damaged; "
                        + replace_pack_hint([source]),
                    ) from None
    finally:
        for p in opened:
            p.close()
        for f in loose.values():
            with contextlib.suppress(OSError):
                f.close()


__all__ = ["REWRITE_FRACTION", "Done", "PackFate", "Plan", "execute", "plan"]
