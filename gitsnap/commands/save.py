"""``git snap save``: record a snapshot of each checkpoint."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from gitsnap import __version__, gitio
from gitsnap.errors import PathError, UsageError
from gitsnap.fsutil import write_atomic
from gitsnap.metrics import Scalar, parse_pairs, read_file
from gitsnap.paths import SAVE_HINT, safe_target
from gitsnap.pointer import SUFFIX, dumps
from gitsnap.workspace import Workspace


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
) -> list[SaveResult]:
    """Record a snapshot of each checkpoint.

    Its objects go into the store and a ``.snap`` pointer is written beside it.

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
    results = []
    for user_path in paths:
        started = time.perf_counter()
        rel = ws.relpath(user_path)
        abs_path = safe_target(ws.root, rel, str(user_path), hint=SAVE_HINT)  # no .git, no way out
        if not abs_path.exists():
            raise PathError(
                f"{user_path}: no such file",
                hint="check the path; git snap status lists saved checkpoints",
            )
        if (
            gitio.run(["ls-files", "--error-unmatch", "--", rel], ws.root, check=False).returncode
            == 0
        ):
            raise PathError(
                f"{user_path}: is tracked by git itself; its weights would be stored twice",
                hint=f"stop tracking it first: git rm --cached {rel}",
            )
        previous = ws.read_pointer(rel)
        started_ns = time.time_ns()
        ing = snapshot.ingest(abs_path, store, previous=previous, workers=workers)
        if previous is not None and previous.id == ing.id:
            message_ = previous.message if message is None else message
            metrics_ = new_metrics or previous.metrics
            params_ = new_params or previous.params
            parent = previous.parent
            unchanged = (message_, metrics_, params_) == (
                previous.message,
                previous.metrics,
                previous.params,
            )
        else:
            message_, metrics_, params_ = message or "", new_metrics, new_params
            parent = previous.id if previous is not None else None
            unchanged = False
        if unchanged and previous is not None:
            ptr = previous
        else:
            ptr = snapshot.pointer_of(
                ing, rel, parent=parent, message=message_, metrics=metrics_, params=params_,
                created=_now(), tool=_tool_versions(),
                extra=previous.extra if previous is not None else None,
            )  # fmt: skip
            write_atomic(ws.root / (rel + SUFFIX), dumps(ptr).encode())
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
            )
        )
    cache.save()
    return results


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
