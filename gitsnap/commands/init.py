"""``git snap init``: set up gitsnap in a git repository."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gitsnap.errors import GitsnapError
from gitsnap.workspace import Workspace

if TYPE_CHECKING:
    from gitsnap.hooks.install import InstallResult


@dataclass(frozen=True)
class InitResult:
    root: str
    dvc_initialized: bool
    cache_dir: str
    remote: str | None
    hooks: InstallResult | None = None  # when init installed the hooks
    # Each hook -> its state in the hooks folder after init ("current", "absent", ...).
    hook_states: dict[str, str] = field(default_factory=dict)
    # Files init created or changed that belong in a commit (.git/ config and hooks do not).
    to_commit: list[str] = field(default_factory=list)

    @property
    def hooks_missing(self) -> list[str]:
        """Hooks that do not run gitsnap after init (absent, foreign or edited)."""
        from gitsnap.hooks.install import not_working

        return not_working(self.hook_states)


def init(cwd: Path | None = None, remote: str | None = None, hooks: bool = False) -> InitResult:
    """Set up gitsnap in a git repository: ``dvc init`` if needed, optional default remote.

    Also sets up the diff driver that makes ``git diff`` of a pointer
    readable. ``hooks`` also installs the git hooks (as ``git snap
    install``); without it nothing is written to the hooks folder.

    Example::

        res = api.init(remote="/mnt/shared/dvc-store", hooks=True)
        print(res.root, res.cache_dir, res.to_commit)
    """
    from gitsnap.hooks import install as installer

    ws = Workspace.discover(cwd)
    created = False
    to_commit: list[str] = []
    if ws.dvc_dir is None:
        _dvc(["init", "-q"], ws.root, remote)
        created = True
        ws = Workspace.discover(cwd)
        to_commit += [".dvc", ".dvcignore"]  # config, .gitignore (of its cache and tmp)
    if remote:
        _dvc(["remote", "add", "-d", "-f", "storage", remote], ws.root, remote)
        if not created:
            to_commit.append(".dvc/config")
    wrote_diff = installer.setup_diff_driver(ws.root)
    if installer.setup_merge_driver(ws.root) or wrote_diff:  # tensor-level merges of pointers
        to_commit.append(".gitattributes")
    ws.store.root.mkdir(parents=True, exist_ok=True)
    from gitsnap.fsutil import exclude_temp_names

    exclude_temp_names(ws.git_dir)  # D19: `git add -A` never stages a gitsnap temp file
    installed = installer.install(ws.root) if hooks else None
    here = [os.path.relpath(ws.root / p, ws.cwd) for p in to_commit]  # for `git add` from cwd
    states = installer.hook_states(ws.root)
    return InitResult(
        str(ws.root),
        created,
        str(ws.cache_dir),
        remote,
        installed,
        to_commit=here,
        hook_states=states,
    )


def _dvc(args: list[str], cwd: Path, url: str | None = None) -> None:
    """Run ``dvc ARGS``: only init's first run in a repository, or ``--remote``, needs dvc.

    dvc is an extra (``gitsnap[remote]``); ``url`` picks the one to name.
    """
    from gitsnap import _optional

    if not _optional.installed("dvc"):
        from gitsnap.remote.resolve import install_hint

        raise _optional.missing(
            "dvc",
            f"setting up the DVC project (dvc {' '.join(a for a in args[:2] if a[0] != '-')})",
            install_hint(url or ""),
        )
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise GitsnapError(
            f"dvc {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}",
            hint="run the dvc command by hand to see the full error",
        )
