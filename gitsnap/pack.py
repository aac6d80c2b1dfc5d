"""Immutable pack files: many small stored objects in one file, with an index (DESIGN D18).

A folder of packs (``<store>/packs/`` locally, ``<remote>/gitsnap/blake3/packs/``
on a remote) holds pairs ``pack-<name>.pack`` + ``pack-<name>.idx``; the
layout is specified in ``docs/storage-format.md``. A pack is a short header
followed by stored objects back to back (each a :mod:`gitsnap.codec` header +
body, so a member is self-describing); its index maps object id to offset,
length, codec, raw size, dtype, chain depth and delta base, sorted by id and
sealed by a BLAKE3 of its bytes. ``<name>`` is the BLAKE3 of the pack file.

Why packs: below :data:`THRESHOLD` an object costs more as a file (create,
rename, a request on S3) than as bytes; 20,000 tensors of 16 KiB become five
packs instead of 20,000 files (measurements in docs/benchmarks.md).

Safety: packs are written to ``tmp/`` and renamed into place, the pack before
its index, so a reader (who finds packs by their index) never sees a partial
one. :func:`rewrite` (gc) writes the new packs completely before it deletes
an old index, then its pack: a ``kill -9`` at any point leaves every kept
object readable (perhaps twice, which is harmless). An index or pack that
lies -- wrong sizes, offsets past the end, a bad checksum, more entries
than the file can hold -- is a :class:`~gitsnap.errors.ObjectCorrupt` naming
the file, checked before anything is allocated from what it says; every
object read is decoded and re-hashed (:mod:`gitsnap.codec`).
"""

from __future__ import annotations

import os
import struct
import tempfile
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitsnap import codec
from gitsnap.codec import HEADER_SIZE, Base, Stored
from gitsnap.errors import RESAVE, ConcurrentChange, GitsnapError, ObjectCorrupt, ObjectMissing
from gitsnap.fsutil import copy_range
from gitsnap.hashing import hasher, oid_of

# Objects below 1 MiB go into packs: measured in docs/benchmarks.md, a loose
# object costs ~0.1-0.3 ms of file creation here (and 10-30 ms per request on
# S3), as much as copying 0.1-1 MiB; above it the per-object cost is noise.
THRESHOLD = 1024 * 1024
# Fewer small objects than this are written loose, as git's receive/fetch.unpackLimit
# (100): a pack and its index cost every later reader, and a few files cost nothing.
UNPACK_LIMIT = 100
MAX_PACK = 64 * 1024 * 1024  # as git packs and Xet xorbs: few files, cheap to rewrite
PACK_MAGIC = b"GSPK"
INDEX_MAGIC = b"GSIX"
PACK_VERSION = 1
# An index with group entries (codec.GROUP) has version 2: a reader of version 1 would
# take their start (in the reserved bytes) for damage, and says to upgrade instead.
GROUP_VERSION = 2
_PACK_HEADER = struct.Struct("<4sIQ")  # magic, version, reserved
_INDEX_HEADER = struct.Struct("<4sIQ32s")  # magic, version, entry count, pack name (raw)
_ENTRY = struct.Struct("<32sQQQBBB5s32s")
ENTRY_SIZE = _ENTRY.size  # 96
_TRAILER = 32  # BLAKE3 of the index bytes before it
# An index names at most this many objects (a 64 MiB pack of 64-byte headers
# holds ~1M): an index claiming more is damage, refused before it is read.
MAX_ENTRIES = 1 << 21
MAX_INDEX_SIZE = _INDEX_HEADER.size + MAX_ENTRIES * ENTRY_SIZE + _TRAILER
_WRITE_BUFFER = 1 << 20  # members are small: one write call per MiB, not per member
_READONLY = 0o444
ORPHAN_GRACE = 3600.0  # a pack without an index younger than this may be a commit in progress
_ZERO = b"\0" * 32


@dataclass(frozen=True)
class Entry:
    """Where one object is in a pack, and what its stored form is."""

    oid: str
    offset: int
    length: int
    raw_size: int
    codec: int
    dtype: int
    depth: int
    base: str | None
    pack: str = ""  # the pack's name
    start: int = 0  # a grouped object (codec.GROUP): where its bytes start in the group
    group_raw: int = 0  # a grouped object: the raw bytes of its whole group

    @property
    def grouped(self) -> bool:
        return self.codec == codec.GROUP

    @property
    def share(self) -> int:
        """The stored bytes this object accounts for: its member's length, or for a grouped
        object its part of the group member's by raw size."""
        if self.codec != codec.GROUP or not self.group_raw:
            return self.length
        return self.length * self.raw_size // self.group_raw

    def pack_bytes(self) -> bytes:
        return _ENTRY.pack(
            bytes.fromhex(self.oid),
            self.offset,
            self.length,
            self.raw_size,
            self.codec,
            self.dtype,
            self.depth,
            self.start.to_bytes(5, "little"),
            bytes.fromhex(self.base) if self.base else _ZERO,
        )


