"""Optional dependencies (DESIGN D15): imported where a feature needs them, or a clear error.

gitsnap's core install has neither torch nor safetensors: saving, diffing and
restoring safetensors, folders and raw files need neither. The few features
that hand tensors to torch (and the demo) call :func:`require_torch` at the
point of use, so a user without the extra gets one clear error with the
install command instead of a ``ModuleNotFoundError`` from deep inside.
"""

from __future__ import annotations

import importlib
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
        raise MissingDependency(
            f"{feature} needs {top}, which is not installed",
            hint=f"pip install 'gitsnap[{extra}]'",
        ) from None


def require_torch(feature: str) -> ModuleType:
    """``torch``, imported for ``feature`` (e.g. "reading a .pt checkpoint")."""
    return require("torch", feature)


def require_safetensors_torch(feature: str) -> ModuleType:
    """``safetensors.torch`` (it needs torch too), imported for ``feature``."""
    require_torch(feature)
    return require("safetensors.torch", feature)
