"""``git snap install`` / ``uninstall``: gitsnap's git hook shims (the installer is
:mod:`gitsnap.hooks.install`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from gitsnap.workspace import Workspace

if TYPE_CHECKING:
    from gitsnap.hooks.install import InstallResult


def install(
    cwd: Path | None = None, hooks: Sequence[str] = (), *, force: bool = False
) -> InstallResult:
    """Write gitsnap's hook shims into the hooks folder, and set the diff and merge drivers.

    The shims are pre-commit, pre-push, post-checkout, post-merge, post-commit and
    post-rewrite (:data:`gitsnap.hooks.GIT_HOOKS`).
    The folder is git's own (``git rev-parse --git-path hooks``, so
    ``core.hooksPath`` counts). A foreign hook already there is moved to
    ``<hook>.legacy`` and run first; an earlier gitsnap shim is upgraded;
    ``force`` also replaces a gitsnap shim with local edits.

    ``configured`` of the result says what else was set: each driver's
    ``.git/config`` entry, and each line ``.gitattributes`` lacked.

    Example::

        result = api.install()
        print(result.hooks_dir, [(a.hook, a.action) for a in result.actions])
        print(result.configured)
    """
    from gitsnap.fsutil import exclude_temp_names
    from gitsnap.hooks import install as installer

    ws = Workspace.discover(cwd)
    root = ws.root
    # A clone's .git/ lacks what `init` set there: both drivers that .gitattributes names
    # (and .gitattributes gains their lines only in a repository set up before they existed).
    configured = []
    if installer.setup_diff_driver(root):
        configured.append(f".gitattributes: added {installer.DIFF_ATTRIBUTE} (commit it)")
    configured.append(
        f"diff driver: diff.{installer.DIFF_DRIVER}.textconv = {installer.DIFF_COMMAND}"
    )
    if installer.setup_merge_driver(root):
        configured.append(f".gitattributes: added {installer.MERGE_ATTRIBUTE} (commit it)")
    configured.append(
        f"merge driver: merge.{installer.MERGE_DRIVER}.driver = {installer.MERGE_COMMAND}"
    )
    exclude_temp_names(ws.git_dir)  # D19: `git add -A` never stages a gitsnap temp file
    result = installer.install(root, hooks, force=force)
    return replace(result, configured=configured)


def uninstall(
    cwd: Path | None = None, hooks: Sequence[str] = (), *, force: bool = False
) -> InstallResult:
    """Remove gitsnap's hook shims (only those) and move any ``<hook>.legacy`` back in place.

    Example::

        for a in api.uninstall().actions:
            print(a.hook, a.action)   # "removed", "restored", "absent" or "skipped"
    """
    from gitsnap.hooks import install as installer

    return installer.uninstall(Workspace.discover(cwd).root, hooks, force=force)