class Groups:
    """Grouped objects (codec.GROUP) read from their group members' bytes: each member
    decoded once (the last few kept, by pack and offset), each object's slice verified
    against its id -- a grouped delta's slice XORed with its base first, the base found by
    ``bases``. A damaged member fails every object in it, each named."""

    def __init__(self, keep: int = 4, bases: codec.Lookup | None = None) -> None:
        self._keep = keep
        self.bases = bases
        self._decoded: dict[tuple[str, int], memoryview | str] = {}

    def bytes_of(
        self,
        e: Entry,
        member: bytes | bytearray | memoryview,
        label: str = "object",
        bases: codec.Lookup | None = None,
    ) -> memoryview:
        key = (e.pack, e.offset)
        got = self._decoded.get(key)
        if got is None:
            try:
                if len(member) != e.length:
                    raise codec.corrupt(e.oid, label, "its group member is cut short")
                got = codec.decode_group(member, e.oid, label)
            except ObjectCorrupt as exc:
                got = exc.message.split(" is corrupt: ", 1)[-1]
            if len(self._decoded) >= self._keep:
                del self._decoded[next(iter(self._decoded))]
            self._decoded[key] = got
        if isinstance(got, str):
            raise codec.corrupt(e.oid, label, got)
        base = None
        if e.base is not None:
            base = _base_raw(bases or self.bases, e, label)
        return codec.group_slice(got, e.start, e.raw_size, e.oid, label, base)

    def stored(
        self,
        e: Entry,
        member: bytes | bytearray | memoryview,
        label: str = "object",
        bases: codec.Lookup | None = None,
    ) -> Stored:
        """The object as a raw (``encoded=False``) Stored."""
        raw = self.bytes_of(e, member, label, bases)
        return Stored(len(raw), codec.bytes_reader(raw), encoded=False)

    def close(self) -> None:
        """Drop the decoded groups and the base lookup: a lookup that reads through this
        object makes a cycle that would keep a run's bytes until the cyclic GC ran."""
        self.bases = None
        self._decoded.clear()


_chain = threading.local()  # how many grouped deltas deep this thread is resolving


def _base_raw(bases: codec.Lookup | None, e: Entry, label: str) -> bytes | bytearray | memoryview:
    """The raw bytes of a grouped delta's base, verified. Hostile indexes may chain deltas
    in a loop: more than codec.MAX_DEPTH grouped deltas deep is damage."""
    assert e.base is not None
    if bases is None:
        raise codec.corrupt(e.oid, label, "it is a delta and no base store was given", e.base)
    depth = getattr(_chain, "depth", 0)
    if depth >= codec.MAX_DEPTH:
        raise codec.corrupt(
            e.oid, label, f"its delta chain is longer than {codec.MAX_DEPTH}", e.base
        )
    _chain.depth = depth + 1
    try:
        st = bases(e.base)
        if st.length > codec.HEADER_SIZE + 2 * codec.GROUP_OBJECT:
            raise codec.corrupt(e.oid, label, "its delta base is larger than the object", e.base)
        data = bytearray(st.length)
        got = 0
        while got < st.length and (n := st.read_at(got, memoryview(data)[got:])):
            got += n
        what = f"delta base of {label}"
        if not st.encoded:
            if oid_of(data[:got]) != e.base:
                raise codec.corrupt(e.base, what, "its bytes do not match its id")
            return data[:got]
        raw = codec.decode_small(data[:got], e.base, what)
        return raw if raw is not None else codec.decode_bytes(data[:got], e.base, bases, what)
    finally:
        _chain.depth = depth


def group_stored(
    e: Entry,
    member: bytes | bytearray | memoryview,
    label: str = "object",
    bases: codec.Lookup | None = None,
) -> Stored:
    """One grouped object as a raw Stored, from its group member's bytes."""
    return Groups(keep=1, bases=bases).stored(e, member, label)


def _corrupt(path: Path, why: str) -> ObjectCorrupt:
    return ObjectCorrupt(
        f"pack file {path.name} is corrupt: {why}",
        hint=f"delete {path.with_suffix('.idx')} and {path.with_suffix('.pack')} and fetch "
        f"the objects again (git snap fetch), or {RESAVE}",
    )


