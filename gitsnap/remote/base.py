"""The one interface every remote backend implements, and what the backends share.

A backend is a subclass of :class:`Remote` that implements its six object
methods -- :meth:`~Remote.present`, :meth:`~Remote.upload`,
:meth:`~Remote.download`, :meth:`~Remote.list`, :meth:`~Remote.delete`,
:meth:`~Remote.read` -- over the remote's gitsnap area (``<remote
url>/gitsnap/blake3/``, DESIGN D3), and three file methods over its pack
area ``packs/`` (storage v2, :mod:`gitsnap.remote.packs`):
:meth:`~Remote.list_packs`, :meth:`~Remote.put_pack_file`,
:meth:`~Remote.read_pack_file`.
Callers (transfer, gc, fsck) use only these methods and never ask which
backend they hold; a wrapper (a pacing remote in the tests, a packing remote
of storage v2) delegates them.
"""

from __future__ import annotations

import builtins
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from gitsnap.errors import GitsnapError, ObjectCorrupt, ObjectMissing, RemoteError
from gitsnap.hashing import Digest, OnBytes, digest_stream, file_reader, hash_range
from gitsnap.store import ObjectStore

PREFIX = ("gitsnap", "blake3")
PACKS = "packs"  # the pack area, inside the object area (docs/storage-format.md)
_HEX = re.compile(r"^[0-9a-f]+$")


def _no_progress(n: int) -> None:
    pass


def split_oid(oid: str) -> tuple[str, str]:
    return oid[:2], oid[2:]


def oid_from_parts(prefix: str, name: str) -> str | None:
    """The object id a ``ab/cdef…`` key names, or None if it names none."""
    oid = prefix + name
    if len(prefix) == 2 and len(oid) == 64 and _HEX.match(oid):
        return oid
    return None


@dataclass(frozen=True)
class RemoteInfo:
    name: str
    url: str  # as configured (after DVC resolved relative paths)
    protocol: str


@dataclass(frozen=True)
class RemoteFile:
    """A file in the remote's gitsnap area: an object (``oid`` set) or a temp upload."""

    key: str  # backend path
    oid: str | None
    size: int
    mtime: float | None  # None: the backend did not say
    tmp: bool = False  # a temp upload under gitsnap/blake3/tmp/


