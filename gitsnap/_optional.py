"""Optional dependencies (DESIGN D15): imported where a feature needs them, or a clear error.

gitsnap's core install has neither torch nor safetensors nor dvc: saving,
diffing and restoring safetensors, folders and raw files, and reviewing
pointers, need none of them. The few features that hand tensors to torch
(and the demo) call :func:`require_torch` at the point of use; whatever
reaches a DVC remote asks :func:`installed` first
(:mod:`gitsnap.remote.resolve`). A user without the extra gets one clear
error with the install command instead of a ``ModuleNotFoundError`` from
deep inside.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from gitsnap.errors import MissingDependency


def require(module: str, feature: str, extra: str = "torch") -> ModuleType:
    """Import ``module`` for ``feature``; without it raise :class:`MissingDependency`.

    >>> require("json", "reading JSON").__name__
    'json'
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        # Only the module asked for (or its parent package) counts as "not
        # installed": a broken install that lacks one of torch's own
        # dependencies must surface as what it is.
        top = module.split(".", 1)[0]
        if exc.name is None or exc.name.split(".", 1)[0] != top:
            raise
        raise missing(top, feature, f"pip install 'gitsnap[{extra}]'") from None


def installed(package: str) -> bool:
    """Whether top-level ``package`` can be imported, asked without importing it.

    >>> installed("json"), installed("no_such_package_here")
    (True, False)
    """
    return importlib.util.find_spec(package) is not None


def missing(package: str, feature: str, install: str) -> MissingDependency:
    """The one error for ``feature`` lacking ``package``; ``install`` is the command to add it."""
    return MissingDependency(f"{feature} needs {package}, which is not installed", hint=install)


def require_torch(feature: str) -> ModuleType:
    """``torch``, imported for ``feature`` (e.g. "reading a .pt checkpoint")."""
    return require("torch", feature)


def require_safetensors_torch(feature: str) -> ModuleType:
    """``safetensors.torch`` (it needs torch too), imported for ``feature``."""
    require_torch(feature)
    return require("safetensors.torch", feature)
