"""Cheap looks at pointer bytes, without parsing them: is this gitsnap's, which id, which objects.

Imported by every hook and by :mod:`gitsnap.gitio`, including a hook with
nothing to do: only ``re`` here, no YAML (DESIGN D10).
"""

from __future__ import annotations

import os
import re

from gitsnap.errors import PointerError
from gitsnap.pointer.limits import MAX_POINTER_BYTES

SUFFIX = ".snap"  # a pointer is <checkpoint path>.snap
HEAD = b"gitsnap:"  # a pointer's first line (the version key comes first)
NOTES_REF = "refs/notes/gitsnap"  # where metrics measured after a commit live (git notes)

# A pointer in a merge conflict is still gitsnap's, and broken: callers must see it.
# Two forms: git's own markers (no merge driver configured), and the summary
# gitsnap's merge driver writes (gitsnap.merge.conflict_text), which starts so.
_CONFLICTED = re.compile(rb"<<<<<<<[^\n]*\n" + re.escape(HEAD))
CONFLICT_HEAD = b"# gitsnap merge conflict"
# A pointer's top-level id line (keys are sorted and only top-level keys start
# a line with a letter): enough to tell "clean" from "changed" without YAML.
_ID_LINE = re.compile(rb"^id: ([0-9a-f]{64})[ \t]*\r?$", re.M)


def is_pointer(data: bytes) -> bool:
    """Whether the bytes of a ``*.snap`` file are a gitsnap pointer (git-lfs style: by its head).

    Jest snapshot tests (and other tools) write ``*.snap`` files too; those
    are not gitsnap's to parse, list or judge.
    """
    return data.startswith(HEAD) or is_conflicted(data)


def is_conflicted(data: bytes) -> bool:
    """Whether pointer bytes are a merge conflict (git's markers or the merge driver's summary)."""
    return data.startswith(CONFLICT_HEAD) or _CONFLICTED.match(data) is not None


def peek_id(data: bytes) -> str | None:
    """The snapshot id in a pointer's bytes without parsing them; None if not a gitsnap pointer."""
    if not data.startswith(HEAD):
        return None
    m = _ID_LINE.search(data)
    return m.group(1).decode() if m else None


def scan_oids(raw: bytes) -> set[str]:
    """Stored object ids of a *canonical* pointer by a line scan (no YAML parse).

    Only for text that :func:`~gitsnap.pointer.loads` accepted and
    :func:`~gitsnap.pointer.dumps` reproduces byte for byte (the status fast
    path checks this before trusting it): there every entry is one line, and
    views (``view: true``) name no stored object.
    """
    oids = set()
    for line in raw.split(b"\n"):
        if line.startswith(b"- {") and b" oid: " in line and b"view: true" not in line:
            oid = line.split(b" oid: ", 1)[1][:66].strip(b'"')[:64]
            oids.add(oid.decode())
    return oids


def pointer_path_for(checkpoint: str) -> str:
    return checkpoint + SUFFIX


def checkpoint_path_for(pointer: str) -> str:
    if not pointer.endswith(SUFFIX):
        raise PointerError(f"{pointer} is not a pointer file (no {SUFFIX} suffix)")
    return pointer[: -len(SUFFIX)]


def pointer_bytes(path: str | os.PathLike[str]) -> bytes:
    """A pointer file's bytes, at most one past the size limit (``loads`` refuses those).

    Work-tree pointers come from other people's commits too: a huge one is
    never read whole (DESIGN D9).
    """
    with open(path, "rb") as f:
        return f.read(MAX_POINTER_BYTES + 1)
