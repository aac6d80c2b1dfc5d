"""Storage v2 on a remote: small objects travel, and stay, in packs (DESIGN D18).

``push`` groups the small objects it must send (below :data:`gitsnap.pack.THRESHOLD`)
into packs -- each member in its smallest stored form (:mod:`gitsnap.codec`:
raw, or byte planes + zstd) -- and uploads ``pack-<name>.pack`` then
``pack-<name>.idx`` to ``<remote>/gitsnap/blake3/packs/``, so 20,000 small
tensors are a handful of files and requests instead of 20,000. Objects of
1 MiB and more are packed and encoded too, in packs of their own (above 64 MiB
alone, and only where encoding pays: :func:`gitsnap.remote.large.worth_encoding`),
and streamed both ways (:mod:`gitsnap.remote.large`) (docs/storage-format.md §2, §4).

A push of fewer than :data:`UNPACK_LIMIT` small objects sends them loose, as
git's ``receive.unpackLimit`` (100) keeps small pushes loose: every pack adds
an index that every later push and fetch reads, and a loose object is
something ``gc --remote`` can drop on its own.

Reading: :func:`load` lists the pack area (one listing) and reads every
index it has not seen before (indexes are immutable and named by their pack,
so they are cached under ``<store>/remote-indexes/`` and read once); an index
that fails its checks is reported as damaged and its pack ignored.
:func:`fetch_run` reads a run of members of one pack with **one ranged
request** (runs of wanted members, read through gaps below :data:`GAP`, at
most :data:`RUN_MAX` bytes): a fresh clone reads each pack whole in a few
requests, a pull of one changed tensor reads only that member. Every member
is decoded and re-hashed against its id before it is written, loose and raw,
into the local store (which ``checkout`` restores from); a damaged member is
an ObjectCorrupt naming it, the pack and the remote, and nothing is written
for it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitsnap import codec, pack
from gitsnap.errors import GitsnapError, ObjectCorrupt, ObjectMissing, PackMemberCorrupt
from gitsnap.fsutil import write_atomic
from gitsnap.hashing import OnBytes, oid_of
from gitsnap.remote import large
from gitsnap.remote.base import Remote, RemoteFile
from gitsnap.store import ObjectStore, pointer_lies

UNPACK_LIMIT = pack.UNPACK_LIMIT  # fewer small objects than this travel loose
# A run of wanted members is read in one request through gaps up to this size:
# on S3 a request costs ~10-30 ms, as much as 0.25-1 MiB of transfer.
GAP = 256 * 1024
RUN_MAX = 8 * 1024 * 1024  # bytes held per run in flight (memory: jobs x RUN_MAX at most)
SMALL_RUN = 4 * 1024 * 1024  # local pack members read at once by a push
_FLUSH = 1024 * 1024  # decoded members a fetch stores at once
_IDX = re.compile(r"^pack-([0-9a-f]{64})\.idx$")
_PACK = re.compile(r"^pack-([0-9a-f]{64})\.pack$")


def file_name(f: RemoteFile) -> str:
    return f.key.replace("\\", "/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class RemotePack:
    name: str
    size: int  # bytes of the .pack file
    entries: dict[str, pack.Entry]
    files: tuple[RemoteFile, RemoteFile]  # the .pack and the .idx


@dataclass
class RemotePacks:
    """What the remote's packs hold, read from their indexes."""

    packs: dict[str, RemotePack] = field(default_factory=dict)
    where: dict[str, pack.Entry] = field(default_factory=dict)  # oid -> its entry (first pack)
    damaged: list[ObjectCorrupt] = field(default_factory=list)  # indexes that failed their checks
    orphans: list[RemoteFile] = field(default_factory=list)  # pack files without an index

    def has(self, oid: str) -> bool:
        return oid in self.where

    def oids(self) -> set[str]:
        return set(self.where)

    def bases(self) -> set[str]:
        """Delta bases the packed objects need (gc keeps them)."""
        return {e.base for p in self.packs.values() for e in p.entries.values() if e.base}


def cache_dir(store: ObjectStore) -> Path:
    return store.root / "remote-indexes"


