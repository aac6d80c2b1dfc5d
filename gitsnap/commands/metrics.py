"""``git snap metrics add`` / ``show``: metrics measured after a commit, as a git note on it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gitsnap import revisions
from gitsnap.errors import PathError, UsageError
from gitsnap.metrics import MetricChange, Scalar, parse_pairs
from gitsnap.workspace import Workspace


@dataclass(frozen=True)
class MetricsNoteResult:
    """The gitsnap note of one commit after ``metrics add`` (``added``: the names just written)."""

    rev: str
    commit: str
    metrics: dict[str, Scalar]
    params: dict[str, Scalar]
    added: list[str]


@dataclass(frozen=True)
class MetricsCheckpoint:
    """One checkpoint's metrics and params at a commit, after the note is merged in."""

    path: str
    snapshot_id: str
    metrics: list[MetricChange]  # only the "after" side set: value + sources
    params: list[MetricChange]


@dataclass(frozen=True)
class MetricsShowResult:
    rev: str
    commit: str
    note: dict[str, dict[str, Scalar]]  # {"metrics": {...}, "params": {...}} ({} if no note)
    checkpoints: list[MetricsCheckpoint]


def metrics_add(
    items: Sequence[str],
    *,
    rev: str = "HEAD",
    params: Sequence[str] = (),
    cwd: Path | None = None,
) -> MetricsNoteResult:
    """Attach metrics measured after the commit as a git note on ``rev`` (merged into its note).

    Each item is ``key=value`` or a JSON/YAML file; a file whose top level
    has ``metrics:`` / ``params:`` fills both. ``params`` are ``key=value``.

    Example::

        api.metrics_add(["eval/results.json"], rev="HEAD")
        api.metrics_add(["acc=0.914", "f1=0.88"])
    """
    from gitsnap import notes

    if not items and not params:
        raise UsageError("nothing to add", hint="git snap metrics add (FILE | key=value...)")
    ws = Workspace.discover(cwd)
    new_metrics: dict[str, Scalar] = {}
    new_params: dict[str, Scalar] = {}
    for item in items:
        if "=" in item and not (ws.cwd / item).exists():
            new_metrics.update(parse_pairs([item]))
            continue
        path = ws.cwd / item
        if not path.exists():
            raise PathError(
                f"{item}: no such file", hint="give a JSON/YAML file or key=value pairs"
            )
        parsed = notes.parse(path.read_bytes(), source=item)
        new_metrics.update(parsed.metrics)
        new_params.update(parsed.params)
    new_params.update(parse_pairs(params))
    commit = revisions.commit_of(ws, rev)
    note = notes.merge(notes.read(ws.root, commit), new_metrics, new_params)
    notes.write(ws.root, commit, note)
    return MetricsNoteResult(
        rev, commit, note.metrics, note.params, sorted({*new_metrics, *new_params})
    )


def metrics_show(rev: str = "HEAD", cwd: Path | None = None) -> MetricsShowResult:
    """The metrics and params of ``rev``: each checkpoint's pointer, merged with the commit's note.

    Example::

        for ck in api.metrics_show("HEAD").checkpoints:
            print(ck.path, {m.name: m.after for m in ck.metrics})
    """
    from gitsnap import metrics as m
    from gitsnap import notes

    ws = Workspace.discover(cwd)
    commit = revisions.commit_of(ws, rev)
    note = notes.read(ws.root, commit) or notes.Note()
    out = [
        MetricsCheckpoint(
            ws.display(rel), ptr.id,
            m.compare(
                {}, {}, ptr.metrics, note.metrics,
                evaluated_after=notes.evaluated(note, rel, ptr.id),
            ),
            m.compare({}, {}, ptr.params, note.params),
        )
        for rel, ptr in revisions.pointers_at(ws, commit, rev).items()
    ]  # fmt: skip
    return MetricsShowResult(rev, commit, {"metrics": note.metrics, "params": note.params}, out)
