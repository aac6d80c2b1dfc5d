"""Storage v2 on a remote for objects of 1 MiB and more (DESIGN D18).

Objects of :data:`gitsnap.pack.THRESHOLD` (1 MiB) and more used to travel
loose and raw. Most of a real model's bytes are in such tensors (all-MiniLM-L6-v2:
0.6-47 MB each), so here they are packed and encoded like the small ones --
the smallest of raw, byte planes + zstd, or XOR delta against the parent
snapshot's tensor of the same name, dtype and shape -- in packs of their own
(up to :data:`gitsnap.pack.MAX_PACK` raw bytes each; an object larger than
that alone in its pack), so one tensor is one ranged read. An object above
64 MiB (a big model's embeddings) is encoded only where it pays
(:func:`worth_encoding`: a fine-tune's XOR delta, bfloat16 planes), else it
goes loose and raw, one kernel copy each way.

Memory does not grow with an object's size:

- push (:func:`push_group`) encodes block by block from the local file
  (:func:`gitsnap.codec.encode` reads it through ``read_at``) into a pack on
  disk -- built in place on a local-folder remote and renamed into ``packs/``,
  elsewhere a temp pack that is then uploaded -- then publishes its index;
- fetch (:func:`fetch_member`) decodes block by block from ranged reads of the
  member (:class:`Window`: one window of :data:`WINDOW` bytes held at a time),
  streams the raw bytes into :meth:`gitsnap.store.ObjectStore.writer` and
  commits the loose object only once they hashed to its id (a member stored
  raw on a local-folder remote is copied by the kernel, then re-hashed where
  it landed); a damaged member leaves nothing behind;
- fsck (:func:`verify_pack`) reads a pack once, window by window, hashing it
  against its name on the way while its members are decoded and re-hashed.

This module sits below :mod:`gitsnap.remote.packs`, which dispatches to it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

from gitsnap import codec, pack
from gitsnap.errors import GitsnapError, ObjectCorrupt, ObjectMissing, PackMemberCorrupt
from gitsnap.hashing import OnBytes, hasher
from gitsnap.remote.base import PACKS, Remote
from gitsnap.store import ObjectStore, pointer_lies

# Objects of THRESHOLD bytes and more, of any size, are packed and encoded on a remote
# (earlier versions left those above 64 MiB loose and raw; readers still find them so).
# A group is cut at MAX_PACK raw bytes, so an object above it is alone in its pack; it
# is encoded and decoded block by block, like any large member.
ENCODE_LIMIT = codec.MAX_RAW_SIZE
# An object alone in its pack (above MAX_PACK) is encoded only when its first block
# shrinks by at least this fraction: the XOR delta of a fine-tune (~0.36 of float32 on
# MiniLM) or bfloat16 planes (~0.71) are; float32 planes (~0.84) are not, and encoding
# them costs ~3 CPU-seconds a GiB each way where a raw object is one kernel copy (the
# 1 GiB benchmark's first push: 1.09 x dvc encoded, 0.79 x with them raw). Those
# stay loose and raw on the remote, as earlier versions stored every object that large.
ENCODE_GAIN = 0.20
# Bytes of a remote file held per ranged read: large enough that a request's cost
# (10-30 ms on S3) is small against its transfer, small enough that jobs x WINDOW
# stays far below the memory budget.
WINDOW = 8 * 1024 * 1024

Outcome = dict[str, GitsnapError | None]


def encodes(size: int) -> bool:
    """Whether a push packs and encodes an object of ``size`` bytes as a large member."""
    return pack.THRESHOLD <= size <= ENCODE_LIMIT


def worth_encoding(
    store: ObjectStore, oid: str, size: int, dtype: int, base: tuple[str, int] | None
) -> bool:
    """Whether a push packs and encodes an object of ``size`` bytes: every one up to
    :data:`gitsnap.pack.MAX_PACK`; a larger one if its first block (against its delta
    ``base``, if any) shrinks by :data:`ENCODE_GAIN` or more. An object the local store
    cannot read is encoded: that path names what is wrong with it."""
    if size <= pack.MAX_PACK:
        return True
    first = _first_block(store, oid, size)
    if first is None:
        return True
    base_first = None
    if base is not None and base[1] < codec.MAX_DEPTH:
        base_first = _first_block(store, base[0], size)
    return codec.block_ratio(first, dtype, base_first) <= 1 - ENCODE_GAIN


def _first_block(store: ObjectStore, oid: str, size: int) -> bytes | None:
    """The first block of a local object of ``size`` bytes (not verified: it only guides
    the choice of codec), or None if the store cannot give it."""
    want = min(size, codec.BLOCK)
    try:
        with store.open(oid) as src:
            first = os.pread(src.fd, min(want, src.length), src.offset)
    except (GitsnapError, OSError):
        return None
    return first if len(first) == want else None


def is_large(e: pack.Entry) -> bool:
    """A member fetched and checked by streaming (never held whole, nor its raw bytes)."""
    return e.raw_size >= pack.THRESHOLD or e.length > WINDOW


class Window:
    """A remote file (or a range of one) read one aligned window at a time.

    ``fetch(start, end)`` reads bytes ``[start, end)`` (one request); ``on_window``
    sees every window fetched (fsck hashes the pack with it). Thread-safe.
    """

    def __init__(
        self,
        fetch: Callable[[int, int], bytes],
        size: int,
        window: int = WINDOW,
        on_window: Callable[[int, bytes], None] | None = None,
    ) -> None:
        self.fetch, self.size, self.window, self.on_window = fetch, size, window, on_window
        self._start = 0
        self._data = b""
        self._lock = threading.Lock()

    def _load(self, offset: int) -> bool:
        """Make the window that holds ``offset`` current (lock held); False past the end."""
        if not self._start <= offset < self._start + len(self._data):
            start = offset - offset % self.window
            end = min(start + self.window, self.size)
            data = self.fetch(start, end)
            self._start, self._data = start, data
            if self.on_window is not None:
                self.on_window(start, data)
            if offset >= start + len(data):
                return False  # the file is shorter than it was said to be: a reader sees the cut
        return True

    def read_at(self, offset: int, dst: memoryview) -> int:
        with self._lock:
            if offset >= self.size or not len(dst) or not self._load(offset):
                return 0
            piece = memoryview(self._data)[offset - self._start : offset - self._start + len(dst)]
            dst[: len(piece)] = piece
            return len(piece)

    __call__ = read_at  # a codec.ReadAt

    def view(self, offset: int, n: int) -> memoryview | None:
        """Bytes ``[offset, offset+n)`` without a copy if one window holds them, else None
        (the caller copies them through :meth:`read_at`). A window is immutable bytes:
        a view stays valid after the next window replaces it."""
        with self._lock:
            if offset >= self.size or not self._load(offset):
                return None
            a = offset - self._start
            if a + n > len(self._data):
                return None
            return memoryview(self._data)[a : a + n]


class _Shifted:
    """A :class:`Window` seen from ``start`` (a member inside a pack read as a whole)."""

    def __init__(self, window: Window, start: int) -> None:
        self.window, self.start = window, start

    def __call__(self, offset: int, dst: memoryview) -> int:
        return self.window.read_at(self.start + offset, dst)

    def view(self, offset: int, n: int) -> memoryview | None:
        return self.window.view(self.start + offset, n)


def member_stored(remote: Remote, e: pack.Entry, bases: codec.Lookup | None = None) -> codec.Stored:
    """A pack member on the remote as a :class:`gitsnap.codec.Stored`, read by windows (a
    grouped object: its group member read whole, decoded, its slice verified)."""
    name = f"pack-{e.pack}.pack"
    if e.grouped:
        data = remote.read_pack_file(name, e.offset, e.offset + e.length)
        return pack.group_stored(e, data, bases=bases)

    def fetch(a: int, b: int) -> bytes:
        return remote.read_pack_file(name, e.offset + a, e.offset + b)

    return codec.Stored(e.length, Window(fetch, e.length))


def loose_stored(remote: Remote, oid: str, label: str = "object") -> codec.Stored:
    """A loose (v1, raw) object on the remote as a Stored, read by windows (never whole)."""
    with remote.read(oid, label) as f:
        size = f.seek(0, 2)

    def fetch(a: int, b: int) -> bytes:
        with remote.read(oid, label) as f:
            f.seek(a)
            return f.read(b - a)

    return codec.Stored(size, Window(fetch, size).read_at, encoded=False)


# ------------------------------------------------------------------ fetch


def fetch_member(  # noqa: PLR0917 - where the member is, what it is for, where it goes
    remote: Remote,
    store: ObjectStore,
    e: pack.Entry,
    size: int,
    label: str,
    hint: str,
    on_bytes: OnBytes,
) -> GitsnapError | None:
    """Decode one member from ranged reads into a loose object of the local store.

    Block by block: the raw bytes go to a temp file, hashed on the way, and
    the object is committed only if they match its id (its delta bases come
    from the local store, fetched first). A member stored raw in a pack of a
    local-folder remote is copied by the kernel instead, then re-hashed where it
    landed (:func:`_copy_raw_member`). Returns None, or why not: a
    :class:`PackMemberCorrupt` naming the object, ``label``, the pack and the
    remote (nothing is written), an ObjectMissing (a base), or a PointerError
    (the object is intact, the pointer gives another size).
    """
    if store.has(e.oid):
        return None
    try:
        got = None
        if e.codec == codec.RAW and e.base is None:  # a local-folder remote: a kernel copy
            got = _copy_raw_member(remote, store, e, label)
        if got is None:
            got = _decode_member(remote, store, e, label)
    except ObjectCorrupt as exc:
        return PackMemberCorrupt(
            f"object {e.oid[:12]}… ({label}) in pack {e.pack[:12]}… on remote "
            f"'{remote.info.name}' is corrupt and was not stored: {exc.message}",
            hint=hint,
            pack=e.pack,
        )
    except ObjectMissing as exc:
        return exc
    on_bytes(got)
    return None if got == size else pointer_lies(e.oid, size, got, label)


def _decode_member(remote: Remote, store: ObjectStore, e: pack.Entry, label: str) -> int:
    """Decode a member block by block from ranged reads into the store; the bytes stored."""
    me = member_stored(remote, e)
    with store.lookup() as local:

        def lookup(oid: str) -> codec.Stored:
            return me if oid == e.oid else local(oid)

        with store.writer() as w:
            for chunk in codec.iter_decoded(lookup, e.oid, bytearray(codec.BLOCK), label):
                w.write(chunk)
            w.commit(e.oid)
            return w.size


def _copy_raw_member(remote: Remote, store: ObjectStore, e: pack.Entry, label: str) -> int | None:
    """A raw member of a pack on a local-folder remote, copied by the kernel
    (``copy_file_range``) into a store temp file, then re-hashed where it landed
    and committed only if it matches its id, as a loose object's download is.
    Returns the bytes stored, or None where this path does not apply (another
    remote: the member is decoded). ObjectCorrupt (nothing written) if the
    member is damaged, ObjectMissing if its pack is gone."""
    home = in_place(remote)
    if home is None:
        return None
    path = home[0] / f"pack-{e.pack}.pack"
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise remote.pack_missing(path.name) from None
    except OSError as exc:
        raise remote.error(exc, "read from") from None
    try:
        h = codec.read_header(os.pread(fd, codec.HEADER_SIZE, e.offset), e.oid, label)
        if h.codec != codec.RAW or e.length != codec.HEADER_SIZE + h.raw_size:
            raise codec.corrupt(e.oid, label, "its header does not match its index entry")
        with store.writer() as w:
            w.copy_from(fd, e.offset + codec.HEADER_SIZE, h.raw_size)
            if w.size != h.raw_size:
                raise codec.corrupt(e.oid, label, f"it is cut short ({w.size} of {h.raw_size} B)")
            if w.digest() != e.oid:
                raise codec.corrupt(e.oid, label, "its bytes do not match its id")
            w.commit(e.oid)
            return w.size
    except OSError as exc:
        raise remote.error(exc, "read from") from None
    finally:
        os.close(fd)


# ------------------------------------------------------------------ push


class Outgoing(Protocol):
    """An object to push (:class:`gitsnap.remote.packs.Outgoing`)."""

    @property
    def oid(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def dtype(self) -> int: ...
    @property
    def label(self) -> str: ...
    @property
    def base(self) -> str | None: ...
    @property
    def base_depth(self) -> int: ...


class Todo(Protocol):
    """An object a push must send (``transfer``'s record of it)."""

    @property
    def size(self) -> int: ...
    @property
    def labels(self) -> list[str]: ...
    @property
    def dtype(self) -> int: ...


@dataclass(frozen=True)
class Large:
    oid: str
    size: int
    dtype: int
    label: str
    base: str | None = None  # a delta base the remote holds and the local store too
    base_depth: int = 0


def push_units(
    remote: Remote,
    store: ObjectStore,
    todo: Mapping[str, Todo],
    on_bytes: OnBytes,
    bases: Mapping[str, tuple[str, int]],
    *,
    with_small: bool = False,
) -> tuple[list[tuple[list[str], Callable[[], Outcome]]], set[str]]:
    """The large objects of ``todo`` (see :func:`encodes`) cut into packs of at most
    :data:`gitsnap.pack.MAX_PACK` raw bytes: one unit of work (:func:`push_group`) each,
    and the ids they take. ``bases`` gives an object's delta base and its depth on the
    remote. ``with_small``: objects below the threshold join them too, if there is a
    large one (a push of fewer small objects than git's unpackLimit would send them loose
    and raw; in a pack the large ones make anyway they cost no index of their own)."""
    groups: list[list[Large]] = []
    size = 0
    if not with_small or not any(encodes(v.size) for v in todo.values()):
        with_small = False
    for oid, v in todo.items():
        if not (encodes(v.size) or (with_small and v.size < pack.THRESHOLD)):
            continue
        if not worth_encoding(store, oid, v.size, v.dtype, bases.get(oid)):
            continue  # sent loose and raw
        if not groups or size + v.size > pack.MAX_PACK:
            groups.append([])
            size = 0
        groups[-1].append(Large(oid, v.size, v.dtype, v.labels[0], *bases.get(oid, (None, 0))))
        size += v.size
    units: list[tuple[list[str], Callable[[], Outcome]]] = [
        ([o.oid for o in g], partial(push_group, remote, store, g, on_bytes)) for g in groups
    ]
    return units, {o.oid for g in groups for o in g}


def in_place(remote: Remote) -> tuple[Path, Path] | None:
    """A local-folder remote's ``packs/`` and ``tmp/`` folders, where a pull copies a raw
    member with the kernel; None for any other remote (ranged reads)."""
    from gitsnap.remote.local import LocalRemote

    if not isinstance(remote, LocalRemote):
        return None
    return remote.root / PACKS, remote.root / "tmp"


def push_group(  # noqa: PLR0917 - the push's parts, and the small objects' fast path
    remote: Remote,
    store: ObjectStore,
    group: Iterable[Outgoing],
    on_bytes: OnBytes,
    level: int = codec.LEVEL,
    fast: Callable[[pack.PackWriter, Outcome], Iterable[Outgoing]] | None = None,
) -> Outcome:
    """Encode large local objects into one pack, streaming, and upload the pack, then its index.

    Each object is read block by block from the local store and re-hashed on
    the way (:func:`gitsnap.codec.encode`); a delta's base is read the same way.
    A damaged local object is left out of the pack and reported. The pack is
    built on disk, never in memory: in the remote's :meth:`~Remote.staging_dir`
    (a local-folder remote's own ``tmp/``), then renamed into ``packs/``, or in
    the store's ``tmp/``, then uploaded. Either way the pack goes first, then its
    index: readers find packs by their index, so a push killed before the index
    leaves a pack nobody sees (gc --remote drops it, and stale temp files).
    The pack is not fsynced: a remote folder's loose objects are not either,
    and a temp pack is dropped once uploaded.
    """
    out: Outcome = {}
    group = list(group)
    staging = remote.staging_dir()
    tmp_dir = staging or store.root / "tmp"
    sealed: list[tuple[str, Path, Path]] = []
    try:
        tmp_dir.mkdir(parents=True, exist_ok=True)
        # fsync only a pack that stays where it is written (renamed into a folder
        # remote's packs/); an uploaded temp pack is dropped.
        writer = pack.PackWriter(
            tmp_dir, max_pack=1 << 62, tmp_dir=tmp_dir, durable=staging is not None
        )
        with store.lookup() as local, writer:
            rest = fast(writer, out) if fast is not None else group
            encode_group(store, local, writer, rest, out, level)
            sealed = writer.seal()
        for name, pack_tmp, idx_tmp in sealed:
            remote.put_pack_file(pack_tmp, f"pack-{name}.pack")
            # The index last: readers find packs by their index, so a push killed
            # before this line leaves a pack nobody sees (gc --remote drops it).
            remote.put_pack_file(idx_tmp, f"pack-{name}.idx")
    except OSError as exc:
        if staging is None:
            raise  # the local store's tmp/: not the remote's fault
        raise remote.error(exc, "write to") from None
    finally:
        for _, pack_tmp, idx_tmp in sealed:  # moved away if published
            pack_tmp.unlink(missing_ok=True)
            idx_tmp.unlink(missing_ok=True)
    on_bytes(sum(o.size for o in group if o.oid in out and out[o.oid] is None))
    return out


def not_pushed(store: ObjectStore, o: Outgoing) -> ObjectCorrupt:
    """The outcome of an object found corrupt in the local store while a push packs it."""
    return ObjectCorrupt(
        f"object {o.oid[:12]}… ({o.label}) is corrupt in the local store; it was not pushed",
        hint="re-save the checkpoint if you still have it (git snap save PATH), "
        f"or {store.damaged_hint(o.oid)}",
    )


def encode_group(  # noqa: PLR0917 - the store, its lookup, the pack, what goes in, the outcome
    store: ObjectStore,
    local: codec.Lookup,
    writer: pack.PackWriter,
    group: Iterable[Outgoing],
    out: Outcome,
    level: int,
) -> int:
    """Encode each object of ``group`` into ``writer``; record each one's outcome in ``out``.
    Returns the raw bytes encoded."""

    def base_of(o: Outgoing) -> codec.Base | None:
        b = o.base
        if b is None:
            return None
        return codec.Base(b, o.base_depth, lambda: codec.open_raw(local, b).read_into, o.size)

    sent = 0
    for o in group:
        try:
            with store.open(o.oid, o.label) as f:
                if f.length != o.size:
                    raise store.blame(o.oid, o.size, o.label)
                writer.add(
                    o.oid, codec.fd_read_at(f.fd, f.offset), o.size,
                    dtype=o.dtype, base=base_of(o), label=o.label, level=level,
                )  # fmt: skip
        except ObjectCorrupt:
            out[o.oid] = not_pushed(store, o)
            continue
        except ObjectMissing as exc:
            out[o.oid] = exc
            continue
        out[o.oid] = None
        sent += o.size
    return sent


# ------------------------------------------------------------------ fsck


def verify_pack(  # noqa: PLR0917 - the pack (remote, name, size, entries), labels, bases
    remote: Remote,
    name: str,
    size: int,
    entries: dict[str, pack.Entry],
    labels: Callable[[str], str],
    outside: codec.Lookup | None = None,
) -> tuple[dict[str, bool], bool]:
    """fsck of one remote pack in one pass of ranged reads, one window held at a time.

    Members are decoded (streaming) and re-hashed in pack order while the
    windows read for them are hashed against the pack's name; whatever no
    member needed is read and hashed at the end. A delta base in the same
    pack gets a window of its own; one elsewhere comes from ``outside``.
    Returns ``({oid: intact}, the pack matches its name)``.
    """
    h = hasher(size)
    hashed = [0]

    def seen(start: int, data: bytes) -> None:
        if start <= hashed[0] < start + len(data):
            h.update(memoryview(data)[hashed[0] - start :])
            hashed[0] = start + len(data)

    fname = f"pack-{name}.pack"
    main = Window(lambda a, b: remote.read_pack_file(fname, a, b), size, on_window=seen)
    result: dict[str, bool] = {}
    buf = bytearray(codec.BLOCK)

    def find(oid: str) -> codec.Stored:  # a grouped delta's base: in this pack, or outside
        other = entries.get(oid)
        if other is not None:
            return member_stored(remote, other, find)
        if outside is None:
            raise ObjectMissing(f"delta base {oid[:12]}… is not in pack {name[:12]}…")
        return outside(oid)

    in_groups = pack.Groups(bases=find)
    for e in sorted(entries.values(), key=lambda x: (x.offset, x.oid)):
        if e.grouped:
            member, got = bytearray(e.length), 0
            at = _Shifted(main, e.offset)
            while got < e.length and (n := at(got, memoryview(member)[got:])):
                got += n
            try:
                in_groups.bytes_of(e, member[:got], labels(e.oid))
                result[e.oid] = True
            except GitsnapError:
                result[e.oid] = False
            continue

        def lookup(oid: str, me: pack.Entry = e) -> codec.Stored:
            if oid == me.oid:
                return codec.Stored(me.length, _Shifted(main, me.offset))
            return find(oid)

        try:
            for _ in codec.iter_decoded(lookup, e.oid, buf, labels(e.oid)):
                pass
            result[e.oid] = True
        except GitsnapError:
            result[e.oid] = False
    while hashed[0] < size:  # what no member read: the pack header, gaps, a damaged tail
        before = hashed[0]
        probe = memoryview(bytearray(1))
        if not main.read_at(before, probe) or hashed[0] == before:
            break
    return result, hashed[0] == size and h.hexdigest() == name


__all__ = [
    "ENCODE_LIMIT",
    "WINDOW",
    "Large",
    "Window",
    "encodes",
    "fetch_member",
    "in_place",
    "is_large",
    "loose_stored",
    "member_stored",
    "push_group",
    "push_units",
    "verify_pack",
]