class Remote(ABC):
    """One DVC remote's gitsnap object area. Methods are safe to call from many threads."""

    info: RemoteInfo
    jobs: int

    @abstractmethod
    def present(self, oids: Iterable[str]) -> set[str]:
        """The subset of ``oids`` the remote holds, answered by listings, never one probe each."""

    def probe(self) -> None:
        """RemoteError unless the remote answers as configured (``git snap doctor``).

        One listing of an ``ab/`` folder (network, credentials), then the
        bucket or base folder must exist: an absent one would make every
        object look missing. A backend may check more cheaply.
        """
        self.present(["0" * 64])

    def exists(self, oid: str) -> bool:
        """Whether the remote holds ``oid`` (one listing of its ``ab/`` folder)."""
        return oid in self.present([oid])

    @abstractmethod
    def upload(
        self, store: ObjectStore, oid: str, size: int, label: str, on_bytes: OnBytes = _no_progress
    ) -> None:
        """Copy a local object to the remote, re-hashed before it leaves (D9).

        Never leaves a partial object under its final key.
        """

    @abstractmethod
    def download(
        self, store: ObjectStore, oid: str, size: int, label: str, on_bytes: OnBytes = _no_progress
    ) -> None:
        """Copy a remote object into ``store``, verified.

        ObjectCorrupt (and nothing stored) if its bytes do not hash to ``oid``;
        PointerError if they do but the object is not ``size`` bytes long (the
        pointer that asked for it is wrong; the intact object is kept).
        """

    @abstractmethod
    def list(self) -> builtins.list[RemoteFile]:
        """Every object and temp file of the gitsnap area (one recursive listing).

        RemoteError if the remote itself is absent (a missing bucket or
        folder): an empty answer would make every object look missing.
        """

    @abstractmethod
    def delete(self, keys: builtins.list[str]) -> None:
        """Delete files named by :meth:`list` (``RemoteFile.key``); absent ones are skipped."""

    @abstractmethod
    def read(self, oid: str, label: str = "object") -> IO[bytes]:
        """One object opened for reading as it is stored, unverified; the caller closes it.

        ObjectMissing if it is absent, ObjectCorrupt if its key is not a file.
        """

    # the pack area (storage v2): <area>/packs/pack-<name>.pack and .idx

    @abstractmethod
    def list_packs(self) -> builtins.list[RemoteFile]:
        """Every file of the pack area (one listing); ``oid`` is None, ``key`` ends in its name."""

    @abstractmethod
    def put_pack_file(self, local: Path, name: str) -> None:
        """Upload a local file as ``packs/<name>``; never a partial file under that name.

        A file written in :meth:`staging_dir` (and fsynced) is moved, not copied."""

    def staging_dir(self) -> Path | None:
        """A local folder on the remote's own filesystem where a push may write a pack
        in place (its ``tmp/``: a file left there by a killed push is a stale temp file
        that ``gc --remote`` deletes), or None: packs are written locally and uploaded."""
        return None

    @abstractmethod
    def read_pack_file(self, name: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of ``packs/<name>`` in one request (fewer if it is shorter).

        ObjectMissing if the file is absent.
        """

    def pack_missing(self, name: str) -> ObjectMissing:
        return ObjectMissing(
            f"pack file {name} is missing from remote '{self.info.name}'",
            hint="push the snapshots again from a machine that has their objects (git snap push)",
        )

    def digest(self, oid: str, label: str = "object", on_bytes: OnBytes | None = None) -> Digest:
        """What a remote object hashes to, and its length: one streaming read (fsck)."""
        f = self.read(oid, label)
        try:
            with f:
                return digest_stream(file_reader(f), on_bytes=on_bytes)
        except GitsnapError:
            raise
        except Exception as exc:
            raise self.error(exc, "read from") from None

    # shared helpers

    def corrupt(self, oid: str, label: str) -> ObjectCorrupt:
        return ObjectCorrupt(
            f"object {oid[:12]}… ({label}) on remote '{self.info.name}' is corrupt: "
            "its bytes do not match its id; it was not stored",
            hint=f"push it again from a machine that has it (git snap push -r {self.info.name}), "
            "or delete the damaged copy from the remote",
        )

    def missing(self, oid: str, label: str) -> ObjectMissing:
        return ObjectMissing(
            f"object {oid[:12]}… ({label}) is missing from remote '{self.info.name}'",
            hint="push it from the machine where it was saved: git snap push",
        )

    def error(self, exc: BaseException, verb: str) -> RemoteError:
        return remote_error(self.info, exc, verb)


def hash_local(store: ObjectStore, oid: str, size: int, label: str) -> None:
    """Re-hash a local object before it leaves (D9): a damaged copy must not spread.

    A local object of another length than the pointer says is judged by
    :meth:`ObjectStore.blame`: intact (the pointer lies) or damaged.
    """
    with store.open(oid, label) as src:
        digest, seen = hash_range(src.fd, src.offset, src.length)
    if digest != oid:
        raise ObjectCorrupt(
            f"object {oid[:12]}… ({label}) is corrupt in the local store; it was not pushed",
            hint=store.damaged_hint(oid),
        )
    if seen != size:
        raise store.blame(oid, size, label)


def remote_error(info: RemoteInfo, exc: BaseException, verb: str) -> RemoteError:
    """Turn a filesystem/SDK exception into a RemoteError whose hint names the likely fix."""
    text = str(exc).strip() or type(exc).__name__
    name = info.name
    kind = type(exc).__name__
    lowered = text.lower()
    if isinstance(exc, PermissionError) or any(
        k in lowered
        for k in (
            "accessdenied",
            "access denied",
            "invalidaccesskeyid",
            "signaturedoesnotmatch",
            "forbidden",
            "does not exist in our records",
            "expiredtoken",
            "nocredentials",
            "unable to locate credentials",
        )
    ):
        hint = (
            f"check the credentials for remote '{name}' "
            "(for S3: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, "
            f"or dvc remote modify --local {name} access_key_id ...)"
        )
        return RemoteError(f"remote '{name}' ({info.url}) refused access: {text}", hint=hint)
    if "nosuchbucket" in lowered or "bucket does not exist" in lowered:
        return missing_bucket(info)
    connection_words = (
        "could not connect",
        "connect timeout",
        "connection refused",
        "name or service not known",
        "timed out",
        "endpoint",
        "cannot connect",
        "temporary failure in name resolution",
    )
    if (
        isinstance(exc, (ConnectionError, TimeoutError))
        or "Connect" in kind
        or "Timeout" in kind
        or any(k in lowered for k in connection_words)
    ):
        return RemoteError(
            f"cannot reach remote '{name}' ({info.url}): {text}",
            hint=f"check the network and the remote's url/endpointurl "
            f"(dvc remote modify {name} endpointurl URL)",
        )
    return RemoteError(
        f"cannot {verb} remote '{name}' ({info.url}): {kind}: {text}",
        hint=f"check the remote's configuration: dvc remote list; dvc config -l | grep {name}",
    )


def missing_bucket(info: RemoteInfo, what: str = "the bucket") -> RemoteError:
    return RemoteError(
        f"remote '{info.name}' ({info.url}): {what} does not exist",
        hint=f"create it, or fix the url: dvc remote modify {info.name} url URL",
    )


def mtime_of(info: dict[str, Any]) -> float | None:
    """A listing entry's modification time, whatever the backend calls it."""
    from datetime import datetime

    for key in ("mtime", "LastModified", "last_modified", "updated", "modified", "created"):
        value = info.get(key)
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return None