def read_index(path: Path) -> tuple[str, list[Entry]]:
    """Parse and check an index file: ``(pack name, entries)``; ObjectCorrupt if it lies."""
    try:
        size = path.stat().st_size
        if size > MAX_INDEX_SIZE:
            raise _corrupt(path, f"its index is {size} bytes, more than any pack needs")
        data = path.read_bytes()
    except OSError as exc:
        raise _corrupt(path, f"its index cannot be read ({exc.strerror})") from None
    if len(data) < _INDEX_HEADER.size + _TRAILER:
        raise _corrupt(path, "its index is cut short")
    magic, version, count, name = _INDEX_HEADER.unpack_from(data)
    if magic != INDEX_MAGIC:
        raise _corrupt(path, "its index does not start with the index magic")
    if version not in (PACK_VERSION, GROUP_VERSION):
        raise ObjectCorrupt(
            f"pack index {path.name} has version {version}; this gitsnap reads "
            f"{PACK_VERSION} and {GROUP_VERSION}",
            hint="upgrade gitsnap (pip install -U gitsnap) to read it",
        )
    if count > MAX_ENTRIES or len(data) != _INDEX_HEADER.size + count * ENTRY_SIZE + _TRAILER:
        raise _corrupt(path, f"its index claims {count} entries in {len(data)} bytes")
    h = hasher()
    h.update(memoryview(data)[: len(data) - _TRAILER])
    if h.digest() != data[len(data) - _TRAILER :]:
        raise _corrupt(path, "its index fails its checksum")
    pack = name.hex()
    if path.name != f"pack-{pack}.idx":
        raise _corrupt(path, f"its index names pack {pack[:12]}…, not the pack it sits beside")
    entries: list[Entry] = []
    prev = b""
    groups: dict[int, int] = {}  # group member offset -> raw bytes of its objects
    for i in range(count):
        raw_oid, off, length, raw, cid, dtype, depth, res, base = _ENTRY.unpack_from(
            data, _INDEX_HEADER.size + i * ENTRY_SIZE
        )
        start = 0
        if cid == codec.GROUP and version == GROUP_VERSION:
            start = int.from_bytes(res, "little")
            res = b"\0" * 5
            groups[off] = groups.get(off, 0) + raw
        ok = (
            raw_oid > prev
            and (cid in codec.CODEC_NAMES or (cid == codec.GROUP and version == GROUP_VERSION))
            and dtype in codec.DTYPES
            and res == b"\0" * 5
            and (cid != codec.GROUP or start + raw <= codec.GROUP_MAX)
            and length >= HEADER_SIZE
            and off >= _PACK_HEADER.size
            and (
                (base == _ZERO) == (depth == 0)  # a grouped object: a delta or not
                if cid == codec.GROUP
                else (base == _ZERO) == (cid != codec.XOR)
            )
            and depth <= codec.MAX_DEPTH
        )
        if not ok:
            raise _corrupt(path, f"index entry {i} is inconsistent")
        prev = raw_oid
        entries.append(
            Entry(
                raw_oid.hex(),
                off,
                length,
                raw,
                cid,
                dtype,
                depth,
                base.hex() if base != _ZERO else None,
                pack,
                start,
            )
        )
    if groups:  # each grouped entry learns its group's raw size (set once, while it is new)
        for e in entries:
            if e.codec == codec.GROUP:
                object.__setattr__(e, "group_raw", groups[e.offset])
    return pack, entries


class Pack:
    """One pack and its index, open for reading."""

    def __init__(self, idx_path: Path) -> None:
        self.idx_path = idx_path
        self.name, entries = read_index(idx_path)
        self.path = idx_path.with_suffix(".pack")
        self._groups = Groups()
        try:
            self.fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise _corrupt(self.path, f"its pack file cannot be opened ({exc.strerror})") from None
        try:
            self.size = os.fstat(self.fd).st_size
            head = os.pread(self.fd, _PACK_HEADER.size, 0)
            if len(head) != _PACK_HEADER.size or _PACK_HEADER.unpack(head)[:2] != (
                PACK_MAGIC,
                PACK_VERSION,
            ):
                raise _corrupt(self.path, "it does not start with the pack magic")
            for e in entries:
                if e.offset + e.length > self.size:
                    raise _corrupt(self.path, f"its index points past its end ({e.oid[:12]}…)")
        except BaseException:
            os.close(self.fd)
            raise
        self.entries = {e.oid: e for e in entries}
        # A store dropped without close() (the Python API makes one per call) closes its packs.
        self._close = weakref.finalize(self, os.close, self.fd)

    def order_key(self, oid: str) -> tuple[int, str]:
        """Sort key: pack order (a group's objects together: its member decoded once)."""
        return self.entries[oid].offset, oid

    def stored(self, oid: str, bases: codec.Lookup | None = None) -> Stored:
        """The object's stored form (a grouped one: raw, its delta base from ``bases``)."""
        e = self.entries[oid]
        fd, start, length = self.fd, e.offset, e.length
        if e.grouped:
            return self._groups.stored(e, os.pread(fd, length, start), bases=bases)

        def read_at(offset: int, view: memoryview) -> int:
            want = min(len(view), length - offset)
            return os.preadv(fd, [view[:want]], start + offset) if want > 0 else 0

        return Stored(length, read_at)

    def close(self) -> None:
        self._close()


