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
    from gitsnap.commands.compare import CompareResult, compare
    from gitsnap.commands.diff import diff, textconv
    from gitsnap.commands.doctor import Check, DoctorResult, doctor
    from gitsnap.commands.du import DuEntry, DuResult, RemoteDuResult, du, du_remote
    from gitsnap.commands.eval import EvalResult, EvalRun, eval_snapshots
    from gitsnap.commands.fsck import FsckProblem, FsckResult, FsckUse, fsck
    from gitsnap.commands.gc import GcObject, GcResult, gc
    from gitsnap.commands.init import InitResult, init
    from gitsnap.commands.install import install, uninstall
    from gitsnap.commands.log import LogEntry, log, read_pointer_file
    from gitsnap.commands.metrics import (
        MetricsCheckpoint,
        MetricsNoteResult,
        MetricsShowResult,
        metrics_add,
        metrics_show,
    )
    from gitsnap.commands.registry import ls, ls_history, tag
    from gitsnap.commands.repack import RepackResult, repack
    from gitsnap.commands.save import SaveResult, save
    from gitsnap.commands.saves import SaveEntry, all_saves
    from gitsnap.commands.show import ShowResult, show
    from gitsnap.commands.status import StatusEntry, StatusResult, status
    from gitsnap.commands.transfer import PullResult, fetch, pull, push, remote_status
    from gitsnap.errors import PointerError
    from gitsnap.pointer import Entry

# Module -> the names it defines; each module is imported on first use of one
# of them: `git snap status` loads the status command only (DESIGN D10).
_MODULES = {
    "gitsnap.commands.checkout": ("CheckoutEntry", "checkout"),
    "gitsnap.commands.compare": ("CompareResult", "compare"),
    "gitsnap.commands.diff": ("diff", "textconv"),
    "gitsnap.commands.doctor": ("Check", "DoctorResult", "doctor"),
    "gitsnap.commands.du": ("DuEntry", "DuResult", "RemoteDuResult", "du", "du_remote"),
    "gitsnap.commands.eval": ("EvalResult", "EvalRun", "eval_snapshots"),
    "gitsnap.commands.fsck": ("FsckProblem", "FsckResult", "FsckUse", "fsck"),
    "gitsnap.commands.gc": ("GcObject", "GcResult", "gc"),
    "gitsnap.commands.init": ("InitResult", "init"),
    "gitsnap.commands.install": ("install", "uninstall"),
    "gitsnap.commands.log": ("LogEntry", "log", "read_pointer_file"),
    "gitsnap.commands.metrics": (
        "MetricsCheckpoint", "MetricsNoteResult", "MetricsShowResult", "metrics_add",
        "metrics_show",
    ),
    "gitsnap.commands.registry": ("ls", "ls_history", "tag"),
    "gitsnap.commands.repack": ("RepackResult", "repack"),
    "gitsnap.commands.save": ("SaveResult", "save"),
    "gitsnap.commands.show": ("ShowResult", "show"),
    "gitsnap.commands.saves": ("SaveEntry", "all_saves"),
    "gitsnap.commands.status": ("StatusEntry", "StatusResult", "status"),
    "gitsnap.commands.transfer": ("PullResult", "fetch", "pull", "push", "remote_status"),
    "gitsnap.errors": ("PointerError",),
    "gitsnap.pointer": ("Entry",),
}  # fmt: skip
_WHERE = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


__all__ = [
    "Check",
    "CheckoutEntry",
    "CompareResult",
    "DoctorResult",
    "DuEntry",
    "DuResult",
    "Entry",
    "EvalResult",
    "EvalRun",
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
    "RemoteDuResult",
    "RepackResult",
    "SaveEntry",
    "SaveResult",
    "ShowResult",
    "StatusEntry",
    "StatusResult",
    "all_saves",
    "checkout",
    "compare",
    "diff",
    "doctor",
    "du",
    "du_remote",
    "eval_snapshots",
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
    "repack",
    "save",
    "show",
    "status",
    "tag",
    "textconv",
    "uninstall",
]
