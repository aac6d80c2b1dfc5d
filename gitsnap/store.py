"""The local content-addressed object store (DESIGN D1-D3).

Objects live at ``<dvc cache dir>/gitsnap/blake3/ab/cdef...`` (never under
``files/md5``, which ``dvc gc`` owns). An object is written to a temp file in
``<store>/tmp`` and renamed into place, then made read-only, so a reader never
sees a partial object and a crash leaves at most a stray temp file.

Bytes move between files with :func:`copy_range` (in the kernel) and are
verified with :func:`gitsnap.hashing.hash_range`, which re-reads them from
the file they landed in: what is checked is what was written, not a buffer on
its way. Reads stream through :func:`gitsnap.hashing.verified`, the one
verify-while-streaming loop.

Who is to blame when bytes and pointer disagree: an object whose bytes hash
to its id is intact, whatever a pointer says about it; a pointer that gives it
another length is wrong (:class:`PointerError`, never a hint to delete the
object, which other snapshots may need). Only bytes that do not hash to their
id make an :class:`ObjectCorrupt`. Nothing but a regular file can be an
object: a directory or a dangling link at an object's path is ObjectCorrupt
with a hint to remove it.

Packs (storage v2, ``docs/storage-format.md``): objects below
:data:`gitsnap.pack.THRESHOLD` that a command writes inside :meth:`ObjectStore.batch`
(save, fetch, repack) go into immutable packs in ``<store>/packs/`` as raw
members, one kernel copy each, instead of a file each: 20,000 tensors are five
files, not 20,000. Readers do not care where an object is: :meth:`ObjectStore.open`
gives a loose file or a pack member as an :class:`ObjectFile` (bytes at an
offset of a file descriptor) and everything read is re-hashed, as before.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from gitsnap.codec import Stored
from gitsnap.errors import (
    RESAVE,
    ConcurrentChange,
    GitsnapError,
    ObjectCorrupt,
    ObjectMissing,
    PointerError,
)
from gitsnap.fsutil import CHUNK, WRITE_PIECE, copy_range
from gitsnap.hashing import (
    Digest,
    OnBytes,
    ReadInto,
    digest_stream,
    fd_reader,
    hash_range,
    verified,
)
from gitsnap.pack import THRESHOLD, UNPACK_LIMIT, LooseObjects, PackStore, PackWriter

_READONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


def store_root(cache_dir: Path) -> Path:
    return cache_dir / "gitsnap" / "blake3"


class ObjectWriter:
    """Stream bytes into a temp file; :meth:`commit` renames it to its object path."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        tmp_dir = store.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="obj-")
        self._fd: int | None = fd
        self._tmp = name
        self.size = 0

    def write(self, data: memoryview | bytes | bytearray) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            # 1 MiB writes: measured 0.9 s/GiB of CPU here against 1.3-4.6 s/GiB for 8 MiB ones.
            n = os.pwrite(self._fd, view[:WRITE_PIECE], self.size)
            view = view[n:]
            self.size += n

    def copy_from(
        self, src_fd: int, offset: int, size: int, on_step: OnBytes | None = None
    ) -> None:
        """Append up to ``size`` bytes at ``offset`` of ``src_fd`` (:func:`copy_range`);
        ``self.size`` tells how many came (fewer if the source ended first)."""
        assert self._fd is not None
        self.size += copy_range(
            src_fd, self._fd, size, src_offset=offset, dst_offset=self.size, on_step=on_step
        )

    def digest(self) -> str:
        """BLAKE3 of the bytes written so far, read back from the temp file."""
        assert self._fd is not None
        return hash_range(self._fd, 0, self.size)[0]

    def commit(self, oid: str) -> None:
        assert self._fd is not None
        os.fchmod(self._fd, _READONLY)
        os.close(self._fd)
        self._fd = None
        dest = self._store.path(oid)
        dest.parent.mkdir(parents=True, exist_ok=True)
        Path(self._tmp).replace(dest)

    def abort(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        Path(self._tmp).unlink(missing_ok=True)

    def __enter__(self) -> ObjectWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()  # no-op after commit


class ObjectFile:
    """An object's stored raw bytes where they lie: ``length`` bytes at ``offset`` of ``fd``.

    A loose object is a whole file; a packed one a range of its pack (a raw
    member; a member stored encoded is decoded, and verified, into a private
    temp file first). Nothing here is verified by being opened: callers hash
    what they read, as ever. ``where`` is the file, for messages and hints.
    """

    def __init__(self, fd: int, offset: int, length: int, where: Path) -> None:
        self.fd, self.offset, self.length, self.where = fd, offset, length, where

    def reader(self) -> ReadInto:
        return fd_reader(self.fd, self.offset, self.offset + self.length)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> ObjectFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


Buffer = bytes | bytearray | memoryview


class _Batch:
    """The pack a :meth:`ObjectStore.batch` writes small objects into (thread-safe)."""

    def __init__(self, store: ObjectStore) -> None:
        self.writer = PackWriter(store.packs_dir)
        self.lock = threading.Lock()

    def add(self, oid: str, data: Buffer | None = None, fd: int = -1, offset: int = 0,
            size: int = 0) -> bool:  # fmt: skip
        with self.lock:
            return self.writer.add_raw(oid, data, fd=fd, offset=offset, size=size) is not None

    def has(self, oid: str) -> bool:
        return oid in self.writer.written  # one set lookup: atomic, no lock needed

    def add_many(self, items: list[tuple[str, Buffer]]) -> list[bool]:
        with self.lock:
            return self.writer.add_raw_many(items)


class StoreLookup:
    """See :meth:`ObjectStore.lookup`."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._loose = LooseObjects(store.root)

    def __call__(self, oid: str) -> Stored:
        if self.store.loose(oid) or not self.store.packed(oid):
            return self._loose(oid)  # ObjectMissing names it if it is in neither place
        return self.store.packs()(oid)

    def close(self) -> None:
        self._loose.close()

    def __enter__(self) -> StoreLookup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ObjectStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._packs: PackStore | None = None
        self._batch: _Batch | None = None
        self._lock = threading.RLock()
        self._stale = False
        self._root_s = os.fspath(root)

    # -- packs ----------------------------------------------------------------

    @property
    def packs_dir(self) -> Path:
        return self.root / "packs"

    def packs(self) -> PackStore:
        """The store's packs (their indexes read once, on first use)."""
        with self._lock:
            if self._packs is None:
                self._packs = PackStore(self.packs_dir)
            elif self._stale:
                self._packs.reload()
            self._stale = False
            return self._packs

    def reload_packs(self) -> None:
        """See packs published since they were read (lazily: at the next lookup)."""
        with self._lock:
            self._stale = self._packs is not None

    @contextlib.contextmanager
    def batch(self, small: int, *, keep_on_error: bool = False) -> Iterator[None]:
        """Objects below :data:`~gitsnap.pack.THRESHOLD` stored inside go into new packs,
        published when the block ends -- after an error only if ``keep_on_error`` (a
        fetch, whose objects were each verified; not a save, whose source may have
        changed under it).

        ``small`` is how many such objects the caller may store: fewer than
        :data:`~gitsnap.pack.UNPACK_LIMIT` go loose, as v1 wrote them.

        Re-entrant: an inner block joins the outer one. Callers publish before they
        write anything that names the objects (a pointer), as a loose object is in
        place before; :meth:`publish` does it mid-way (a fetch whose next round
        reads what this one stored).
        """
        if small < UNPACK_LIMIT:
            yield
            return
        with self._lock:
            if self._batch is not None:
                outer = True
            else:
                outer = False
                self._batch = _Batch(self)
        if outer:
            yield
            return
        try:
            yield
        except BaseException:
            if keep_on_error:
                self.publish(again=False)
            else:
                with self._lock:
                    b, self._batch = self._batch, None
                if b is not None:
                    b.writer.abort()
            raise
        self.publish(again=False)

    def publish(self, *, again: bool = True) -> None:
        """Publish the packs written so far in the current :meth:`batch`."""
        with self._lock:
            b = self._batch
            if b is None:
                return
            self._batch = _Batch(self) if again else None
        with b.lock:
            done = b.writer.finish()
        if done:
            self.reload_packs()

    def lookup(self) -> StoreLookup:
        """A :data:`gitsnap.codec.Lookup` over the loose objects and the packs (delta
        bases for push and fetch); close it (``with``) to close the loose files it opened."""
        return StoreLookup(self)

    def packed(self, oid: str) -> bool:
        if self._packs is None and not self.packs_dir.is_dir():
            return False
        return self.packs().has(oid)

    def _loose_path(self, oid: str) -> str:
        return f"{self._root_s}/{oid[:2]}/{oid[2:]}"  # a str: 20,000 Paths cost ~0.5 s

    def loose(self, oid: str) -> bool:
        return os.path.exists(self._loose_path(oid))  # noqa: PTH110 (a str: see above)

    # -- objects --------------------------------------------------------------

    def path(self, oid: str) -> Path:
        return self.root / oid[:2] / oid[2:]

    def has(self, oid: str) -> bool:
        b = self._batch
        return self.packed(oid) or (b is not None and b.has(oid)) or self.loose(oid)

    def _where_to_look(self) -> tuple[PackStore | None, set[str]]:
        """The packs (None if there are none) and the ``ab/`` folders of the loose store
        (one listing): what :meth:`held` and :meth:`put_many` ask about many ids."""
        packs = self.packs() if self._packs is not None or self.packs_dir.is_dir() else None
        try:
            prefixes = {n for n in os.listdir(self._root_s) if len(n) == 2}  # noqa: PTH208 (str names)
        except FileNotFoundError:
            prefixes = set()
        return packs, prefixes

    def held(self, oids: Iterable[str]) -> set[str]:
        """The ids of ``oids`` the store has (:meth:`has` for many): the loose store is
        asked only about ids whose ``ab/`` folder exists (one listing, not a failed
        ``stat`` per object of a fetch into a fresh clone)."""
        oids = list(oids)
        if not oids:
            return set()
        packs, prefixes = self._where_to_look()
        b = self._batch
        return {
            o
            for o in oids
            if (packs is not None and packs.has(o))
            or (b is not None and b.has(o))
            or (o[:2] in prefixes and self.loose(o))
        }

    def writer(self) -> ObjectWriter:
        return ObjectWriter(self)

    def _present(self, oid: str) -> bool:
        """Whether the store has ``oid``; if so, its mtime becomes now.

        A snapshot being saved (or fetched) may come to rely on an object that no
        pointer references yet; ``git snap gc`` keeps unreferenced objects younger
        than its grace period, so refreshing the mtime keeps a concurrent gc
        from deleting it before the new pointer is written.
        """
        # Packed objects: gc drops members only under the store's lock, which a save
        # holds, and keeps a pack younger than its grace period whole.
        b = self._batch
        if self.packed(oid) or (b is not None and b.has(oid)):
            return True
        try:
            os.utime(self._loose_path(oid))
        except FileNotFoundError:
            return False
        except OSError:
            # Someone else's read-only object in a shared cache (EPERM): it
            # exists; protecting it from gc is then up to its owner's grace period.
            return self.has(oid)
        return True

    def put(self, oid: str, data: memoryview | bytes | bytearray) -> bool:
        """Store ``data`` (already hashed to ``oid`` by the caller). False if already present."""
        if self._present(oid):
            return False
        b = self._batch
        if b is not None and len(data) < THRESHOLD:
            return b.add(oid, data)
        with self.writer() as w:
            w.write(data)
            w.commit(oid)
        return True

    def put_many(self, items: list[tuple[str, Buffer]]) -> list[bool]:
        """:meth:`put` for many objects below :data:`~gitsnap.pack.THRESHOLD` (each hashed
        by the caller): whether each was new. Inside a :meth:`batch` the new ones go into
        its pack under one lock, and the loose store is asked only about ids whose
        ``ab/`` folder exists (one listing, not a failed ``utime`` per object)."""
        b = self._batch
        if b is None:
            return [self.put(oid, data) for oid, data in items]
        packs, prefixes = self._where_to_look()
        out: list[bool] = []
        new: list[tuple[str, Buffer]] = []
        for oid, data in items:
            assert len(data) < THRESHOLD
            present = (
                (packs is not None and packs.has(oid))
                or b.has(oid)
                or (oid[:2] in prefixes and self._touch_loose(oid))
            )
            out.append(not present)
            if not present:
                new.append((oid, data))
        if new:
            added = iter(b.add_many(new))
            out = [fresh and next(added) for fresh in out]
        return out

    def _touch_loose(self, oid: str) -> bool:
        """Whether ``oid`` is loose; if so its mtime becomes now (see :meth:`_present`)."""
        try:
            os.utime(self._loose_path(oid))
        except FileNotFoundError:
            return False
        except OSError:
            return self.has(oid)  # someone else's read-only object (see _present)
        return True

    def put_range(self, oid: str, src_fd: int, offset: int, size: int) -> bool:
        """Store bytes ``[offset, offset+size)`` of ``src_fd``, already hashed to ``oid``.

        The caller hashed these bytes just before; if the file changed in between, the
        caller's final size/mtime check fails and it removes what it stored (see
        :meth:`discard`)."""
        if self._present(oid):
            return False
        b = self._batch
        if b is not None and size < THRESHOLD:
            return b.add(oid, fd=src_fd, offset=offset, size=size)
        with self.writer() as w:
            w.copy_from(src_fd, offset, size)
            if w.size != size:
                raise ConcurrentChange("the checkpoint got shorter while it was being read")
            w.commit(oid)
        return True

    def discard(self, oids: set[str]) -> None:
        """Remove objects this process just wrote (used when their source changed meanwhile)."""
        for oid in oids:
            self.path(oid).unlink(missing_ok=True)

    def open(self, oid: str, label: str = "object") -> ObjectFile:
        """Where the object's raw bytes are, opened for reading (loose or packed).

        ObjectMissing if it is absent; ObjectCorrupt if something that cannot
        be an object sits at its path (a directory, a dangling link, a file
        that cannot be read), naming the object and what it is needed for.
        """
        if self.packed(oid):
            return self._open_packed(oid, label)
        path = self.path(oid)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            if path.is_symlink():
                raise self._not_a_file(oid, label, "a dangling symbolic link") from None
            raise ObjectMissing(
                f"object {oid[:12]}… ({label}) is missing from the local store"
            ) from None
        except OSError as exc:
            raise self._not_a_file(oid, label, f"unreadable ({exc.strerror or exc})") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise self._not_a_file(oid, label, "a directory, not a file")
        return ObjectFile(fd, 0, st.st_size, path)

    def _open_packed(self, oid: str, label: str) -> ObjectFile:
        from gitsnap import codec

        packs = self.packs()
        pack = packs.pack_of(oid)
        e = pack.entries[oid]
        if e.codec == codec.RAW:
            if e.length != codec.HEADER_SIZE + e.raw_size:
                raise ObjectCorrupt(
                    f"object {oid[:12]}… ({label}): its entry in {pack.path.name} "
                    "gives a raw member the wrong length",
                    hint=f"run git snap fsck; then delete {pack.idx_path} and {pack.path} and "
                    f"fetch the objects again (git snap fetch), or {RESAVE}",
                )
            # A descriptor of its own: the pack may be closed (gc) while this is read.
            return ObjectFile(os.dup(pack.fd), e.offset + codec.HEADER_SIZE, e.raw_size, pack.path)
        # Stored encoded (a compressed repack): decoded, and verified, into a private file.
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=self.root / "tmp", prefix="obj-") as out:
            for chunk in packs.iter_raw(oid, bytearray(codec.BLOCK), label):
                out.write(chunk)
            out.flush()
            fd = os.dup(out.fileno())
        return ObjectFile(fd, 0, e.raw_size, pack.path)

    def _not_a_file(self, oid: str, label: str, what: str) -> ObjectCorrupt:
        path = self.path(oid)
        return ObjectCorrupt(
            f"object {oid[:12]}… ({label}) in the local store is {what}: {path}",
            # Nothing but a regular file can be an object: removing it loses nothing.
            hint=f"remove it (rm -rf '{path}'), then fetch the object again (git snap fetch) "
            f"or {RESAVE}",
        )

    def digest(self, oid: str, label: str = "object", on_bytes: OnBytes | None = None) -> Digest:
        """What the stored object hashes to, and its length (one streaming read)."""
        with self.open(oid, label) as f:
            return digest_stream(f.reader(), on_bytes=on_bytes)

    def where(self, oid: str) -> Path:
        """The file that holds an object (its pack, if packed), for hints."""
        if self.packed(oid):
            return self.packs().pack_of(oid).path
        return self.path(oid)

    def blame(self, oid: str, size: int, label: str, where: str = "") -> GitsnapError:
        """The error for an object whose bytes or length are not what a pointer says.

        Re-hashes the whole object to decide who is wrong: an object whose
        bytes match its id is intact, so a pointer that gives it another
        length lies (PointerError, and the object must be kept: other
        snapshots may use it); otherwise the object is damaged. ``where``
        prefixes the message (the snapshot being read).
        """
        try:
            found = self.digest(oid, label)
        except ObjectCorrupt as exc:
            return ObjectCorrupt(where + exc.message, hint=exc.hint)
        if found.oid == oid:
            return pointer_lies(oid, size, found.size, label, where)
        return ObjectCorrupt(
            f"{where}object {oid[:12]}… ({label}) is corrupt in the local store: "
            "its bytes do not match its id",
            hint=self.damaged_hint(oid),
        )

    def damaged_hint(self, oid: str) -> str:
        """How to get rid of a damaged object: delete its file (or pack) and fetch again."""
        where = self.where(oid)
        if where == self.path(oid):
            return f"delete it (rm -f '{where}') and fetch it again (git snap fetch), or {RESAVE}"
        return (
            f"delete its pack (rm -f '{where.with_suffix('.idx')}' '{where}') and fetch "
            f"the objects again (git snap fetch), or {RESAVE}"
        )

    def check_sizes(self, entries: Iterable[tuple[str, int, str]], where: str = "") -> None:
        """Compare each ``(oid, size, label)`` with the stored object's length, before any work.

        One ``stat`` per object: a pointer that gives a present object another
        length (up to sizes no file can have, which would overflow
        ``ftruncate``) is refused before anything is allocated or written.
        Absent objects are skipped (they are fetched, and verified, first).
        """
        for oid, size, label in entries:
            if self.packed(oid):
                if self.packs().entry(oid).raw_size != size:
                    raise self.blame(oid, size, label, where)
                continue
            try:
                st = os.stat(self._loose_path(oid))  # noqa: PTH116
            except FileNotFoundError:
                continue
            except OSError:
                raise self.blame(oid, size, label, where) from None
            if not stat.S_ISREG(st.st_mode) or st.st_size != size:
                raise self.blame(oid, size, label, where)

    def iter_verified(
        self, oid: str, size: int, label: str, buf: bytearray
    ) -> Iterator[memoryview]:
        """Yield the object's bytes in chunks; at the end, an error unless they match.

        The whole object is read, whatever ``size`` says, so that the end can
        tell a damaged object (ObjectCorrupt) from a pointer that gives an
        intact one the wrong length (PointerError). A caller must not trust
        (or publish) what it made of the chunks until the iteration ended
        without an error.
        """

        def check(found: Digest) -> None:
            if found.oid != oid:
                raise ObjectCorrupt(
                    f"object {oid[:12]}… ({label}) is corrupt: its bytes do not match its id",
                    hint=self.damaged_hint(oid),
                )
            if found.size != size:
                raise pointer_lies(oid, size, found.size, label)

        with self.open(oid, label) as f:
            yield from verified(f.reader(), buf, check, size_hint=size)

    def iter_oids(self) -> Iterator[str]:
        try:
            prefixes = os.scandir(self.root)
        except FileNotFoundError:
            return
        with prefixes:
            for d in prefixes:
                if len(d.name) == 2 and d.is_dir():
                    for entry in os.scandir(d.path):
                        yield d.name + entry.name


def pointer_lies(oid: str, size: int, actual: int, label: str, where: str = "") -> PointerError:
    """A pointer gives an intact object (its bytes match its id) a length it does not have."""
    return PointerError(
        f"{where}{label}: the pointer says {size} bytes, "
        f"but object {oid[:12]}… has {actual} (and is intact: its bytes match its id)",
        hint="the pointer is wrong, not the object -- keep the object (other snapshots may "
        "use it); restore the pointer from git (git checkout -- PATH.snap) "
        f"or {RESAVE}",
    )


__all__ = [
    "CHUNK",
    "ObjectFile",
    "ObjectStore",
    "ObjectWriter",
    "copy_range",
    "hash_range",
    "pointer_lies",
    "store_root",
]
