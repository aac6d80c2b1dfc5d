"""DVC remotes (DESIGN D3, D4): one interface, a local-folder and a DVC/fsspec backend.

Objects live at ``<remote url>/gitsnap/blake3/ab/cdef...`` (DESIGN D3), beside
DVC's ``files/md5`` and never inside it. :func:`open_remote` resolves the
remote as DVC does (:mod:`gitsnap.remote.resolve`) and returns a
:class:`Remote` (:mod:`gitsnap.remote.base`): :class:`LocalRemote` for a
folder (plain ``os`` calls and ``copy_file_range``), :class:`FsRemote` for
every other DVC filesystem. Callers use the interface only.

Guarantees, whatever the backend:

- existence is answered by listings (of the touched ``ab/`` folders, or of
  the whole area when that is fewer round trips), never one request per
  object;
- an upload never leaves a partial object under its final key: object stores
  (S3, GCS, Azure) publish a PUT atomically; other filesystems get a temp
  name under ``gitsnap/blake3/tmp/`` and a rename;
- a download goes into the store's temp dir and is renamed into place only
  if its BLAKE3 matches (:class:`ObjectCorrupt` otherwise, and nothing is
  stored); an intact object of another length than the pointer says is
  kept and the pointer blamed (:class:`PointerError`);
- a push re-hashes the local object before it leaves, so a damaged local
  copy is reported instead of spreading to the remote;
- listing a remote whose bucket or folder does not exist is a
  :class:`RemoteError`, never "every object missing".

Only the names below are public; the backend modules import dvc/fsspec
lazily (``import gitsnap.remote`` stays light, DESIGN D10).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from gitsnap.hashing import CHUNK, OnBytes
from gitsnap.remote.base import (
    PREFIX,
    Remote,
    RemoteFile,
    RemoteInfo,
    oid_from_parts,
    remote_error,
    split_oid,
)
from gitsnap.remote.resolve import configured_remote, open_remote

if TYPE_CHECKING:
    from gitsnap.remote.fs import FsRemote
    from gitsnap.remote.local import LocalRemote


def __getattr__(name: str) -> Any:
    # The backends load on first use: FsRemote's module pulls fsspec callbacks in.
    if name == "LocalRemote":
        from gitsnap.remote.local import LocalRemote

        return LocalRemote
    if name == "FsRemote":
        from gitsnap.remote.fs import FsRemote

        return FsRemote
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# The module functions of the first storage-management code, kept for callers
# that have not moved to the methods yet; each is one method call.


def list_files(remote: Remote) -> list[RemoteFile]:
    """Same as ``remote.list()``."""
    return remote.list()


def delete_files(remote: Remote, keys: list[str]) -> None:
    """Same as ``remote.delete(keys)``."""
    remote.delete(keys)


def read_chunks(remote: Remote, oid: str, label: str = "object") -> Iterator[bytes]:
    """Stream one remote object in CHUNK pieces (``remote.read``)."""
    with remote.read(oid, label) as f:
        while True:
            try:
                data = f.read(CHUNK)
            except Exception as exc:
                raise remote.error(exc, "read from") from None
            if not data:
                return
            yield data


__all__ = [
    "CHUNK",
    "PREFIX",
    "FsRemote",
    "LocalRemote",
    "OnBytes",
    "Remote",
    "RemoteFile",
    "RemoteInfo",
    "configured_remote",
    "delete_files",
    "list_files",
    "oid_from_parts",
    "open_remote",
    "read_chunks",
    "remote_error",
    "split_oid",
]