def replace_pack_hint(names: Iterable[str]) -> str:
    """How to replace damaged remote packs (a push skips what an index lists)."""
    files = ", ".join(f"packs/pack-{n}.idx and .pack" for n in sorted(names))
    return (
        f"delete {files} from the remote's gitsnap/blake3/ area, then push again from a "
        "machine that has the objects (git snap push); objects that did arrive are kept"
    )


def _damaged(remote: Remote, name: str, why: str) -> ObjectCorrupt:
    return ObjectCorrupt(
        f"pack {name[:12]}… on remote '{remote.info.name}' cannot be used: {why}",
        hint=replace_pack_hint([name]),
    )


# Indexes parsed in this process, by pack name: a pack's index is a function of its bytes
# (the name), so a push that lists the remote again after sending reads each once.
_PARSED: dict[str, list[pack.Entry]] = {}


def load(remote: Remote, store: ObjectStore, jobs: int | None = None) -> RemotePacks:
    """List the pack area and read its indexes (cached by name; new ones fetched in parallel)."""
    files = {file_name(f): f for f in remote.list_packs()}
    out = RemotePacks()
    cache = cache_dir(store)
    todo: list[tuple[str, RemoteFile, RemoteFile]] = []
    for fname, f in sorted(files.items()):
        m = _IDX.match(fname)
        if m is None:
            m = _PACK.match(fname)
            if m and f"pack-{m[1]}.idx" not in files:
                out.orphans.append(f)
            continue
        packfile = files.get(f"pack-{m[1]}.pack")
        if packfile is None:
            out.damaged.append(_damaged(remote, m[1], "its .pack file is missing"))
        elif f.size > pack.MAX_INDEX_SIZE:
            out.damaged.append(_damaged(remote, m[1], f"its index is {f.size} bytes"))
        else:
            todo.append((m[1], f, packfile))

    def fetch_index(item: tuple[str, RemoteFile, RemoteFile]) -> None:
        name, idx, _ = item
        local = cache / f"pack-{name}.idx"
        if not local.exists():
            write_atomic(local, remote.read_pack_file(f"pack-{name}.idx", 0, idx.size))

    missing = [t for t in todo if not (cache / f"pack-{t[0]}.idx").exists()]
    if len(missing) > 1:
        with ThreadPoolExecutor(max_workers=max(1, min(jobs or remote.jobs, 16))) as pool:
            list(pool.map(fetch_index, missing))
    else:
        for t in missing:
            fetch_index(t)
    for name, idx, packfile in todo:
        local = cache / f"pack-{name}.idx"
        try:
            entries = _PARSED.get(name) or pack.read_index(local)[1]
        except ObjectCorrupt as exc:
            local.unlink(missing_ok=True)  # fetched again next time, in case it was the cache
            out.damaged.append(_damaged(remote, name, exc.message))
            continue
        past = [e for e in entries if e.offset + e.length > packfile.size]
        if past:
            out.damaged.append(
                _damaged(
                    remote,
                    name,
                    f"its index points past the end of the pack ({packfile.size} bytes)",
                )
            )
            continue
        _PARSED[name] = entries
        rp = RemotePack(name, packfile.size, {e.oid: e for e in entries}, (packfile, idx))
        out.packs[name] = rp
        for e in entries:
            out.where.setdefault(e.oid, e)
    return out


# ------------------------------------------------------------------ fetch


@dataclass(frozen=True)
class Wanted:
    size: int  # as the pointer says
    label: str


Outcome = dict[str, GitsnapError | None]  # per object: None (moved) or why not


def runs(packs: RemotePacks, wanted: Iterable[str]) -> list[tuple[str, list[pack.Entry]]]:
    """Group wanted packed objects into ``(pack, members)`` runs, each one ranged read."""
    by_pack: dict[str, list[pack.Entry]] = {}
    for oid in wanted:
        e = packs.where[oid]
        by_pack.setdefault(e.pack, []).append(e)
    out: list[tuple[str, list[pack.Entry]]] = []
    for name, entries in by_pack.items():
        entries.sort(key=lambda e: e.offset)
        cur: list[pack.Entry] = []
        for e in entries:
            if cur and (
                e.offset - (cur[-1].offset + cur[-1].length) > GAP
                or e.offset + e.length - cur[0].offset > RUN_MAX
                or large.is_large(e)  # a large member is a run of its own, streamed
                or large.is_large(cur[-1])
            ):
                out.append((name, cur))
                cur = []
            cur.append(e)
        if cur:
            out.append((name, cur))
    return out


