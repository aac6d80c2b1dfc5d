"""``git snap tag`` / ``git snap ls``: the model registry (GTO-compatible annotated tags).

The rules -- tag names, versions, stages, which checkpoint a name means --
are :mod:`gitsnap.registry`'s, and so are the result types (imported on use).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gitsnap.errors import UsageError
from gitsnap.workspace import Workspace

if TYPE_CHECKING:
    from gitsnap.registry import ModelHistory, ModelSummary, TagResult


def tag(
    name: str,
    version: str | None = None,
    rev: str | None = None,
    *,
    stage: str | None = None,
    message: str | None = None,
    push: bool = False,
    cwd: Path | None = None,
) -> TagResult:
    """Register a version or assign a stage, as an annotated tag.

    A version is tagged ``NAME@vX.Y.Z``, a stage ``NAME#STAGE#N``. ``rev``
    defaults to HEAD and may itself be a registry reference.

    Example::

        api.tag("classifier", "v1.2.0")                  # classifier@v1.2.0 on HEAD
        api.tag("classifier", stage="prod", rev="classifier@v1.2.0")   # classifier#prod#2
    """
    from gitsnap import registry

    ws = Workspace.discover(cwd)
    if version is not None and stage is None:
        return registry.register(ws, name, version, rev, message=message, push=push)
    if stage is not None and version is None:
        return registry.assign(ws, name, stage, rev, message=message, push=push)
    raise UsageError(
        "give a VERSION or --stage STAGE (one of them)",
        hint="git snap tag NAME v1.2.0 [REV]  or  git snap tag NAME --stage prod [REV]",
    )


def ls(
    name: str | None = None, *, pre: bool = False, cwd: Path | None = None
) -> list[ModelSummary]:
    """Every model (or ``name``): its latest version, stages, key metrics and commit.

    The latest version is the highest in SemVer order (``v1.10.0`` above
    ``v1.9.0``) that is not a pre-release; ``pre`` lets a pre-release
    (``v1.2.0-rc.1``, below ``v1.2.0``) be the latest.

    Example::

        for m in api.ls():
            print(m.name, m.version, [(s.stage, s.version) for s in m.stages], m.metrics)
    """
    from gitsnap import registry

    return registry.summaries(Workspace.discover(cwd), name, pre=pre)


def ls_history(name: str, *, pre: bool = False, cwd: Path | None = None) -> ModelHistory:
    """Every registry event of one model, newest first (``pre``: as for :func:`ls`)."""
    from gitsnap import registry

    return registry.history(Workspace.discover(cwd), name, pre=pre)