class LooseObjects:
    """A :data:`gitsnap.codec.Lookup` over a v1 loose store (``ab/cdef…`` raw files).

    Lets a packed delta use a loose object as its base, and v1 stores mix
    with v2 packs: ``PackStore(root / "packs", fallback=LooseObjects(root))``.
    Files stay open until :meth:`close` (objects are immutable; reads use pread).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._fds: dict[str, int] = {}
        self._lock = threading.Lock()  # lookups come from many threads (push, pull)

    def __call__(self, oid: str) -> Stored:
        with self._lock:
            return self._open(oid)

    def _open(self, oid: str) -> Stored:
        fd = self._fds.get(oid)
        if fd is None:
            path = self.root / oid[:2] / oid[2:]
            try:
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except FileNotFoundError:
                raise ObjectMissing(f"object {oid[:12]}… is neither packed nor loose") from None
            except OSError as exc:
                raise codec.corrupt(
                    oid, "object", f"it cannot be opened ({exc.strerror})"
                ) from None
            self._fds[oid] = fd
        return Stored(os.fstat(fd).st_size, codec.fd_read_at(fd), encoded=False)

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()

    def __enter__(self) -> LooseObjects:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class PackStore:
    """Every pack of one folder, as one :class:`gitsnap.codec.Lookup`.

    ``fallback`` finds objects that are not packed (the loose store: v1 raw
    objects as ``Stored(..., encoded=False)``), so that deltas may use a base
    from either place.
    """

    root: Path
    fallback: codec.Lookup | None = None
    packs: list[Pack] = field(default_factory=list)
    _where: dict[str, Pack] = field(default_factory=dict)
    damaged: list[ObjectCorrupt] = field(default_factory=list)  # packs that could not be read

    def __post_init__(self) -> None:
        self.reload()

    def reload(self) -> None:
        """See the packs as they are now. Packs still there stay open as they were (a
        reader in another thread may be using them); gone ones are closed."""
        try:
            names = sorted(p for p in self.root.glob("pack-*.idx") if p.is_file())
        except OSError:
            names = []
        old = {p.idx_path: p for p in self.packs}
        packs: list[Pack] = []
        self.damaged = []
        for idx in names:
            if idx in old:
                packs.append(old.pop(idx))
                continue
            try:
                packs.append(Pack(idx))
            except ObjectCorrupt as exc:
                # One damaged pack hides its own objects (missing, with fsck naming the
                # pack), not every other pack's.
                self.damaged.append(exc)
            except FileNotFoundError:
                continue  # deleted meanwhile (a concurrent gc)
        for gone in old.values():
            gone.close()
        where: dict[str, Pack] = {}
        for pack in packs:
            for oid in pack.entries:
                where.setdefault(oid, pack)
        self.packs, self._where = packs, where

    def close(self) -> None:
        for p in self.packs:
            p.close()
        self.packs, self._where = [], {}

    def __enter__(self) -> PackStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def has(self, oid: str) -> bool:
        return oid in self._where

    def oids(self) -> set[str]:
        return set(self._where)

    def entry(self, oid: str) -> Entry:
        return self._where[oid].entries[oid]

    def pack_of(self, oid: str) -> Pack:
        return self._where[oid]

    def entries(self) -> Iterator[Entry]:
        for oid, pack in self._where.items():
            yield pack.entries[oid]

    def __call__(self, oid: str) -> Stored:
        pack = self._where.get(oid)
        if pack is not None:
            return pack.stored(oid, self)
        if self.fallback is not None:
            return self.fallback(oid)
        raise ObjectMissing(f"object {oid[:12]}… is in no pack of {self.root}")

    def iter_raw(
        self, oid: str, buf: bytearray | memoryview, label: str = "object"
    ) -> Iterator[memoryview]:
        """An object's raw bytes in chunks of ``buf`` (through its delta chain); at the end,
        ObjectCorrupt unless they hash to ``oid``. Trust nothing before the end."""
        return codec.iter_decoded(self, oid, buf, label)

    def read(self, oid: str, label: str = "object") -> bytes:
        """A packed object's raw bytes, decoded and verified, held in memory.

        For small objects (packed ones are below :data:`THRESHOLD`); an entry
        claiming more than :data:`MAX_PACK` raw bytes is refused before anything
        is allocated -- use :meth:`iter_raw` for objects that large.
        """
        e = self.entry(oid)
        if e.raw_size > MAX_PACK:
            raise ValueError(f"{oid[:12]}… has {e.raw_size} raw bytes: stream it (iter_raw)")
        out = bytearray(e.raw_size)
        got = 0
        for chunk in self.iter_raw(oid, bytearray(min(codec.BLOCK, max(1, e.raw_size))), label):
            if got + len(chunk) > len(out):
                raise _corrupt(self._where[oid].path, f"{oid[:12]}… is longer than its entry")
            out[got : got + len(chunk)] = chunk
            got += len(chunk)
        if got != e.raw_size:
            raise _corrupt(self._where[oid].path, f"{oid[:12]}… is shorter than its entry")
        return bytes(out)

    def verify(self, corrupt: set[str] | None = None) -> list[ObjectCorrupt]:
        """fsck: every pack's name against its bytes, every member decoded and re-hashed.

        ``corrupt`` (if given) collects the ids of the members that failed."""
        problems: list[ObjectCorrupt] = []
        buf = bytearray(codec.BLOCK)
        for pack in self.packs:
            h = hasher(pack.size)
            pos = 0
            while pos < pack.size:
                n = os.preadv(pack.fd, [memoryview(buf)], pos)
                if not n:
                    break
                h.update(memoryview(buf)[:n])
                pos += n
            if h.hexdigest() != pack.name:
                problems.append(_corrupt(pack.path, "its bytes do not match its name"))

            # This pack's copy of each member, not the first pack that names it.
            def here(o: str, p: Pack = pack) -> Stored:
                return p.stored(o, self) if o in p.entries else self(o)

            for oid in sorted(pack.entries, key=pack.order_key):
                e = pack.entries[oid]
                try:
                    h = codec.stored_header(pack.stored(oid, self), oid)
                    if not e.grouped and (h.codec, h.dtype, h.depth, h.raw_size, h.base) != (
                        e.codec,
                        e.dtype,
                        e.depth,
                        e.raw_size,
                        e.base,
                    ):
                        raise _corrupt(
                            pack.path,
                            f"the index entry of {oid[:12]}… disagrees with the object's header",
                        )
                    for _ in codec.iter_decoded(here, oid, buf):
                        pass
                except GitsnapError as exc:
                    if corrupt is not None:
                        corrupt.add(oid)
                    message = (
                        exc.message
                        if exc.message.startswith("pack file ")
                        else (f"{pack.path.name}: {exc.message}")
                    )
                    problems.append(ObjectCorrupt(message, exc.hint))
        return problems


# -- writing --------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _PackFile:
    """The pack being written: appends gathered into a reused 1 MiB buffer, one ``pwrite``
    per MiB at a position kept here (a buffered file's ``tell`` is an ``lseek`` each call:
    two per member), hashed as it is flushed while the writes stay appends.

    The file-like subset :func:`gitsnap.codec.encode` uses: ``write``, ``tell``,
    ``seek`` (absolute), ``truncate`` (at the position).
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pos = 0  # where the next write lands
        self._buf = bytearray(_WRITE_BUFFER)
        self._n = 0  # bytes gathered, to be written at self.pos - self._n
        self.hash: Any = hasher()  # of the bytes [0, hashed); None once it cannot follow
        self._hashed = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        n = len(data)
        if self._n + n > len(self._buf):
            self.flush()
            if n > len(self._buf) // 2:
                self._put(memoryview(data).cast("B"), self.pos)
                self.pos += n
                return n
        self._buf[self._n : self._n + n] = data
        self._n += n
        self.pos += n
        return n

    def write_two(self, head: bytes, data: bytes | bytearray | memoryview) -> None:
        """``write(head); write(data)`` in one call (a member's header and body)."""
        h, n = len(head), len(head) + len(data)
        k = self._n
        if k + n > len(self._buf):
            self.write(head)
            self.write(data)
            return
        self._buf[k : k + h] = head
        self._buf[k + h : k + n] = data
        self._n += n
        self.pos += n

    def _put(self, view: memoryview, at: int) -> None:
        if self.hash is not None:
            if at == self._hashed:
                self.hash.update(view)
                self._hashed += len(view)
            else:
                self.hash = None
        while view:
            k = os.pwrite(self.fd, view, at)
            view, at = view[k:], at + k

    def flush(self) -> None:
        if self._n:
            n, self._n = self._n, 0
            self._put(memoryview(self._buf)[:n], self.pos - n)

    def tell(self) -> int:
        return self.pos

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        if whence != os.SEEK_SET:
            raise ValueError("a pack file seeks to absolute positions only")
        self.flush()
        self.pos = pos
        return pos

    def truncate(self) -> int:
        self.flush()
        os.ftruncate(self.fd, self.pos)
        if self._hashed > self.pos:
            self.hash = None
        return self.pos

    def digest(self) -> str:
        """The BLAKE3 of the whole file (read back if the writes were not plain appends)."""
        self.flush()
        end = os.fstat(self.fd).st_size
        if self.hash is not None and self._hashed == end:
            return str(self.hash.hexdigest())
        h = hasher(end)
        buf = memoryview(bytearray(min(codec.BLOCK, max(1, end))))
        pos = 0
        while pos < end:
            k = os.preadv(self.fd, [buf], pos)
            if not k:
                break
            h.update(buf[:k])
            pos += k
        return str(h.hexdigest())


