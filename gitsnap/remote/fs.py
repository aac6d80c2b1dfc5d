"""Every other DVC remote (S3, GCS, Azure, SSH, ...), through dvc-objects' filesystems."""

from __future__ import annotations

import builtins
import contextlib
import io
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from gitsnap.errors import GitsnapError
from gitsnap.hashing import CHUNK, Digest, OnBytes, file_reader, oid_of, thread_buffer, verified
from gitsnap.remote.base import (
    PACKS,
    Remote,
    RemoteFile,
    RemoteInfo,
    _no_progress,
    hash_local,
    missing_bucket,
    mtime_of,
    oid_from_parts,
    split_oid,
)
from gitsnap.store import ObjectStore, pointer_lies


def _forward(on_bytes: OnBytes) -> Any:
    """An fsspec callback that forwards byte counts to ``on_bytes``."""
    from fsspec.callbacks import Callback

    class Forward(Callback):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self._sent = 0

        def call(self, *args: Any, **kwargs: Any) -> None:
            delta = int(self.value) - self._sent
            if delta > 0:
                self._sent += delta
                on_bytes(delta)

    return Forward()


class FsRemote(Remote):
    def __init__(self, info: RemoteInfo, fs: Any, root: str, jobs: int | None) -> None:
        from dvc_objects.fs.base import ObjectFileSystem

        self.info = info
        self.fs = fs
        self.root = root
        self.jobs = jobs or int(fs.jobs)
        # Object stores publish a PUT atomically; other filesystems (ssh,
        # webdav, hdfs) could expose a half-written file: write a temp name
        # and rename it.
        self.atomic_put = isinstance(fs, ObjectFileSystem)
        # s3fs (and adlfs) split a cat into concurrent ranged GETs, after a
        # HEAD to learn the size; a small object wants one plain GET.
        self._cat_kwargs: dict[str, Any] = (
            {"max_concurrency": 1} if hasattr(fs.fs, "max_concurrency") else {}
        )
        self._last_listing: list[str] = []

    def _path(self, oid: str) -> str:
        a, b = split_oid(oid)
        return str(self.fs.join(self.root, a, b))

    def present(self, oids: Iterable[str]) -> set[str]:
        """List, never probe object by object.

        The first touched ``ab/`` folder is listed alone; its size estimates
        the whole area (x256). If listing everything takes no more sequential
        pages than listing the other touched folders takes rounds of ``jobs``
        parallel requests, one listing of ``gitsnap/blake3/`` answers all
        (a small or young remote: one request); otherwise the touched folders
        are listed concurrently (a big remote: never more listings than
        folders, at most 256).
        """
        wanted = set(oids)
        if not wanted:
            return set()
        prefixes = sorted({o[:2] for o in wanted})
        found = self._list([str(self.fs.join(self.root, prefixes[0]))], wanted)
        rest = prefixes[1:]
        if not rest:
            return found
        page = int(getattr(self.fs, "LIST_OBJECT_PAGE_SIZE", 1000))
        estimated_pages = -(-max(1, len(self._last_listing)) * 256 // page)
        rounds = -(-len(rest) // max(1, self.jobs))
        if estimated_pages <= rounds:
            return found | self._list([self.root], wanted)
        return found | self._list([str(self.fs.join(self.root, p)) for p in rest], wanted)

    def _list(self, dirs: list[str], wanted: set[str]) -> set[str]:
        found: set[str] = set()
        listed: list[str] = []
        try:
            # dvc-objects batches a list of paths: concurrent listings on
            # async filesystems (s3, gs, azure), a thread pool otherwise.
            listing = self.fs.find(dirs) if len(dirs) > 1 else self.fs.find(dirs[0])
            for path in listing:
                listed.append(path)
                parts = self.fs.parts(path)
                if len(parts) >= 2:
                    oid = oid_from_parts(parts[-2], parts[-1])
                    if oid in wanted:
                        found.add(oid)
        except FileNotFoundError:
            pass  # a folder (or, on some backends, the whole prefix) that does not exist yet
        except Exception as exc:
            raise self.error(exc, "list") from None
        self._last_listing = listed
        return found

    def probe(self) -> None:
        super().probe()  # credentials and network: one listing
        self._require_container()  # a missing bucket lists as empty on some backends

    def upload(
        self, store: ObjectStore, oid: str, size: int, label: str, on_bytes: OnBytes = _no_progress
    ) -> None:
        # Verify first (one read, then in the page cache), so that a damaged
        # local object never reaches the remote.
        hash_local(store, oid, size, label)
        dest = self._path(oid)
        local: str | io.BytesIO = str(store.path(oid))
        if not store.loose(oid):  # packed (small): its bytes, read through the store
            with store.open(oid, label) as src:
                local = io.BytesIO(os.pread(src.fd, src.length, src.offset))
        try:
            if self.atomic_put:
                self.fs.put_file(local, dest, callback=_forward(on_bytes), size=size)
            else:
                tmp = str(self.fs.join(self.root, "tmp", f"{oid[:16]}.{uuid.uuid4().hex}"))
                self.fs.makedirs(self.fs.parent(tmp), exist_ok=True)
                self.fs.makedirs(self.fs.parent(dest), exist_ok=True)
                self.fs.put_file(local, tmp, callback=_forward(on_bytes), size=size)
                self.fs.mv(tmp, dest)
        except Exception as exc:
            raise self.error(exc, "write to") from None

    def download(
        self, store: ObjectStore, oid: str, size: int, label: str, on_bytes: OnBytes = _no_progress
    ) -> None:
        if size <= CHUNK:
            # Small objects (most tensors, every header): one GET, no HEAD
            # that opening a file object would send first. The range bounds
            # memory when a pointer gives a big object a small size.
            with self._reading(oid, label):
                data = self.fs.cat_file(self._path(oid), start=0, end=CHUNK + 1, **self._cat_kwargs)
            if len(data) <= CHUNK:
                on_bytes(len(data))
                if oid_of(data) != oid:
                    raise self.corrupt(oid, label)
                with store.writer() as writer:
                    writer.write(data)
                    writer.commit(oid)
                if len(data) != size:
                    raise pointer_lies(oid, size, len(data), label)
                return
            # Longer than the pointer says: stream it whole below, hashed.
        src = self.read(oid, label)
        found: list[Digest] = []
        with store.writer() as writer:
            try:
                with src:
                    for chunk in verified(
                        file_reader(src),
                        thread_buffer(CHUNK),
                        found.append,
                        on_bytes=on_bytes,
                        size_hint=size,
                    ):
                        writer.write(chunk)
            except FileNotFoundError:
                raise self.missing(oid, label) from None
            except Exception as exc:
                raise self.error(exc, "read from") from None
            if found[0].oid != oid:
                raise self.corrupt(oid, label)
            writer.commit(oid)
        if found[0].size != size:
            raise pointer_lies(oid, size, found[0].size, label)

    def list(self) -> builtins.list[RemoteFile]:
        files: builtins.list[RemoteFile] = []
        try:
            listing = self.fs.fs.find(self.root, detail=True)
        except FileNotFoundError:
            listing = {}
        except Exception as exc:
            raise self.error(exc, "list") from None
        if not listing:
            # An empty answer is also what a missing bucket gives on some
            # backends: every object would look missing (fsck) or there would
            # be nothing to collect (gc) when the remote itself is wrong.
            self._require_container()
        for path, info in listing.items():
            if info.get("type", "file") != "file":
                continue
            parts = self.fs.parts(path)
            oid = oid_from_parts(parts[-2], parts[-1]) if len(parts) >= 2 else None
            tmp = self.fs.parent(path) == str(self.fs.join(self.root, "tmp"))
            files.append(RemoteFile(path, oid, int(info.get("size") or 0), mtime_of(info), tmp))
        return files

    def _require_container(self) -> None:
        """RemoteError unless the bucket (object stores) or base folder of the remote exists."""
        parts = self.fs.parts(self.root)
        container = parts[0] if self.atomic_put else self.fs.parent(self.fs.parent(self.root))
        try:
            there = bool(self.fs.exists(container))
        except Exception as exc:
            raise self.error(exc, "list") from None
        if not there:
            raise missing_bucket(
                self.info, "the bucket" if self.atomic_put else "the remote folder"
            )

    def delete(self, keys: builtins.list[str]) -> None:
        for i in range(0, len(keys), 1000):  # object stores delete 1000 keys per request
            try:
                self.fs.rm(keys[i : i + 1000])
            except FileNotFoundError:
                continue
            except Exception as exc:
                raise self.error(exc, "delete from") from None

    def read(self, oid: str, label: str = "object") -> IO[bytes]:
        with self._reading(oid, label):
            return self.fs.open(self._path(oid), "rb", block_size=CHUNK)  # type: ignore[no-any-return]

    @contextlib.contextmanager
    def _reading(self, oid: str, label: str) -> Iterator[None]:
        """What a failed read of object ``oid`` means: missing, not a file (corrupt), or the
        remote's own error."""
        try:
            yield
        except FileNotFoundError:
            raise self.missing(oid, label) from None
        except IsADirectoryError:
            raise self.corrupt(oid, label) from None
        except GitsnapError:
            raise
        except Exception as exc:
            raise self.error(exc, "read from") from None

    def list_packs(self) -> builtins.list[RemoteFile]:
        try:
            listing = self.fs.fs.find(str(self.fs.join(self.root, PACKS)), detail=True)
        except FileNotFoundError:
            return []
        except Exception as exc:
            raise self.error(exc, "list") from None
        return [
            RemoteFile(path, None, int(info.get("size") or 0), mtime_of(info))
            for path, info in listing.items()
            if info.get("type", "file") == "file"
        ]

    def put_pack_file(self, local: Path, name: str) -> None:
        dest = str(self.fs.join(self.root, PACKS, name))
        size = local.stat().st_size
        try:
            if self.atomic_put:
                self.fs.put_file(str(local), dest, size=size)
            else:
                tmp = str(self.fs.join(self.root, "tmp", f"{name[:21]}.{uuid.uuid4().hex}"))
                self.fs.makedirs(self.fs.parent(tmp), exist_ok=True)
                self.fs.makedirs(self.fs.parent(dest), exist_ok=True)
                self.fs.put_file(str(local), tmp, size=size)
                self.fs.mv(tmp, dest)
        except Exception as exc:
            raise self.error(exc, "write to") from None

    def read_pack_file(self, name: str, start: int, end: int) -> bytes:
        try:
            data = self.fs.cat_file(
                str(self.fs.join(self.root, PACKS, name)), start=start, end=end, **self._cat_kwargs
            )
        except FileNotFoundError:
            raise self.pack_missing(name) from None
        except Exception as exc:
            raise self.error(exc, "read from") from None
        return bytes(data)
