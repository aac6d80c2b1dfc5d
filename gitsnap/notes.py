"""Metrics measured after a commit, attached to it as a git note (DESIGN D6).

A commit cannot be edited once made, and evaluation usually runs later (in
CI, on another machine). git notes are git's own way to attach data to a
commit after the fact; gitsnap keeps its notes under ``refs/notes/gitsnap``
(``git snap push`` / ``fetch`` carry them to and from ``origin``) and reads
and writes them through :mod:`gitsnap.gitio` only.

Note format
    A YAML (or JSON) mapping with ``metrics`` and/or ``params``, each a
    mapping of names to scalars (nested mappings are flattened to dotted
    names)::

        metrics:
          accuracy: 0.914
          eval.loss: 0.31
        params:
          eval.batch_size: 64

    Other top-level keys are kept when gitsnap updates a note. A mapping
    with neither key (``{"accuracy": 0.914}``, as a hand-written
    ``git notes add`` might hold) is read as metrics. gitsnap writes notes
    with sorted keys, so a note's text is stable.

Eval record
    ``git snap eval`` adds an ``eval`` mapping: per checkpoint (repository
    path), the snapshot it evaluated, the command, and the names of the
    metrics that run wrote::

        eval:
          models/model.safetensors:
            command: python evaluate.py '{}'
            metrics: [accuracy, eval.loss]
            snapshot: 838e…

    A metric the record lists, for the snapshot a checkpoint has at that
    commit, reads as coming from ``eval`` rather than ``note``
    (:func:`evaluated`). Writing a metric of the same name any other way
    (``git snap metrics add``, :func:`merge`) takes it off the record.

A note belongs to a commit, so it applies to every checkpoint of that
commit: ``git snap diff`` shows a note's value in place of the pointer's
for the same name, and JSON output shows both by source.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitsnap import gitio
from gitsnap.errors import GitError, GitsnapError, NoteError
from gitsnap.metrics import Scalar, flatten
from gitsnap.pointer import safeyaml
from gitsnap.pointer.limits import MAX_NOTE_BYTES
from gitsnap.pointer.peek import NOTES_REF

REF = NOTES_REF
GIT_REMOTE = "origin"
# Where a fetch puts the git remote's notes before combining them with ours.
TRACKING = "refs/gitsnap/notes/origin"
# Both sides annotated one commit: keep ours whole, then add back their keys
# (:func:`_combine`).
MERGE_STRATEGY = "ours"
SECTIONS = ("metrics", "params")
EVAL_KEY = "eval"  # the record of which metrics ``git snap eval`` wrote (module docstring)


@dataclass(frozen=True)
class Note:
    metrics: dict[str, Scalar] = field(default_factory=dict)
    params: dict[str, Scalar] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.metrics or self.params or self.extra)


def parse(
    raw: bytes | str,
    source: str = "note",
    *,
    what: str = "the gitsnap note",
    hint: str | None = None,
) -> Note:
    """A note's text as metrics/params, bounded: notes arrive from ``origin`` (no aliases,
    at most MAX_NOTE_BYTES, MAX_DEPTH levels and MAX_METRICS names).

    ``what`` and ``hint`` word the errors for text that is not (yet) a note,
    such as the metrics an evaluation wrote (``git snap eval``).
    """
    hint = hint or (
        f"fix or replace it: git notes --ref={REF} edit <commit> "
        "(or git snap metrics add --rev <commit> ...)"
    )
    if len(raw) > MAX_NOTE_BYTES:
        raise NoteError(f"{source}: {what} is larger than {MAX_NOTE_BYTES} bytes", hint=hint)
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    data = safeyaml.load(
        text,
        source,
        what=f"{what} (YAML/JSON)",
        error=NoteError,
        hint=hint,
        max_bytes=MAX_NOTE_BYTES,
    )
    if data is None:
        return Note()
    if not isinstance(data, Mapping):
        raise NoteError(f"{source}: {what} is not a mapping", hint=hint)
    if not any(k in data for k in SECTIONS):
        return Note(metrics=flatten(data, source=source, error=NoteError, hint=hint))
    sections: dict[str, dict[str, Scalar]] = {}
    for key in SECTIONS:
        value = data.get(key) or {}
        if not isinstance(value, Mapping):
            raise NoteError(f"{source}: '{key}' in {what} is not a mapping", hint=hint)
        sections[key] = flatten(value, source=source, error=NoteError, hint=hint)
    extra = {str(k): v for k, v in data.items() if k not in SECTIONS}
    return Note(metrics=sections["metrics"], params=sections["params"], extra=extra)


def dumps(note: Note) -> bytes:
    import yaml

    data: dict[str, Any] = dict(note.extra)
    if note.metrics:
        data["metrics"] = dict(note.metrics)
    if note.params:
        data["params"] = dict(note.params)
    text = yaml.safe_dump(
        data, sort_keys=True, default_flow_style=False, allow_unicode=True, width=1 << 30
    )
    return text.encode("utf-8")


def read(root: Path, commit: str) -> Note | None:
    """The gitsnap note of a (resolved) commit, or None."""
    raw = gitio.notes_show(root, REF, commit)
    return None if raw is None else parse(raw, source=f"note on {commit[:12]}")


def read_many(root: Path, commits: Iterable[str]) -> dict[str, bytes]:
    """The raw gitsnap notes of many (resolved) commits: commit -> note text, for those that
    have one. One ``git ls-tree`` and one ``git cat-file``, however many commits; each text
    is cut past MAX_NOTE_BYTES (:func:`parse` then refuses it)."""
    if gitio.rev_or_none(root, REF) is None:
        return {}
    tree = gitio.notes_tree(root, REF)
    wanted = {c: tree[c] for c in commits if c in tree}
    blobs = gitio.cat_blobs(root, wanted.values(), max_bytes=MAX_NOTE_BYTES)
    return {c: raw for c, blob in wanted.items() if (raw := blobs.get(blob)) is not None}


def merge(note: Note | None, metrics: Mapping[str, Scalar], params: Mapping[str, Scalar]) -> Note:
    """``note`` with ``metrics`` and ``params`` added (new values win), keys sorted.

    The metrics written here no longer come from an evaluation: their names
    leave the ``eval`` record (:func:`with_eval` records them again for
    ``git snap eval``).
    """
    base = note or Note()
    return Note(
        metrics=dict(sorted({**base.metrics, **metrics}.items())),
        params=dict(sorted({**base.params, **params}.items())),
        extra=_without_evaluated(base.extra, metrics),
    )


def with_eval(note: Note, path: str, snapshot: str, command: str, metrics: Iterable[str]) -> Note:
    """``note`` (the metrics already merged in) recording that ``command`` wrote ``metrics``
    for ``snapshot`` of checkpoint ``path``; it replaces an earlier record for ``path``."""
    records = note.extra.get(EVAL_KEY)
    kept = dict(records) if isinstance(records, Mapping) else {}
    kept[path] = {"snapshot": snapshot, "command": command, "metrics": sorted(metrics)}
    extra = {**note.extra, EVAL_KEY: dict(sorted(kept.items(), key=lambda kv: str(kv[0])))}
    return Note(note.metrics, note.params, extra)


def evaluated(note: Note, path: str, snapshot: str) -> frozenset[str]:
    """The names of ``note``'s metrics that ``git snap eval`` wrote for ``snapshot`` of the
    checkpoint ``path`` (repository path): its ``eval`` record lists them for that snapshot.

    A note comes from anyone: a record that is not shaped as gitsnap writes
    it names nothing, and a listed name the note has no metric of is left out.
    """
    records = note.extra.get(EVAL_KEY)
    record = records.get(path) if isinstance(records, Mapping) else None
    if not isinstance(record, Mapping) or record.get("snapshot") != snapshot:
        return frozenset()
    names = record.get("metrics")
    if not isinstance(names, list):
        return frozenset()
    return frozenset(n for n in names if isinstance(n, str) and n in note.metrics)


def _without_evaluated(extra: Mapping[str, Any], names: Mapping[str, Scalar]) -> dict[str, Any]:
    """``extra`` with ``names`` taken off every ``eval`` record (a record left naming no
    metric is dropped, and the section with its last record)."""
    records = extra.get(EVAL_KEY)
    if not names or not isinstance(records, Mapping):
        return dict(extra)
    kept: dict[Any, Any] = {}
    for path, record in records.items():
        listed = record.get("metrics") if isinstance(record, Mapping) else None
        if not isinstance(listed, list):
            kept[path] = record  # not as gitsnap writes it: left as it is
            continue
        left = [n for n in listed if not (isinstance(n, str) and n in names)]
        if left:
            kept[path] = {**record, "metrics": left}
    rest = {k: v for k, v in extra.items() if k != EVAL_KEY}
    return {**rest, EVAL_KEY: kept} if kept else rest


def write(root: Path, commit: str, note: Note) -> None:
    """Replace the note of ``commit``; refused if it would be larger than any note gitsnap
    reads back (MAX_NOTE_BYTES)."""
    text = dumps(note)
    if len(text) > MAX_NOTE_BYTES:
        raise NoteError(
            f"the gitsnap note on {commit[:12]} would be larger than {MAX_NOTE_BYTES} bytes",
            hint="attach fewer or shorter metrics and params",
        )
    gitio.notes_add(root, REF, commit, text)


# ------------------------------------------------------------------ sync with the git remote


def push(root: Path, remote: str = GIT_REMOTE) -> str:
    """Push ``refs/notes/gitsnap`` to the git remote; merge theirs first if it moved on.

    Returns the outcome: ``none`` (no notes here), ``no-origin``, ``pushed``,
    ``up-to-date`` or ``failed: REASON``.
    """
    if gitio.rev_or_none(root, REF) is None:
        return "none"
    if not gitio.has_remote(root, remote):
        return "no-origin"
    proc = gitio.push_ref(root, remote, REF)
    if proc.returncode != 0:
        state = fetch(root, remote)
        if state.startswith("failed"):
            return state
        proc = gitio.push_ref(root, remote, REF)
        if proc.returncode != 0:
            return "failed: " + gitio.last_line(proc.stderr or proc.stdout)
    out = proc.stdout.decode(errors="replace")
    return "up-to-date" if any(line.startswith("=\t") for line in out.splitlines()) else "pushed"


def fetch(root: Path, remote: str = GIT_REMOTE) -> str:  # noqa: PLR0911 - one state each
    """Fetch the git remote's ``refs/notes/gitsnap`` and combine it with ours.

    Fast-forward when one side contains the other; otherwise ``git notes
    merge`` with :data:`MERGE_STRATEGY`, then :func:`_combine` for commits
    both sides annotated. Returns ``no-origin``, ``none``, ``fetched``,
    ``up-to-date``, ``merged`` or ``failed: REASON``.
    """
    if not gitio.has_remote(root, remote):
        return "no-origin"
    listed = gitio.ls_remote(root, remote, REF)
    if listed.returncode != 0:
        return "failed: " + gitio.last_line(listed.stderr)
    if not listed.stdout.strip():
        return "none"
    proc = gitio.fetch_ref(root, remote, REF, TRACKING)
    if proc.returncode != 0:
        return "failed: " + gitio.last_line(proc.stderr)
    theirs = gitio.rev_or_none(root, TRACKING)
    ours = gitio.rev_or_none(root, REF)
    if theirs is None:
        return "none"
    if ours is None:
        gitio.update_ref(root, REF, theirs)
        return "fetched"
    if ours == theirs or gitio.is_ancestor(root, theirs, ours):
        return "up-to-date"
    if gitio.is_ancestor(root, ours, theirs):
        gitio.update_ref(root, REF, theirs, ours)
        return "fetched"
    ours_tree, theirs_tree = gitio.notes_tree(root, REF), gitio.notes_tree(root, TRACKING)
    both = sorted(
        c for c in ours_tree.keys() & theirs_tree.keys() if ours_tree[c] != theirs_tree[c]
    )
    try:
        gitio.notes_merge(root, REF, TRACKING, MERGE_STRATEGY)
        _combine(root, {c: (ours_tree[c], theirs_tree[c]) for c in both})
    except GitError as exc:
        return f"failed: {exc.message}"
    return "merged"


def _combine(root: Path, conflicts: dict[str, tuple[str, str]]) -> None:
    """Both sides annotated these commits: keep every key, the local value winning.

    ``git notes merge -s ours`` already kept the local note whole; where both
    notes are gitsnap metric mappings, the other side's keys that the local
    note lacks are added back. A note that is not such a mapping stays as the
    merge left it.
    """
    if not conflicts:
        return
    blobs = gitio.cat_blobs(root, [b for pair in conflicts.values() for b in pair])
    for commit, (ours_blob, theirs_blob) in conflicts.items():
        ours_raw, theirs_raw = blobs.get(ours_blob), blobs.get(theirs_blob)
        if ours_raw is None or theirs_raw is None:
            continue
        try:
            mine, other = parse(ours_raw), parse(theirs_raw)
        except GitsnapError:
            continue
        combined = merge(other, mine.metrics, mine.params)
        extra = {**combined.extra, **mine.extra}
        # Each side's eval records, ours winning for a checkpoint both evaluated; theirs
        # no longer list the metrics whose values ours kept (merge took them off).
        theirs_ev, mine_ev = combined.extra.get(EVAL_KEY), mine.extra.get(EVAL_KEY)
        if isinstance(theirs_ev, Mapping) and isinstance(mine_ev, Mapping):
            both = {**theirs_ev, **mine_ev}
            extra[EVAL_KEY] = dict(sorted(both.items(), key=lambda kv: str(kv[0])))
        combined = Note(combined.metrics, combined.params, extra)
        if combined != mine:
            write(root, commit, combined)
