"""Run ``git snap ARGS...`` with every remote wrapped in a :class:`PacedRemote`.

    python tests/remote/paced_remote.py SECONDS ARGS...
    python tests/remote/paced_remote.py --barrier DIR SECONDS ARGS...

The resume tests SIGKILL a real push or pull while an object is half-written;
a transfer on loopback is too fast to hit, so this wrapper sleeps ``SECONDS``
after every copy step of every object. It is the real CLI and the real
backends: only ``gitsnap.remote.open_remote`` is wrapped, before any command
module is imported, so production code carries no test switch.

With ``--barrier DIR`` the first pack-file read (the first index a command
reads) stops after it is read: the wrapper creates ``DIR/reached`` and waits
for ``DIR/go``, so a test can run another command at exactly that point.
"""

from __future__ import annotations

import builtins
import sys
import time
from pathlib import Path
from typing import IO, Any

from gitsnap import remote as remote_pkg
from gitsnap.hashing import OnBytes
from gitsnap.remote import Remote, RemoteFile
from gitsnap.store import ObjectStore


def _ignore(n: int) -> None:
    pass


class PacedRemote(Remote):
    """Delegates to ``inner``; sleeps ``delay`` seconds after each transfer step."""

    def __init__(self, inner: Remote, delay: float, barrier: Path | None = None) -> None:
        self.inner = inner
        self.delay = delay
        self.barrier = barrier
        self.info = inner.info
        self.jobs = inner.jobs

    def _paced(self, on_bytes: OnBytes) -> OnBytes:
        def step(n: int) -> None:
            on_bytes(n)
            time.sleep(self.delay)

        return step

    def present(self, oids: Any) -> set[str]:
        return self.inner.present(oids)

    def upload(
        self, store: ObjectStore, oid: str, size: int, label: str, on_bytes: OnBytes = _ignore
    ) -> None:
        self.inner.upload(store, oid, size, label, self._paced(on_bytes))

    def download(
        self, store: ObjectStore, oid: str, size: int, label: str, on_bytes: OnBytes = _ignore
    ) -> None:
        self.inner.download(store, oid, size, label, self._paced(on_bytes))

    def list(self) -> builtins.list[RemoteFile]:
        return self.inner.list()

    def delete(self, keys: builtins.list[str]) -> None:
        self.inner.delete(keys)
        time.sleep(self.delay)  # between a pack's index and the pack (gc): time to SIGKILL there

    def read(self, oid: str, label: str = "object") -> IO[bytes]:
        return self.inner.read(oid, label)

    def list_packs(self) -> builtins.list[RemoteFile]:
        return self.inner.list_packs()

    def staging_dir(self) -> Path | None:
        return self.inner.staging_dir()

    def put_pack_file(self, local: Path, name: str) -> None:
        self.inner.put_pack_file(local, name)
        time.sleep(self.delay)  # between a pack and its index: time to SIGKILL there

    def read_pack_file(self, name: str, start: int, end: int) -> bytes:
        data = self.inner.read_pack_file(name, start, end)
        time.sleep(self.delay)
        barrier, self.barrier = self.barrier, None
        if barrier is not None:
            (barrier / "reached").touch()
            deadline = time.monotonic() + 120
            while not (barrier / "go").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        return data


def main(argv: list[str]) -> int:
    barrier = None
    if argv[0] == "--barrier":
        barrier, argv = Path(argv[1]), argv[2:]
    delay = float(argv[0])
    opener = remote_pkg.open_remote

    def open_paced(dvc_dir: Path, name: str | None = None, jobs: int | None = None) -> Remote:
        return PacedRemote(opener(dvc_dir, name, jobs), delay, barrier)

    remote_pkg.open_remote = open_paced
    from gitsnap.cli.main import main as cli_main

    return int(cli_main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
