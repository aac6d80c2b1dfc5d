"""The library facade: every ``git snap`` command as one Python function.

Each command lives in its own module of :mod:`gitsnap.commands` (with its
result types); this module re-exports them under the names callers have
always used. Functions return dataclasses and never print or exit; paths are
given as a user would type them (relative to ``cwd``).

Example::

    from gitsnap import api
    api.init()
    [res] = api.save(["model.safetensors"], message="baseline", metrics={"acc": 0.91})
    print(res.snapshot_id, res.bytes_written)
    api.checkout("HEAD~1")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gitsnap.commands.checkout import CheckoutEntry, checkout
    from gitsnap.commands.diff import diff, textconv
    from gitsnap.commands.du import DuEntry, DuResult, du
    from gitsnap.commands.fsck import FsckProblem, FsckResult, FsckUse, fsck
    from gitsnap.commands.gc import GcObject, GcResult, gc
    from gitsnap.commands.init import InitResult, init
    from gitsnap.commands.install import install, uninstall
    from gitsnap.commands.log import LogEntry, ShowResult, log, read_pointer_file, show
    from gitsnap.commands.metrics import (
        MetricsCheckpoint,
        MetricsNoteResult,
        MetricsShowResult,
        metrics_add,
        metrics_show,
    )
    from gitsnap.commands.registry import ls, ls_history, tag
    from gitsnap.commands.save import SaveResult, save
    from gitsnap.commands.status import StatusEntry, StatusResult, status
    from gitsnap.commands.transfer import PullResult, fetch, pull, push, remote_status
    from gitsnap.errors import PointerError
    from gitsnap.pointer import Entry

# Name -> the module that defines it, imported on first use: `git snap status`
# loads the status command only, not the other twelve (DESIGN D10).
_WHERE = {
    "CheckoutEntry": "gitsnap.commands.checkout",
    "DuEntry": "gitsnap.commands.du",
    "DuResult": "gitsnap.commands.du",
    "Entry": "gitsnap.pointer",
    "FsckProblem": "gitsnap.commands.fsck",
    "FsckResult": "gitsnap.commands.fsck",
    "FsckUse": "gitsnap.commands.fsck",
    "GcObject": "gitsnap.commands.gc",
    "GcResult": "gitsnap.commands.gc",
    "InitResult": "gitsnap.commands.init",
    "LogEntry": "gitsnap.commands.log",
    "MetricsCheckpoint": "gitsnap.commands.metrics",
    "MetricsNoteResult": "gitsnap.commands.metrics",
    "MetricsShowResult": "gitsnap.commands.metrics",
    "PointerError": "gitsnap.errors",
    "PullResult": "gitsnap.commands.transfer",
    "SaveResult": "gitsnap.commands.save",
    "ShowResult": "gitsnap.commands.log",
    "StatusEntry": "gitsnap.commands.status",
    "StatusResult": "gitsnap.commands.status",
    "checkout": "gitsnap.commands.checkout",
    "diff": "gitsnap.commands.diff",
    "du": "gitsnap.commands.du",
    "fetch": "gitsnap.commands.transfer",
    "fsck": "gitsnap.commands.fsck",
    "gc": "gitsnap.commands.gc",
    "init": "gitsnap.commands.init",
    "install": "gitsnap.commands.install",
    "log": "gitsnap.commands.log",
    "ls": "gitsnap.commands.registry",
    "ls_history": "gitsnap.commands.registry",
    "metrics_add": "gitsnap.commands.metrics",
    "metrics_show": "gitsnap.commands.metrics",
    "pull": "gitsnap.commands.transfer",
    "push": "gitsnap.commands.transfer",
    "read_pointer_file": "gitsnap.commands.log",
    "remote_status": "gitsnap.commands.transfer",
    "save": "gitsnap.commands.save",
    "show": "gitsnap.commands.log",
    "status": "gitsnap.commands.status",
    "tag": "gitsnap.commands.registry",
    "textconv": "gitsnap.commands.diff",
    "uninstall": "gitsnap.commands.install",
}


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


__all__ = [
    "CheckoutEntry",
    "DuEntry",
    "DuResult",
    "Entry",
    "FsckProblem",
    "FsckResult",
    "FsckUse",
    "GcObject",
    "GcResult",
    "InitResult",
    "LogEntry",
    "MetricsCheckpoint",
    "MetricsNoteResult",
    "MetricsShowResult",
    "PointerError",
    "PullResult",
    "SaveResult",
    "ShowResult",
    "StatusEntry",
    "StatusResult",
    "checkout",
    "diff",
    "du",
    "fetch",
    "fsck",
    "gc",
    "init",
    "install",
    "log",
    "ls",
    "ls_history",
    "metrics_add",
    "metrics_show",
    "pull",
    "push",
    "read_pointer_file",
    "remote_status",
    "save",
    "show",
    "status",
    "tag",
    "textconv",
    "uninstall",
]