def fetch_run(
    remote: Remote,
    store: ObjectStore,
    name: str,
    members: list[pack.Entry],
    wanted: dict[str, Wanted],
    *,
    on_bytes: OnBytes,
) -> Outcome:
    """Read one run of a pack (one request), decode and verify each member, store it loose."""
    if large.is_large(members[0]):  # a run of its own (runs): ranged reads, streamed
        e, want = members[0], wanted[members[0].oid]
        hint = replace_pack_hint([name])
        return {e.oid: large.fetch_member(remote, store, e, want.size, want.label, hint, on_bytes)}
    start = members[0].offset
    end = max(e.offset + e.length for e in members)
    data = memoryview(remote.read_pack_file(f"pack-{name}.pack", start, end))
    pieces = {e.oid: data[e.offset - start : e.offset - start + e.length] for e in members}
    loose = store.lookup()
    entries = {e.oid: e for e in members}

    def lookup(oid: str) -> codec.Stored:
        piece = pieces.get(oid)
        if piece is not None:
            if entries[oid].grouped:
                return in_groups.stored(entries[oid], piece, wanted[oid].label)
            return codec.Stored(len(piece), codec.bytes_reader(piece))
        return loose(oid)  # a delta base already in the local store

    in_groups = pack.Groups(bases=lookup)

    out: Outcome = {}
    small: list[tuple[str, bytes | bytearray | memoryview]] = []
    held = 0  # raw bytes decoded and not yet stored: memory is the run, not twice it
    try:
        for e in members:
            want = wanted[e.oid]
            piece = pieces[e.oid]
            try:
                if len(piece) != e.length:
                    raise codec.corrupt(e.oid, want.label, "the pack is cut short")
                raw: bytes | bytearray | memoryview
                small_raw = (
                    in_groups.bytes_of(e, piece, want.label)
                    if e.grouped
                    else codec.decode_small(piece, e.oid, want.label, max_size=pack.MAX_PACK)
                )
                if small_raw is not None:
                    raw = small_raw
                else:  # a delta, or more than one block
                    raw = codec.decode_bytes(
                        piece, e.oid, lookup, want.label, max_size=pack.MAX_PACK
                    )
            except ObjectCorrupt as exc:
                out[e.oid] = PackMemberCorrupt(
                    f"object {e.oid[:12]}… ({want.label}) in pack {name[:12]}… on remote "
                    f"'{remote.info.name}' is corrupt and was not stored: {exc.message}",
                    hint=replace_pack_hint([name]),
                    pack=name,
                )
                continue
            except ObjectMissing as exc:
                out[e.oid] = exc
                continue
            if len(raw) < pack.THRESHOLD:
                small.append((e.oid, raw))  # stored together, a MiB at a time
                held += len(raw)
                if held >= _FLUSH:
                    store.put_many(small)
                    small, held = [], 0
            else:
                store.put(e.oid, raw)
            on_bytes(len(raw))
            out[e.oid] = (
                None
                if len(raw) == want.size
                else pointer_lies(e.oid, want.size, len(raw), want.label)
            )
        store.put_many(small)
    finally:
        loose.close()
        in_groups.close()
    return out


def fetch_one(
    remote: Remote, store: ObjectStore, found: RemotePacks, oid: str, *, size: int, label: str
) -> None:
    """Fetch one object into the store, loose or packed, after the delta bases it needs
    (deepest first). Raises what the transfer of any of them raises."""
    chain = [(oid, size, label)]
    while len(chain) <= codec.MAX_DEPTH:
        e = found.where.get(chain[-1][0])
        if e is None or e.base is None or store.has(e.base):
            break
        chain.append((e.base, e.raw_size, f"delta base of {label}"))
    for o, n, what in reversed(chain):
        if store.has(o):
            continue
        if not found.has(o):
            remote.download(store, o, n, what)
            continue
        [(name, members)] = runs(found, [o])
        why = fetch_run(remote, store, name, members, {o: Wanted(n, what)}, on_bytes=_ignore)[o]
        if why is not None:
            raise why