# Raw member headers differ only in their size: made once per size (a checkpoint's small
# tensors come in a few sizes), not packed and checksummed per member.
_RAW_HEADERS: dict[int, bytes] = {}


def raw_header(n: int) -> bytes:
    head = _RAW_HEADERS.get(n)
    if head is None:
        head = codec.Header(codec.RAW, 0, 0, n, 0, 0, None).pack()
        if len(_RAW_HEADERS) < 4096:
            _RAW_HEADERS[n] = head
    return head


# (oid, offset, length, raw size, codec, dtype, depth, base): an index entry while the
# pack is written; Entry objects are made once, when it is published.
_Row = tuple[str, int, int, int, int, int, int, "str | None"]
# A grouped object: (oid, start in the group, raw size, delta base or None, depth).
GroupRow = tuple[str, int, int, "str | None", int]


class PackWriter:
    """Write objects into new packs in ``root``; :meth:`finish` publishes them.

    Nothing is visible before :meth:`finish`; :meth:`abort` (or an exception
    in a ``with`` block) leaves no trace but temp files it removes. A sealed
    pack is flushed to disk (``fsync``) in the background while the next one
    is written; :meth:`finish` waits for it before publishing.
    """

    def __init__(
        self,
        root: Path,
        max_pack: int = MAX_PACK,
        *,
        tmp_dir: Path | None = None,
        durable: bool = True,
    ) -> None:
        """``tmp_dir``: where packs are written before :meth:`finish` (default ``root/tmp``;
        on the same filesystem as ``root``). ``durable=False``: no ``fsync`` (a pack a push
        uploads and drops, or one on a remote folder, which nothing else fsyncs either)."""
        self.root, self.max_pack, self.durable = root, max_pack, durable
        self.tmp_dir = tmp_dir if tmp_dir is not None else root / "tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self._f: _PackFile | None = None
        self._tmp: str | None = None
        self._rows: list[_Row] = []
        self._starts: dict[str, int] = {}  # grouped objects: where in their group
        # name, rows, pack tmp, idx tmp, the pack's fsync
        self._done: list[tuple[str, list[_Row], str, str, threading.Thread]] = []
        self.written: set[str] = set()

    def _open(self) -> _PackFile:
        if self._f is None:
            fd, self._tmp = tempfile.mkstemp(dir=self.tmp_dir, prefix="pack-", suffix=".pack")
            self._f = _PackFile(fd)
            self._f.write(_PACK_HEADER.pack(PACK_MAGIC, PACK_VERSION, 0))
            self._rows = []
        return self._f

    def add(
        self,
        oid: str,
        read_at: codec.ReadAt,
        size: int,
        *,
        dtype: int = 0,
        base: Base | None = None,
        label: str = "object",
        level: int = codec.LEVEL,
    ) -> Entry | None:
        """Encode one object into the current pack (None if this writer has it already)."""
        if oid in self.written:
            return None
        f = self._open()
        offset = f.tell()
        try:
            enc = codec.encode(
                read_at, size, oid, f,  # type: ignore[arg-type] # the IO subset encode uses
                dtype=dtype, base=base, label=label, level=level, truncate=False,
            )  # fmt: skip
        except BaseException:
            # A source that does not hash to its id (or a failed read): drop what it
            # wrote, so the pack holds only the members its index names.
            f.seek(offset)
            f.truncate()
            raise
        row = (oid, offset, enc.stored_size, size, enc.codec, dtype, enc.depth, enc.base)
        self._record(row)
        return Entry(*row)

    def add_encoded(
        self, oid: str, stored: bytes | bytearray | memoryview, header: codec.Header
    ) -> None:
        """Append a member already encoded in memory (:func:`gitsnap.codec.encode_small`),
        whose raw bytes the caller hashed to ``oid``."""
        if oid in self.written:
            return
        f = self._open()
        offset = f.tell()
        f.write(stored)
        self._record(
            (oid, offset, len(stored), header.raw_size, header.codec, header.dtype,
             header.depth, header.base)
        )  # fmt: skip

    def add_group(
        self, member: Sequence[bytes | bytearray | memoryview], items: list[GroupRow], dtype: int
    ) -> None:
        """Append a group member (:func:`gitsnap.codec.encode_group`) and index the objects
        ``items`` names in it (``(oid, start, raw size)``, each hashed by the caller, or
        copied from an index: gc keeps a group whole); objects written already are left
        out of the index (the member keeps their bytes)."""
        f = self._open()
        offset = f.tell()
        for part in member:
            f.write(part)
        length = f.tell() - offset
        for oid, start, size, base, depth in items:
            if oid not in self.written:
                self._starts[oid] = start
                self._rows.append((oid, offset, length, size, codec.GROUP, dtype, depth, base))
                self.written.add(oid)
        if f.pos >= self.max_pack:
            self._seal()

    def add_raw(
        self,
        oid: str,
        data: bytes | bytearray | memoryview | None = None,
        *,
        fd: int = -1,
        offset: int = 0,
        size: int = 0,
    ) -> Entry | None:
        """Append an object in raw form, from ``data`` or bytes ``[offset, offset+size)`` of ``fd``.

        The caller has hashed these bytes to ``oid`` (save, fetch): nothing is
        encoded or re-hashed here, which keeps the local store's writes as cheap
        as a loose object's (one kernel copy). A source that ends early is a
        :class:`~gitsnap.errors.ConcurrentChange`, and nothing of it stays.
        """
        if oid in self.written:
            return None
        n = len(data) if data is not None else size
        f = self._open()
        start = f.tell()
        f.write(raw_header(n))
        if data is not None:
            f.write(data)
        else:
            f.flush()
            got = copy_range(fd, f.fd, size, src_offset=offset, dst_offset=start + HEADER_SIZE)
            f.seek(start + HEADER_SIZE + got)  # the copy bypassed the hash: read back
            f.hash = None
            if got != size:
                f.seek(start)
                f.truncate()
                raise ConcurrentChange("the checkpoint got shorter while it was being read")
        row = (oid, start, HEADER_SIZE + n, n, codec.RAW, 0, 0, None)
        self._record(row)
        return Entry(*row)

    def add_raw_many(
        self, items: Iterable[tuple[str, bytes | bytearray | memoryview]]
    ) -> list[bool]:
        """:meth:`add_raw` from memory for many objects: whether each was added."""
        out: list[bool] = []
        for oid, data in items:
            if oid in self.written:
                out.append(False)
                continue
            f = self._open()
            start = f.pos
            n = len(data)
            f.write_two(raw_header(n), data)
            self._record((oid, start, HEADER_SIZE + n, n, codec.RAW, 0, 0, None))
            out.append(True)
        return out

    def add_stored(self, oid: str, stored: Stored, label: str = "object") -> Entry | None:
        """Copy an object's stored form as it is (repack, gc); its header is checked."""
        if oid in self.written:
            return None
        h = codec.stored_header(stored, oid, label)
        f = self._open()
        offset = f.tell()
        if not stored.encoded:
            f.write(raw_header(h.raw_size))
        buf = memoryview(bytearray(min(codec.BLOCK, max(1, stored.length))))
        pos = 0
        while pos < stored.length:
            n = stored.read_at(pos, buf[: min(len(buf), stored.length - pos)])
            if not n:
                raise codec.corrupt(oid, label, "it is cut short")
            f.write(buf[:n])
            pos += n
        row = (oid, offset, f.tell() - offset, h.raw_size, h.codec, h.dtype, h.depth, h.base)
        self._record(row)
        return Entry(*row)

    def _record(self, row: _Row) -> None:
        self._rows.append(row)
        self.written.add(row[0])
        assert self._f is not None
        if self._f.pos >= self.max_pack:
            self._seal()

    def _seal(self) -> None:
        """Finish the current pack in tmp/: name it, write its index (not yet published)."""
        f, tmp = self._f, self._tmp
        if f is None or tmp is None:
            return
        self._f = self._tmp = None
        name = f.digest()
        os.fchmod(f.fd, _READONLY)  # as loose objects: immutable, readable by the group
        # The pack reaches the disk while the next one is written; finish() waits.
        sync = threading.Thread(
            target=_sync_close if self.durable else os.close, args=(f.fd,), daemon=True
        )
        sync.start()
        rows = sorted(self._rows)
        starts, self._starts = self._starts, {}
        version = GROUP_VERSION if starts else PACK_VERSION
        body = bytearray(_INDEX_HEADER.pack(INDEX_MAGIC, version, len(rows), bytes.fromhex(name)))
        pack_entry = _ENTRY.pack
        none = b"\0" * 5
        for oid, off, length, raw, cid, dtype, depth, base in rows:
            body += pack_entry(
                bytes.fromhex(oid), off, length, raw, cid, dtype, depth,
                starts[oid].to_bytes(5, "little") if cid == codec.GROUP else none,
                bytes.fromhex(base) if base else _ZERO,
            )  # fmt: skip
        ih = hasher()
        ih.update(body)
        body += ih.digest()
        fd, idx_tmp = tempfile.mkstemp(dir=self.tmp_dir, prefix="pack-", suffix=".idx")
        with os.fdopen(fd, "wb") as out:
            out.write(body)
            out.flush()
            os.fchmod(out.fileno(), _READONLY)
            if self.durable:
                os.fsync(out.fileno())
        self._done.append((name, rows, tmp, idx_tmp, sync))

    def seal(self) -> list[tuple[str, Path, Path]]:
        """Seal every pack written and wait until each is on disk (``fsync``), without
        publishing them: ``(pack name, pack temp file, index temp file)`` each, for the
        caller to move into place, the pack before its index. The temp files are the
        caller's from here on (removed by neither :meth:`finish` nor :meth:`abort`)."""
        self._seal()
        for _, _, _, _, sync in self._done:
            sync.join()
        sealed = [(name, Path(p), Path(i)) for name, _, p, i, _ in self._done]
        self._done = []
        return sealed

    def finish(self) -> list[tuple[str, int]]:
        """Publish every pack written: pack renamed first, then its index. Returns
        ``(pack name, member count)`` for each."""
        self._seal()
        for _, _, _, _, sync in self._done:
            sync.join()
        for name, _, pack_tmp, idx_tmp, _ in self._done:
            Path(pack_tmp).replace(self.root / f"pack-{name}.pack")
            Path(idx_tmp).replace(self.root / f"pack-{name}.idx")
        if self._done and self.durable:
            _fsync_dir(self.root)
        done = [(name, len(rows)) for name, rows, *_ in self._done]
        self._done = []
        return done

    def abort(self) -> None:
        if self._f is not None:
            os.close(self._f.fd)
            self._f = None
        for _, _, _, _, sync in self._done:
            sync.join()
        for p in [self._tmp] + [t for d in self._done for t in d[2:4]]:
            if p:
                Path(p).unlink(missing_ok=True)
        self._tmp, self._done = None, []

    def __enter__(self) -> PackWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self.abort()


