"""What every hook shares: the result it returns, and cheap reads of git config and checkpoints.

Imported by every hook, including one with nothing to do: it must stay as
light as :mod:`gitsnap.gitio` (no pointer parsing, no YAML, DESIGN D10).
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitsnap import gitio
from gitsnap.errors import GitsnapError
from gitsnap.pointer.peek import SUFFIX

if TYPE_CHECKING:
    from gitsnap.statcache import StatCache
    from gitsnap.transfer import TransferResult



@dataclass(frozen=True)
class Message:
    level: str  # "error", "warning" or "info"
    text: str
    hint: str = ""


@dataclass(frozen=True)
class HookResult:
    """What one hook run did. ``exit_code`` is what the hook returns to git."""

    hook: str
    exit_code: int
    messages: list[Message] = field(default_factory=list)
    legacy_exit: int | None = None  # the chained <hook>.legacy's exit code; None: none ran
    restored: list[str] = field(default_factory=list)  # restore: checkpoints rewritten
    # restore: checkpoints left alone (unsaved changes, missing objects)
    kept: list[str] = field(default_factory=list)
    transfer: TransferResult | None = None  # pre-push: the upload

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class Out:
    """Collects messages; ``failed`` once an error is added."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def error(self, text: str, hint: str = "") -> None:
        self.messages.append(Message("error", text, hint))

    def warn(self, text: str, hint: str = "") -> None:
        self.messages.append(Message("warning", text, hint))

    def info(self, text: str, hint: str = "") -> None:
        self.messages.append(Message("info", text, hint))

    @property
    def failed(self) -> bool:
        return any(m.level == "error" for m in self.messages)


def config(root: Path, key: str, kind: str | None = None) -> str | None:
    """``git config --get KEY`` (typed by git when ``kind``); None when it is not set."""
    args = ["config", *([f"--type={kind}"] if kind else []), "--get", key]
    proc = gitio.run(args, root, check=False)
    if proc.returncode == 1:
        return None  # not set
    if proc.returncode != 0:
        problem = proc.stderr.decode(errors="replace").strip()
        raise GitsnapError(
            f"git config {key} is not a valid {kind or 'value'}: {problem}",
            hint=f"fix it with: git config {key} VALUE (or git config --unset {key})",
        )
    return proc.stdout.decode().strip()


def fmt_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def is_zero(sha: str) -> bool:
    """git's all-zero object id: "no commit" (a new branch, a deletion, a fresh clone)."""
    return not sha.strip("0")


def commit_or_none(root: Path, rev: str) -> str | None:
    proc = gitio.run(
        ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"],
        root,
        check=False,
    )
    return proc.stdout.decode().strip() or None if proc.returncode == 0 else None


def checkpoint_stat(path: Path) -> os.stat_result | None:
    """The stat-cache key of a checkpoint (a folder's: a fingerprint of its files), or None."""
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISDIR(st.st_mode):
        from gitsnap.snapshot import stat_path

        return stat_path(path)
    return st


def current_id(cache: StatCache, root: Path, rel: str, st: os.stat_result) -> tuple[str, Any]:
    """(snapshot id of the checkpoint on disk, its ingest result if it had to be read, else None).

    The stat cache answers for an unchanged checkpoint; only a changed one is
    read and hashed (importing the snapshot layer then).
    """
    cached = cache.get(rel, st)
    if cached is not None:
        return cached, None
    from gitsnap import snapshot

    started_ns = time.time_ns()
    ing = snapshot.ingest(root / rel, None, want_stats=False)
    cache.put(rel, st, ing.id, started_ns)
    return ing.id, ing


def index_pointers(root: Path) -> dict[str, str]:
    """``*.snap`` path -> blob of every (unconflicted) entry of the index being committed."""
    proc = gitio.run_index(["ls-files", "-s", "-z", "--", f"*{SUFFIX}"], root)
    entries = {}
    for rec in proc.stdout.decode(errors="surrogateescape").split("\0"):
        if "\t" in rec:
            meta, path = rec.split("\t", 1)
            _, blob, stage = meta.split()
            if stage == "0":
                entries[path] = blob
    return entries