def _ignore(n: int) -> None:
    pass


# ------------------------------------------------------------------ push


@dataclass(frozen=True)
class Outgoing:
    oid: str
    size: int
    dtype: int  # codec dtype code (chooses the byte planes)
    label: str
    base: str | None = None  # a delta base the remote holds and the local store too
    base_depth: int = 0  # its chain depth on the remote


def groups(objs: list[Outgoing], limit: int = pack.MAX_PACK) -> list[list[Outgoing]]:
    """Cut the objects (in the order given) into packs of at most ``limit`` raw bytes."""
    out: list[list[Outgoing]] = []
    cur: list[Outgoing] = []
    size = 0
    for o in objs:
        if cur and size + o.size > limit:
            out.append(cur)
            cur, size = [], 0
        cur.append(o)
        size += o.size
    if cur:
        out.append(cur)
    return out


def push_group(
    remote: Remote,
    store: ObjectStore,
    group: list[Outgoing],
    on_bytes: OnBytes,
    level: int = codec.LEVEL,
) -> Outcome:
    """Encode a group of local objects into one pack (each re-hashed on the way) and upload
    the pack, then its index (:func:`gitsnap.remote.large.push_group`, with the small
    objects' fast path first). A damaged local object is left out and reported."""
    return large.push_group(
        remote, store, group, on_bytes, level,
        fast=lambda writer, out: _push_small(store, group, writer, level, out),
    )  # fmt: skip


def _push_small(
    store: ObjectStore, group: list[Outgoing], writer: pack.PackWriter, level: int, out: Outcome
) -> list[Outgoing]:
    """Encode the group's small objects that sit raw in local packs, a run of members per
    read (:data:`SMALL_RUN`), each re-hashed and encoded from memory
    (:func:`gitsnap.codec.encode_small`: the stream's bytes, without its per-object
    machinery). Returns the objects left for the streaming path (deltas, loose objects,
    members stored encoded)."""
    slow: list[Outgoing] = []
    fast: list[tuple[pack.Pack, pack.Entry, Outgoing]] = []
    packs = store.packs() if store.packs_dir.is_dir() else None
    for o in group:
        p = packs.pack_of(o.oid) if packs is not None and packs.has(o.oid) else None
        e = p.entries[o.oid] if p is not None else None
        if (
            p is None
            or e is None
            or (o.base is not None and (packs is None or not _base_at_hand(packs, o)))
            or o.size > codec.BLOCK
            or e.codec != codec.RAW
            or e.length != codec.HEADER_SIZE + e.raw_size
        ):
            slow.append(o)
        else:
            fast.append((p, e, o))
    fast.sort(key=lambda t: (t[0].name, t[1].offset))
    buf = bytearray(SMALL_RUN)
    memo = codec.PlaneMemo()  # planes that do not pay are not tried for every member
    xor_memo = codec.PlaneMemo()  # the same for grouped deltas (their planes pay apart)
    i = 0
    while i < len(fast):
        p, first, _ = fast[i]
        j = i + 1
        while (
            j < len(fast)
            and fast[j][0] is p
            and fast[j][1].offset - (fast[j - 1][1].offset + fast[j - 1][1].length) <= GAP
            and fast[j][1].offset + fast[j][1].length - first.offset <= SMALL_RUN
        ):
            j += 1
        end = max(e.offset + e.length for _, e, _ in fast[i:j])
        if end - first.offset > len(buf):
            buf = bytearray(end - first.offset)
        view = memoryview(buf)[: end - first.offset]
        got = 0
        while got < len(view):
            n = os.preadv(p.fd, [view[got:]], first.offset + got)
            if not n:
                break
            got += n
        grouping = _Grouping(writer, level, (memo, xor_memo), out)
        for _, e, o in fast[i:j]:
            lo = e.offset - first.offset + codec.HEADER_SIZE
            piece = view[lo : min(lo + e.raw_size, got)]
            try:
                if e.raw_size != o.size:
                    raise store.blame(o.oid, o.size, o.label)
                if grouping.fits(o):
                    if oid_of(piece) != o.oid:
                        raise store.blame(o.oid, o.size, o.label)
                    grouping.add(o, piece, _base_bytes(packs, o))
                    continue
                if o.base is not None:  # a delta that no group takes: the streaming path
                    slow.append(o)
                    continue
                header, stored = codec.encode_small(
                    piece, o.oid, dtype=o.dtype, level=level, label=o.label, memo=memo
                )
            except ObjectCorrupt:
                out[o.oid] = large.not_pushed(store, o)
                continue
            writer.add_encoded(o.oid, stored, header)
            out[o.oid] = None
        grouping.flush_all()  # the pieces are views of the run's buffer: not kept past it
        i = j
    return slow