def _sync_close(fd: int) -> None:
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- gc ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RewriteResult:
    packs_written: list[str]
    packs_deleted: list[str]
    objects_kept: int
    objects_dropped: int
    bytes_freed: int  # stored bytes of the packs deleted minus the packs written
    bases_kept: set[str]  # packed objects kept only because a kept delta needs them
    external_bases: set[str]  # bases kept deltas need that are not packed (keep them loose)


def needed_closure(store: PackStore, keep: Iterable[str]) -> tuple[set[str], set[str], set[str]]:
    """``(packed objects to keep, of which bases only, bases outside the packs)``."""
    need: set[str] = set()
    bases: set[str] = set()
    outside: set[str] = set()
    todo = [o for o in keep if store.has(o)]
    wanted = set(todo)
    while todo:
        oid = todo.pop()
        if oid in need:
            continue
        need.add(oid)
        base = store.entry(oid).base
        if base is None:
            continue
        if not store.has(base):
            outside.add(base)
        elif base not in need:
            if base not in wanted:
                bases.add(base)
            todo.append(base)
    return need, bases, outside


def rewrite(store: PackStore, keep: Iterable[str], *, verify: bool = True) -> RewriteResult:
    """Drop every packed object not in ``keep`` (and needed by no kept delta), atomically.

    Packs whose objects are all kept stay as they are; packs with nothing
    kept are deleted; the kept objects of the others are copied, as stored,
    into new packs (``verify``: decoded and re-hashed first -- a damaged
    object stops the rewrite before anything is published or deleted). Order
    under ``kill -9``: new packs published (pack, index), then each old index
    deleted, then its pack. :func:`clean` removes what a kill leaves behind.
    """
    need, bases, outside = needed_closure(store, keep)
    touched = [p for p in store.packs if any(o not in need for o in p.entries)]
    written: list[str] = []
    freed = 0
    with PackWriter(store.root) as w:
        for pack in touched:
            for oid in sorted(pack.entries):
                if oid not in need or store._where.get(oid) is not pack:
                    continue
                if verify:
                    for _ in codec.iter_decoded(store, oid, codec_buf()):
                        pass
                w.add_stored(oid, pack.stored(oid))
        written = [name for name, _ in w.finish()]
    for name in written:
        freed -= (store.root / f"pack-{name}.pack").stat().st_size
    deleted = []
    for pack in touched:
        if pack.name in written:  # the same objects, packed the same way: the same name
            continue
        freed += pack.size
        pack.idx_path.unlink(missing_ok=True)
        _fsync_dir(store.root)
        pack.path.unlink(missing_ok=True)
        deleted.append(pack.name)
    dropped = len(store.oids() - need)
    store.reload()
    return RewriteResult(written, deleted, len(need), dropped, freed, bases, outside)


def codec_buf() -> bytearray:
    from gitsnap.hashing import thread_buffer

    return thread_buffer(codec.BLOCK)


def clean(root: Path, grace: float = ORPHAN_GRACE, now: float | None = None) -> list[Path]:
    """Remove what an interrupted writer or rewrite left: temp files and packs without an
    index, older than ``grace`` seconds (younger ones may be a commit in progress)."""
    now = time.time() if now is None else now
    gone: list[Path] = []
    candidates = list((root / "tmp").glob("pack-*")) if (root / "tmp").is_dir() else []
    candidates += [p for p in root.glob("pack-*.pack") if not p.with_suffix(".idx").exists()]
    for p in candidates:
        try:
            if now - p.stat().st_mtime >= grace:
                p.unlink()
                gone.append(p)
        except FileNotFoundError:
            continue
    return gone


__all__ = [
    "ENTRY_SIZE",
    "MAX_PACK",
    "THRESHOLD",
    "UNPACK_LIMIT",
    "Entry",
    "LooseObjects",
    "Pack",
    "PackStore",
    "PackWriter",
    "RewriteResult",
    "clean",
    "needed_closure",
    "read_index",
    "rewrite",
]
