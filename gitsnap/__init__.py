"""gitsnap: version machine-learning model checkpoints inside git.

Importing this package is cheap on purpose: it pulls in neither torch nor dvc
(nor numpy). The Python API (``docs/python-api.md``) -- :func:`open`,
:func:`load`, :func:`export`, :func:`save`, :func:`save_state_dict` -- loads
its module on first use; every command is in the facade :mod:`gitsnap.api`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gitsnap.commands.open import ExportResult, Reader, export, load, open
    from gitsnap.commands.save import SaveResult
    from gitsnap.commands.save_state import save, save_state_dict

__version__ = "0.1.0"

# Name -> the module defining it, imported on first use (PEP 562).
_WHERE = {
    **dict.fromkeys(("ExportResult", "Reader", "export", "load", "open"), "gitsnap.commands.open"),
    **dict.fromkeys(("save", "save_state_dict"), "gitsnap.commands.save_state"),
    "SaveResult": "gitsnap.commands.save",
}


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ExportResult",
    "Reader",
    "SaveResult",
    "__version__",
    "export",
    "load",
    "open",
    "save",
    "save_state_dict",
]
