"""``git snap install`` / ``uninstall``: gitsnap's git hook shims (the installer is
:mod:`gitsnap.hooks.install`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gitsnap.workspace import Workspace

if TYPE_CHECKING:
    from gitsnap.hooks.install import InstallResult


def install(
    cwd: Path | None = None, hooks: Sequence[str] = (), *, force: bool = False
) -> InstallResult:
    """Write gitsnap's hook shims into the hooks folder.

    The shims are pre-commit, pre-push, post-checkout, post-merge, post-commit and
    post-rewrite (:data:`gitsnap.hooks.GIT_HOOKS`).
    The folder is git's own (``git rev-parse --git-path hooks``, so
    ``core.hooksPath`` counts). A foreign hook already there is moved to
    ``<hook>.legacy`` and run first; an earlier gitsnap shim is upgraded;
    ``force`` also replaces a gitsnap shim with local edits.

    Example::

        result = api.install()
        print(result.hooks_dir, [(a.hook, a.action) for a in result.actions])
    """
    from gitsnap.hooks import install as installer

    root = Workspace.discover(cwd).root
    installer.setup_merge_driver(root)  # a clone's .git/config needs the driver too
    return installer.install(root, hooks, force=force)


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