_Item = tuple["Outgoing", memoryview, "bytes | None"]  # an object, its bytes, its base's


def _base_at_hand(packs: pack.PackStore, o: Outgoing) -> bool:
    """Whether a small object's delta base sits raw in a local pack, as large as it is and
    shallow enough (a group's delta is XORed with it from memory)."""
    if o.base is None or o.size > codec.GROUP_OBJECT or o.base_depth >= codec.MAX_DEPTH:
        return False
    b = packs.entry(o.base) if packs.has(o.base) else None
    return b is not None and b.codec == codec.RAW and b.raw_size == o.size


def _base_bytes(packs: pack.PackStore | None, o: Outgoing) -> bytes | None:
    """The raw bytes of ``o``'s delta base from its local pack, verified; None (the object
    goes without a delta) if they cannot be read as they should be."""
    if o.base is None or packs is None or not packs.has(o.base):
        return None
    p = packs.pack_of(o.base)
    e = p.entries[o.base]
    if e.codec != codec.RAW or e.length != codec.HEADER_SIZE + e.raw_size or e.raw_size != o.size:
        return None
    try:
        data = os.pread(p.fd, e.raw_size, e.offset + codec.HEADER_SIZE)
    except OSError:
        return None  # a damaged store: the object goes whole; fsck names the damage
    return data if len(data) == o.size and oid_of(data) == o.base else None


def _size(parts: list[Any]) -> int:
    return sum(len(p) for p in parts)


class _Grouping:
    """Small objects of a push run gathered by dtype into group members
    (:func:`gitsnap.codec.encode_group`), each at most :data:`gitsnap.codec.GROUP_MAX`
    raw bytes; a group that does not shrink, or of one object, is stored object by object.

    A group with delta bases is encoded twice, its objects XORed with their bases and not,
    and the smaller kept: the tensors of a dense fine-tune differ from their parents in the
    low mantissa bits (XOR pays), a re-initialised one in every bit (it would not)."""

    def __init__(
        self,
        writer: pack.PackWriter,
        level: int,
        memos: tuple[codec.PlaneMemo, codec.PlaneMemo],
        out: Outcome,
    ) -> None:
        self.writer, self.level, self.out = writer, level, out
        self.memo, self.xor_memo = memos  # plain and XORed planes pay apart
        self.pending: dict[int, tuple[list[_Item], list[int]]] = {}

    @staticmethod
    def fits(o: Outgoing) -> bool:
        return 0 < o.size <= codec.GROUP_OBJECT and o.size % codec.DTYPES[o.dtype][1] == 0

    def add(self, o: Outgoing, piece: memoryview, base: bytes | None = None) -> None:
        items, held = self.pending.setdefault(o.dtype, ([], [0]))
        if held[0] + o.size > codec.GROUP_MAX:
            self.flush(o.dtype)
            items, held = self.pending.setdefault(o.dtype, ([], [0]))
        items.append((o, piece, base))
        held[0] += o.size

    def flush(self, dtype: int) -> None:
        items, _ = self.pending.pop(dtype, ([], [0]))
        member = None
        deltas = False
        if len(items) > 1:
            plain = [(o.oid, d) for o, d, _ in items]
            member = codec.encode_group(plain, dtype=dtype, level=self.level, memo=self.memo)
            if any(b is not None for _, _, b in items):
                xored = codec.encode_group(
                    [(o.oid, d if b is None else codec.xor(d, b)) for o, d, b in items],
                    dtype=dtype, level=self.level, memo=self.xor_memo,
                )  # fmt: skip
                if xored is not None and (member is None or _size(xored) < _size(member)):
                    member, deltas = xored, True
        if member is None:
            for o, d, _ in items:
                header, stored = codec.encode_checked(
                    d, dtype=dtype, level=self.level, memo=self.memo
                )
                self.writer.add_encoded(o.oid, stored, header)
                self.out[o.oid] = None
            return
        rows: list[pack.GroupRow] = []
        at = 0
        for o, d, b in items:
            if deltas and b is not None:
                rows.append((o.oid, at, len(d), o.base, o.base_depth + 1))
            else:
                rows.append((o.oid, at, len(d), None, 0))
            at += len(d)
            self.out[o.oid] = None
        self.writer.add_group(member, rows, dtype)

    def flush_all(self) -> None:
        for dtype in list(self.pending):
            self.flush(dtype)


