"""What gitsnap's git hooks do (DESIGN D7): ``git snap hook NAME ARGS...``.

The shims that ``git snap install`` writes (:mod:`gitsnap.hooks.install`) run this
for six git hooks; ``.pre-commit-hooks.yaml`` runs the same checks under
their own names for the pre-commit framework:

==================  =========================  ======================================
git hook            pre-commit framework id    what it does
==================  =========================  ======================================
``pre-commit``      ``gitsnap-check``          ``check-pointers``: every staged pointer's
                                               objects are in the local store and the
                                               pointer matches its checkpoint
..                  ``gitsnap-no-raw-weights`` ``no-raw-weights``: no weight file
                                               (``.safetensors .pt .pth .bin .ckpt
                                               .gguf .onnx``), no gitsnap checkpoint and
                                               no file over ``gitsnap.maxFileSize``
                                               (default 10 MiB) is staged into git
``pre-push``        ``gitsnap-push``           ``push-weights``: upload every snapshot the
                                               pushed commits introduce to the DVC remote,
                                               and the metrics notes; abort if that fails
``post-checkout``,  ``gitsnap-checkout``       ``restore``: bring the checkpoints in line
``post-merge``,                                with the new HEAD's pointers from the local
``post-commit``,                               store; never overwrite unsaved work
``post-rewrite``                               (post-commit: cherry-pick, revert, a
                                               concluded merge; post-rewrite: rebase,
                                               amend)
==================  =========================  ======================================

Configuration (``git config``): ``gitsnap.maxFileSize`` (bytes, ``k``/``m``/``g``
suffixes, 0 turns the size rule off), ``gitsnap.autoFetch`` (post-checkout /
post-merge fetch missing objects from the remote), ``gitsnap.remote`` (the DVC
remote the hooks use; default: DVC's ``core.remote``). A file may be
committed despite the raw-weights rule with the git attribute
``gitsnap-allow-raw`` (``tests/fixtures/*.bin gitsnap-allow-raw`` in
``.gitattributes``).

Each git hook first runs a foreign hook that ``install`` moved aside to
``<hook>.legacy`` (with the same arguments and standard input, as pre-commit
chains one); if that one fails, a pre-commit or pre-push stops there.

Modules: :mod:`.dispatch` (``run``: repository, ``.legacy`` chaining, which
hook), :mod:`.result` (what a hook returns, the hook names), :mod:`.precommit`,
:mod:`.prepush`, :mod:`.checkout` (post-checkout, post-merge, post-commit and
post-rewrite), and
:mod:`.install` (the shims, and the diff driver ``git snap init`` sets up).
The hooks are clients of the commands: which snapshots at a revision is
:mod:`gitsnap.revisions`, the dirty check and the stat-cache reads
:mod:`gitsnap.working`, fetching missing objects
:func:`gitsnap.commands.checkout.fetch_missing` -- each imported only when a
hook has work for it.

Speed (DESIGN D10): only the module of the hook that runs is imported, and a
hook with nothing to do imports nothing heavier than :mod:`gitsnap.gitio`
(``restore`` reads the index's pointer paths, the first lines of each pointer
and the stat cache); pointers are parsed, checkpoints hashed and dvc imported
only for what actually changed.

Every git this package starts runs without the ``GIT_DIR``/``GIT_INDEX_FILE``
family that git exports to hooks (:mod:`gitsnap.gitio`), except the reads of
the index being committed, which must see the index git names
(:func:`gitsnap.gitio.run_index`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gitsnap.hooks.dispatch import reads_stdin, run
from gitsnap.hooks.result import CHECKS, GIT_HOOKS, NAMES, HookResult, Message

if TYPE_CHECKING:
    from gitsnap.hooks.checkout import restore
    from gitsnap.hooks.precommit import RAW_WEIGHT_SUFFIXES, check_commit
    from gitsnap.hooks.prepush import RefUpdate, parse_push_lines, push_weights, pushed_snapshots

# Names whose module is imported on first use, so that `import gitsnap.hooks`
# (every hook run) does not load the code of the three other hooks.
_LAZY = {
    "RAW_WEIGHT_SUFFIXES": "precommit",
    "check_commit": "precommit",
    "RefUpdate": "prepush",
    "parse_push_lines": "prepush",
    "push_weights": "prepush",
    "pushed_snapshots": "prepush",
    "restore": "checkout",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "CHECKS",
    "GIT_HOOKS",
    "NAMES",
    "RAW_WEIGHT_SUFFIXES",
    "HookResult",
    "Message",
    "RefUpdate",
    "check_commit",
    "parse_push_lines",
    "push_weights",
    "pushed_snapshots",
    "reads_stdin",
    "restore",
    "run",
]
