"""``git snap save``: record a snapshot of each checkpoint."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from gitsnap import __version__, environment, gitio, journal
from gitsnap.errors import PathError, UsageError
from gitsnap.fsutil import write_atomic
from gitsnap.metrics import Scalar, parse_pairs, read_file
from gitsnap.paths import SAVE_HINT, safe_target
from gitsnap.pointer import SUFFIX, dumps
from gitsnap.workspace import Workspace

if TYPE_CHECKING:
    from gitsnap.formats.base import PickleGlobal


@dataclass(frozen=True)
class SaveResult:
    path: str
    pointer: str
    snapshot_id: str
    parent: str | None
    changed: bool  # False: the checkpoint and record were already saved as-is
    tensors: int
    size: int
    objects_written: int
    bytes_written: int
    seconds: float
    # What the user should know before committing: unknown pickle globals, an allowed unsafe one.
    warnings: list[str] = field(default_factory=list)


def save(
    paths: Sequence[str | os.PathLike[str]],
    *,
    message: str | None = None,
    metrics_file: str | os.PathLike[str] | None = None,
    metrics: Sequence[str] | Mapping[str, Scalar] | None = None,
    params_file: str | os.PathLike[str] | None = None,
    params: Sequence[str] | Mapping[str, Scalar] | None = None,
    cwd: Path | None = None,
    workers: int | None = None,
    allow_unsafe_pickle: bool = False,
) -> list[SaveResult]:
    """Record a snapshot of each checkpoint.

    Its objects go into the store and a ``.snap`` pointer is written beside it.
    A checkpoint whose pickle would run code at ``torch.load`` (an ``unsafe``
    global, docs/security.md) is refused with :class:`~gitsnap.errors.UnsafePickle`
    before anything is stored, unless ``allow_unsafe_pickle``: then its pointer
    records that it was allowed. Unknown globals are saved with a warning.

    Example::

        [res] = api.save(["model.safetensors"], message="baseline", metrics={"acc": 0.91})
        print(res.snapshot_id, res.bytes_written)
    """
    from gitsnap import snapshot

    if not paths:
        raise UsageError("nothing to save", hint="git snap save PATH")
    ws = Workspace.discover(cwd)
    store = ws.store
    cache = ws.stat_cache
    new_metrics = _collect(metrics_file, metrics, ws.cwd)
    new_params = _collect(params_file, params, ws.cwd)
    with ws.lock("save"):  # one writer at a time (gitsnap.lock)
        results = []
        for user_path in paths:
            started = time.perf_counter()
            rel = ws.relpath(user_path)
            abs_path = safe_target(
                ws.root, rel, str(user_path), hint=SAVE_HINT
            )  # no .git, no way out
            if not abs_path.exists():
                raise PathError(
                    f"{user_path}: no such file",
                    hint="check the path; git snap status lists saved checkpoints",
                )
            if (
                gitio.run(
                    ["ls-files", "--error-unmatch", "--", rel], ws.root, check=False
                ).returncode
                == 0
            ):
                raise PathError(
                    f"{user_path}: is tracked by git itself; its weights would be stored twice",
                    hint=f"stop tracking it first: git rm --cached {rel}",
                )
            previous = ws.read_pointer(rel)
            started_ns = time.time_ns()
            judge = _Judge(ws.display(rel), allow_unsafe_pickle)
            ing = snapshot.ingest(abs_path, store, previous=previous, workers=workers, judge=judge)
            if previous is not None and previous.id == ing.id:
                message_ = previous.message if message is None else message
                metrics_ = new_metrics or previous.metrics
                params_ = new_params or previous.params
                parent = previous.parent
                unchanged = (message_, metrics_, params_, judge.allowed) == (
                    previous.message,
                    previous.metrics,
                    previous.params,
                    any(r.allowed_unsafe for r in previous.pickle.values()),
                ) and {r: p.globals for r, p in previous.pickle.items()} == {
                    r: {g.name: g.kind for g in found} for r, found in ing.pickle_globals.items()
                }
            else:
                message_, metrics_, params_ = message or "", new_metrics, new_params
                parent = previous.id if previous is not None else None
                unchanged = False
            if unchanged and previous is not None:
                ptr = previous
            else:
                ptr = snapshot.pointer_of(
                    ing, rel, parent=parent, message=message_, metrics=metrics_, params=params_,
                    created=_now(), tool=_tool_versions(), env=environment.current(),
                    extra=previous.extra if previous is not None else None,
                    allowed_unsafe=judge.allowed,
                )  # fmt: skip
                text = dumps(ptr).encode()
                write_atomic(ws.root / (rel + SUFFIX), text)
                journal.record(ws.git_dir, rel, text, ptr.id)  # it survives uncommitted (D19)
            ws.ensure_ignored(rel)
            cache.put(rel, ing.stat, ing.id, started_ns)  # the stat from before hashing (D19)
            results.append(
                SaveResult(
                    path=ws.display(rel),
                    pointer=ws.display(rel + SUFFIX),
                    snapshot_id=ptr.id,
                    parent=ptr.parent,
                    changed=not unchanged,
                    tensors=len(ptr.tensors),
                    size=ptr.size,
                    objects_written=ing.objects_written,
                    bytes_written=ing.bytes_written,
                    seconds=time.perf_counter() - started,
                    warnings=judge.warnings,
                )
            )
        cache.save()
        return results


class _Judge:
    """Judges a checkpoint's pickle globals before ingest stores a byte (DESIGN D16)."""

    def __init__(self, shown: str, allow: bool) -> None:
        self.shown = shown
        self.allow = allow
        self.allowed = False
        self.warnings: list[str] = []

    def __call__(self, found: Mapping[str, tuple[PickleGlobal, ...]]) -> None:
        from gitsnap import pickle_policy

        refused: list[tuple[str, list[str]]] = []
        for rel, globals_ in sorted(found.items()):
            path = self.shown if rel == "" else f"{self.shown}/{rel}"
            kinds = {g.name: g.kind for g in globals_}
            unsafe = pickle_policy.names_of(kinds, pickle_policy.UNSAFE)
            unknown = pickle_policy.names_of(kinds, pickle_policy.UNKNOWN)
            if unknown:
                self.warnings.append(
                    f"{path}: its pickle calls {', '.join(unknown)}, which gitsnap cannot judge "
                    "(not known as weights or data); inspect it before loading it with torch.load"
                )
            if unsafe:
                if self.allow:
                    self.allowed = True
                    self.warnings.append(
                        f"{path}: saved although its pickle calls {', '.join(unsafe)} when "
                        "loaded with torch.load (--allow-unsafe-pickle)"
                    )
                else:
                    refused.append((path, unsafe))
        if refused:
            path, names = refused[0]
            more = [p for p, _ in refused[1:]]
            err = pickle_policy.refusal(path, names, pickle_policy.SAVE_HINT)
            if more:
                err = type(err)(f"{err.message} (and {', '.join(more)})", hint=err.hint)
            raise err


def _tool_versions() -> dict[str, str | None]:
    return {"gitsnap": __version__, "python": platform.python_version(), "torch": _torch_version()}


def _torch_version() -> str | None:
    """torch's installed version without importing it or scanning every dist-info (~0.1 s)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return str(torch.__version__)
    import importlib.util

    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    site = Path(next(iter(spec.submodule_search_locations))).parent
    for dist in site.glob("torch-*.dist-info"):
        return dist.name[len("torch-") : -len(".dist-info")]
    return None


def _now() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = (
        datetime.fromtimestamp(int(epoch), timezone.utc) if epoch else datetime.now(timezone.utc)
    )
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _collect(
    file: str | os.PathLike[str] | None,
    pairs: Sequence[str] | Mapping[str, Scalar] | None,
    cwd: Path,
) -> dict[str, Scalar]:
    out: dict[str, Scalar] = {}
    if file is not None:
        out.update(read_file(cwd / file))
    if isinstance(pairs, Mapping):
        out.update(pairs)
    elif pairs:
        out.update(parse_pairs(pairs))
    return dict(sorted(out.items()))