# ------------------------------------------------------------------ fsck


def remote_lookup(remote: Remote, found: RemotePacks) -> codec.Lookup:
    """Find a stored object on the remote (a delta base outside the pack being checked):
    a small packed member by one ranged read; a large member, or a loose object, by
    windows of ranged reads (:mod:`gitsnap.remote.large`), never whole."""

    def lookup(oid: str) -> codec.Stored:
        e = found.where.get(oid)
        if e is None:
            return large.loose_stored(remote, oid)
        if large.is_large(e):
            return large.member_stored(remote, e)
        data = remote.read_pack_file(f"pack-{e.pack}.pack", e.offset, e.offset + e.length)
        if e.grouped:
            return pack.group_stored(e, data, "delta base", bases=lookup)
        return codec.Stored(len(data), codec.bytes_reader(data))

    return lookup


def verify_pack(
    remote: Remote,
    rp: RemotePack,
    labels: Callable[[str], str],
    outside: codec.Lookup | None = None,
) -> tuple[dict[str, bool], bool]:
    """Read a whole pack (one request): every member decoded and re-hashed, the pack's bytes
    against its name. Returns ``({oid: intact}, the pack matches its name)``: a member is
    judged by its own bytes, the pack by all of them."""
    from gitsnap.hashing import hasher

    if any(large.is_large(e) for e in rp.entries.values()):  # one pass, a window at a time
        return large.verify_pack(remote, rp.name, rp.size, rp.entries, labels, outside)
    data = remote.read_pack_file(f"pack-{rp.name}.pack", 0, rp.size)
    h = hasher(len(data))
    h.update(data)
    whole = h.hexdigest() == rp.name and len(data) == rp.size
    view = memoryview(data)
    pieces = {o: view[e.offset : e.offset + e.length] for o, e in rp.entries.items()}

    def lookup(oid: str) -> codec.Stored:
        piece = pieces.get(oid)
        if piece is None:
            if outside is None:
                raise ObjectMissing(f"delta base {oid[:12]}… is not in pack {rp.name[:12]}…")
            return outside(oid)
        if rp.entries[oid].grouped:
            return in_groups.stored(rp.entries[oid], piece, labels(oid))
        return codec.Stored(len(piece), codec.bytes_reader(piece))

    result: dict[str, bool] = {}
    in_groups = pack.Groups(bases=lookup)
    for oid in sorted(rp.entries, key=lambda o: (rp.entries[o].offset, o)):
        try:
            e = rp.entries[oid]
            if e.grouped:
                in_groups.bytes_of(e, pieces[oid], labels(oid))
            else:
                codec.decode_bytes(pieces[oid], oid, lookup, labels(oid), max_size=pack.MAX_PACK)
            result[oid] = True
        except GitsnapError:
            result[oid] = False
    in_groups.close()
    return result, whole


__all__ = [
    "GAP",
    "RUN_MAX",
    "UNPACK_LIMIT",
    "Outgoing",
    "RemotePack",
    "RemotePacks",
    "Wanted",
    "cache_dir",
    "fetch_one",
    "fetch_run",
    "groups",
    "load",
    "push_group",
    "remote_lookup",
    "replace_pack_hint",
    "runs",
    "verify_pack",
]
