"""Where things are: the git work tree, the DVC project in it, the object store.

Path conventions: the library speaks in repository-relative POSIX paths of
*checkpoints* (``models/model.safetensors``); the pointer of a checkpoint is
that path plus ``.snap``.

Only ``.snap`` files that start with ``gitsnap:`` are gitsnap's: other tools
(Jest snapshot tests) write ``*.snap`` files too, and those are left alone
(:func:`gitsnap.gitio.pointer_files`). A file that starts like a pointer and
is broken is still an error.

This module is on the path of a clean ``git snap status`` and of the hooks
(DESIGN D10): :mod:`gitsnap.pointer` (and YAML with it) is imported only when
a pointer is actually parsed.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from gitsnap import dvcconfig, gitio
from gitsnap.errors import NotInitialized, PathError, PointerError
from gitsnap.fsutil import common_git_dir, sweep_repository
from gitsnap.pointer.peek import SUFFIX, is_pointer, pointer_bytes
from gitsnap.statcache import StatCache
from gitsnap.store import ObjectStore, store_root

if TYPE_CHECKING:
    from gitsnap.pointer import Pointer


@dataclass
class Workspace:
    root: Path
    git_dir: Path
    cwd: Path
    dvc_dir: Path | None

    @classmethod
    def discover(cls, cwd: Path | None = None) -> Workspace:
        cwd = Path.cwd() if cwd is None else Path(cwd)
        paths = gitio.discover(cwd)
        root = paths.root.resolve()
        dvc_dir = None
        here = cwd.resolve()
        for d in (here, *here.parents):
            if (d / ".dvc").is_dir():
                dvc_dir = d / ".dvc"
                break
            if d == root:
                break
        sweep_repository(root, paths.git_dir)  # ---- what killed runs left (fsutil docstring)
        return cls(root=root, git_dir=paths.git_dir, cwd=here, dvc_dir=dvc_dir)

    def require_dvc(self) -> Path:
        if self.dvc_dir is None:
            raise NotInitialized(f"{self.root} is not set up for gitsnap (no DVC project found)")
        return self.dvc_dir

    @property
    def common_dir(self) -> Path:
        """The git dir every worktree of this repository shares (``--git-common-dir``)."""
        return common_git_dir(self.git_dir)

    @property
    def home_dvc_dir(self) -> Path:
        """The ``.dvc`` folder whose cache this worktree uses by default.

        A linked worktree (``git worktree add``) checks out its own copy of the
        committed ``.dvc/``, whose default cache (``.dvc/cache``) would be a
        second, empty store. Its objects live in the main worktree's store
        instead, the folder next to the shared git dir, when that worktree is a
        DVC project; otherwise (a bare repository's worktrees) in its own.
        """
        own = self.require_dvc()
        common = self.common_dir
        if common == self.git_dir or common.name != ".git":
            return own
        main = common.parent / own.relative_to(self.root)
        return main if main.is_dir() else own

    @property
    def cache_dir(self) -> Path:
        """DVC's cache dir: this worktree's explicit ``cache.dir`` (any config level)
        wins; otherwise the main worktree's cache, so that every worktree of a
        repository shares one object store (:attr:`home_dvc_dir`)."""
        own = self.require_dvc()
        config = dvcconfig.load(own)
        home = self.home_dvc_dir
        if home == own or dvcconfig.sets_cache(config):
            return dvcconfig.cache_dir(own, config)
        return dvcconfig.cache_dir(home)

    @functools.cached_property
    def store(self) -> ObjectStore:
        """The object store, one per workspace: its packs' indexes are read once."""
        return ObjectStore(store_root(self.cache_dir))

    def lock(self, what: str) -> contextlib.AbstractContextManager[None]:
        """Hold the store's lock while a command changes the store or the work tree
        (:mod:`gitsnap.lock`); ``what`` names the command to a process that waits."""
        from gitsnap import lock

        return lock.exclusive(self.store.root.parent / "lock", what)

    @property
    def stat_cache(self) -> StatCache:
        return StatCache(self.git_dir)

    # ------------------------------------------------------------ paths

    def relpath(self, user_path: str | os.PathLike[str]) -> str:
        """A user's path (relative to cwd, or absolute) -> repository-relative checkpoint path."""
        p = Path(user_path)
        absolute = (
            Path(os.path.normpath(self.cwd / p))
            if not p.is_absolute()
            else Path(os.path.normpath(p))
        )
        try:
            rel = absolute.relative_to(self.root)
        except ValueError:
            raise PathError(
                f"{user_path}: outside the repository {self.root}",
                hint="give a path inside the git work tree",
            ) from None
        text = PurePosixPath(*rel.parts).as_posix() if rel.parts else "."
        return text[: -len(SUFFIX)] if text.endswith(SUFFIX) else text

    def abspath(self, rel: str) -> Path:
        from gitsnap.pointer import safe_relpath

        return self.root / safe_relpath(rel, "path")

    def display(self, rel: str) -> str:
        """How to show a repository path to the user: relative to cwd when below it."""
        try:
            return (self.root / rel).relative_to(self.cwd).as_posix()
        except ValueError:
            return rel

    # ------------------------------------------------------------ pointers

    def read_pointer(self, rel: str) -> Pointer | None:
        """The working-tree pointer of checkpoint ``rel``, or None if there is none."""
        path = self.abspath(rel + SUFFIX)
        try:
            data = pointer_bytes(path)
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            raise PointerError(f"{rel}{SUFFIX} is a directory, not a pointer") from None
        from gitsnap.pointer import loads

        return loads(data, source=f"{rel}{SUFFIX}")

    def pointer_paths(self, rev: str | None = None) -> list[str]:
        """Checkpoint paths that have a gitsnap pointer in the work tree (or at ``rev``).

        ``*.snap`` files of other tools are not listed (see the module docstring).
        """
        if rev is not None:
            return list(self.pointer_blobs(rev))
        return [p[: -len(SUFFIX)] for p in gitio.pointer_files(self.root)]

    def pointer_blobs(self, rev: str) -> dict[str, bytes]:
        """Checkpoint path -> raw pointer at ``rev``: one ``ls-files``, one ``cat-file --batch``.

        The bytes that told a gitsnap pointer from another tool's ``*.snap``
        are handed back, so that nobody reads them from git a second time.
        """
        return self.pointer_blobs_with(rev)[0]

    def pointer_blobs_with(
        self, rev: str, extra: Sequence[str] = ()
    ) -> tuple[dict[str, bytes], dict[str, bytes | None]]:
        """:meth:`pointer_blobs`, and the files ``extra`` at ``rev`` (None: absent), read by
        the same ``cat-file --batch`` (a diff's ``.gitsnap.yaml`` costs no extra process)."""
        names = gitio.ls_files(self.root, f"*{SUFFIX}", rev)
        blobs = gitio.cat_blobs(self.root, [f"{rev}:{n}" for n in [*names, *extra]])
        pointers = {
            n[: -len(SUFFIX)]: raw
            for n in names
            if (raw := blobs.get(f"{rev}:{n}")) is not None and is_pointer(raw)
        }
        return pointers, {n: blobs.get(f"{rev}:{n}") for n in extra}

    def ensure_ignored(self, rel: str) -> None:
        """Keep the checkpoint itself out of git: ``/path`` in the top-level .gitignore."""
        if gitio.check_ignore(self.root, rel):
            return
        from gitsnap.fsutil import add_lines  # tempfile & co.: not on a clean status's path
        from gitsnap.paths import regular_or_absent

        gi = regular_or_absent(self.root / ".gitignore", ".gitignore")  # never through a symlink
        add_lines(gi, ["/" + rel.replace(" ", "\\ ")])
