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
    from gitsnap.commands.save_state import save_one as save
    from gitsnap.commands.save_state import save_state_dict

__version__ = "0.1.0"

# Name -> (module, its name there), imported on first use (PEP 562).
_WHERE = {
    **{
        n: ("gitsnap.commands.open", n)
        for n in ("ExportResult", "Reader", "export", "load", "open")
    },
    "save": ("gitsnap.commands.save_state", "save_one"),  # gitsnap.api.save takes a list
    "save_state_dict": ("gitsnap.commands.save_state", "save_state_dict"),
    "SaveResult": ("gitsnap.commands.save", "SaveResult"),
}


def __getattr__(name: str) -> object:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(where[0]), where[1])
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
