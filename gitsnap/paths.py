"""Which paths a pointer may name, and where gitsnap may read and write them.

Pointers come from other people's branches, so every path in one (its
checkpoint path, a folder pointer's ``files:`` list, the name of the ``.snap``
file itself) is hostile input. This module is the one place that decides
whether such a path is allowed; save, checkout, pull, the checkout hook,
folder restores and init all ask it.

A path is refused when:

- it is empty, absolute, holds a NUL or a backslash, or has an empty, ``.``
  or ``..`` component;
- any component is ``.git`` in any spelling a filesystem folds to it: any
  case, trailing dots and spaces (``.git.``, ``.GIT ``), an NTFS stream suffix
  (``.git::$INDEX_ALLOCATION``), the 8.3 short name ``git~1``, and the HFS+
  spellings with ignorable Unicode code points (``.g\\u200cit``). git's own
  ``verify_path`` refuses the same names: a file written into a ``.git`` runs
  code (``core.fsmonitor`` in a planted ``config``) the next time git runs
  there;
- any component is ``.dvc`` in the same spellings: DVC's config and the
  object cache live there, and no checkpoint does;
- its real location, symlinks resolved, is not inside the work tree, lies
  inside a ``.git`` or ``.dvc`` after all, or inside the object store.

:func:`safe_target` resolves each existing parent in turn and returns the
path with its parents resolved, so the caller writes through checked
directories only: a committed ``models -> /anywhere`` symlink cannot make a
restore write into ``/anywhere``. The threat is content from a branch, not a
process racing gitsnap on the same machine; a local user who can swap
directories under a running command can write there anyway.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from gitsnap.errors import PathError

# Code points HFS+ drops when it compares names (git's next_hfs_char): ".g\u200cit" is ".git".
_HFS_IGNORABLE = frozenset(
    chr(c)
    for c in (
        *range(0x200C, 0x2010),
        *range(0x202A, 0x202F),
        *range(0x206A, 0x2070),
        0xFEFF,
    )
)
# NTFS drops trailing dots and spaces, and "name:stream" opens a stream of "name";
# "git~1" is the 8.3 short name Windows may give ".git".
_DOTGIT = re.compile(r"(?:\.git|git~1)[. ]*(?::.*)?", re.DOTALL)
_DOTDVC = re.compile(r"(?:\.dvc|dvc~1)[. ]*(?::.*)?", re.DOTALL)

SAVE_HINT = (
    "gitsnap saves checkpoints that lie in the work tree, outside .git and .dvc: "
    "move (not symlink) the checkpoint there, then save it"
)
HOSTILE_HINT = (
    "a pointer may only name paths inside the work tree, outside .git and .dvc; this one "
    "is broken or hostile: do not restore it, and remove it from its branch (git rm PATH.snap)"
)


def _fold(name: str) -> str:
    return "".join(c for c in name if c not in _HFS_IGNORABLE).casefold()


def is_dotgit(name: str) -> bool:
    """True when a filesystem may take path component ``name`` for ``.git``."""
    return _DOTGIT.fullmatch(_fold(name)) is not None


def is_dotdvc(name: str) -> bool:
    """True when a filesystem may take path component ``name`` for ``.dvc``."""
    return _DOTDVC.fullmatch(_fold(name)) is not None


def reserved_component(parts: Sequence[str]) -> str | None:
    """The first component of ``parts`` that names ``.git`` or ``.dvc``, if any."""
    for part in parts:
        if is_dotgit(part) or is_dotdvc(part):
            return part
    return None


def check_relpath(value: object, what: str, *, hint: str = HOSTILE_HINT) -> str:
    """Return ``value`` if it is an allowed repository-relative POSIX path; else raise.

    Only the text is checked; :func:`safe_target` also checks where it leads.
    """
    if not isinstance(value, str) or not value:
        raise PathError(f"{what}: {value!r} is not a path", hint=hint)
    parts = value.split("/")
    if (
        "\0" in value
        or "\\" in value
        or value.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise PathError(f"{what}: {value!r} names a path outside the work tree", hint=hint)
    bad = reserved_component(parts)
    if bad is not None:
        where = ".git" if is_dotgit(bad) else ".dvc"
        spelled = "" if bad == where else f" ({bad!r} is {where} on some filesystems)"
        raise PathError(
            f"{what}: {value!r} names a path inside {where}{spelled}; "
            "gitsnap never reads or writes there",
            hint=hint,
        )
    return value


def allowed(rel: str) -> bool:
    """True when :func:`check_relpath` accepts ``rel`` (for callers that skip, not fail)."""
    try:
        check_relpath(rel, "path")
    except PathError:
        return False
    return True


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def safe_target(
    root: Path,
    rel: str,
    what: str,
    *,
    forbidden: Sequence[Path] = (),
    hint: str = HOSTILE_HINT,
) -> Path:
    """Where ``rel`` really is inside work tree ``root``: parents resolved, every step checked.

    ``root`` must be resolved. Each existing parent directory is resolved in
    turn; one that is a symlink must lead inside ``root`` and outside any
    ``.git``/``.dvc``. The last component, if it is a symlink, must lead
    inside the work tree too (gitsnap reads a checkpoint before replacing it).
    ``forbidden`` are resolved folders (the object store) nothing may land in.
    The returned path has resolved parents and the last component as given.
    """
    check_relpath(rel, what, hint=hint)
    parts = rel.split("/")
    here = root
    for i, part in enumerate(parts):
        step = here / part
        last = i == len(parts) - 1
        try:
            is_link = step.is_symlink()
            exists = is_link or step.exists()
        except OSError:
            exists, is_link = False, False
        if not exists:
            here = Path(step, *parts[i + 1 :])  # created by the restore: real folders
            break
        if is_link:
            real = step.resolve()
            try:
                inner = real.relative_to(root)
            except ValueError:
                raise PathError(
                    f"{what}: {rel!r} leads through the symlink {step.relative_to(root)} "
                    f"to {real}, outside the work tree; gitsnap never follows it there",
                    hint=f"replace the symlink {step.relative_to(root)} with a real folder or "
                    "file inside the work tree, then run the command again",
                ) from None
            if inner.parts and reserved_component(inner.parts) is not None:
                raise PathError(
                    f"{what}: {rel!r} leads through the symlink {step.relative_to(root)} "
                    f"into {inner.as_posix()}",
                    hint=hint,
                )
            here = step if last else real
        else:
            here = step
    for folder in forbidden:
        real = here.parent.resolve() / here.name
        if _inside(real, folder):
            raise PathError(f"{what}: {rel!r} lies inside the object store {folder}", hint=hint)
    return here


def regular_or_absent(path: Path, what: str) -> Path:
    """``path`` if it is a regular file or does not exist; refuse a symlink or anything else.

    ``.gitignore`` and ``.gitattributes`` are read and rewritten by gitsnap: a
    committed symlink in their place would make gitsnap copy an outside file
    into the repository, or write through the link.
    """
    try:
        st = path.lstat()
    except FileNotFoundError:
        return path
    import stat

    if stat.S_ISLNK(st.st_mode):
        raise PathError(
            f"{what} is a symlink (to {path.readlink()}); gitsnap does not read or "
            "write through it",
            hint=f"replace it with a regular file (rm {path.name}, write the lines you need "
            "into a new one, commit it), then run the command again",
        )
    if not stat.S_ISREG(st.st_mode):
        raise PathError(f"{what} is not a regular file", hint="remove it, then run again")
    return path


__all__ = [
    "HOSTILE_HINT",
    "SAVE_HINT",
    "allowed",
    "check_relpath",
    "is_dotdvc",
    "is_dotgit",
    "regular_or_absent",
    "reserved_component",
    "safe_target",
]
