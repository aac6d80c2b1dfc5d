"""``git snap eval``: run an evaluation command on snapshots, attach its metrics as git notes.

Each revision's snapshot is restored byte-exactly (from the store, fetched
from the DVC remote if missing, every object verified) into a temporary
folder below ``.git`` -- never the work tree -- and the user's command runs
once per snapshot with:

``GITSNAP_CHECKPOINT``
    the restored checkpoint (a file, or a folder for a folder snapshot);
    ``{}`` in the command's words is replaced by the same path.
``GITSNAP_METRICS``
    a path the command may write its metrics to, as a JSON/YAML mapping
    (flat, or with ``metrics:`` / ``params:``, like a note).
``GITSNAP_REV``, ``GITSNAP_COMMIT``, ``GITSNAP_SNAPSHOT``, ``GITSNAP_PATH``
    what is being evaluated: the revision as given, its commit, the
    snapshot id and the checkpoint's repository path.

Metrics come from the ``GITSNAP_METRICS`` file if the command wrote one,
else from a JSON object on the last line of its output. They are merged
into the commit's gitsnap note (DESIGN D6), where ``diff``, ``log``,
``compare`` and the gates read them; the note's ``eval`` section records
which command produced which metrics for which snapshot, so their source
reads as ``eval`` (:func:`gitsnap.notes.evaluated`). A snapshot is
immutable: the same command on the same revision sees the same bytes,
whatever the work tree holds since.

A revision whose restore, command or metrics fail is reported with its
error and hint; the others still run.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gitsnap import revisions
from gitsnap.errors import EvalFailed, GitsnapError, NoteError, PathError, UsageError
from gitsnap.fsutil import Scratch, temp_area
from gitsnap.metrics import Scalar, flatten
from gitsnap.pointer.limits import MAX_NOTE_BYTES
from gitsnap.workspace import Workspace

# The tail of a command's output kept to find its last line (its output can be huge); a
# longer last line could not be attached as a note anyway.
OUTPUT_TAIL = MAX_NOTE_BYTES
PLACEHOLDER = "{}"


@dataclass(frozen=True)
class EvalRun:
    """One revision evaluated: its snapshot, the metrics read, or what failed and the fix."""

    rev: str
    commit: str | None
    path: str
    snapshot: str | None
    metrics: dict[str, Scalar] = field(default_factory=dict)
    params: dict[str, Scalar] = field(default_factory=dict)
    returncode: int | None = None
    seconds: float = 0.0
    noted: bool = False  # the metrics were attached to the commit's note
    error: str | None = None
    hint: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class EvalResult:
    command: list[str]
    runs: list[EvalRun]

    @property
    def failed(self) -> list[EvalRun]:
        return [r for r in self.runs if not r.ok]


def eval_snapshots(
    revs: Sequence[str],
    command: Sequence[str],
    *,
    path: str | os.PathLike[str] | None = None,
    note: bool = True,
    cwd: Path | None = None,
    output: Callable[[bytes], None] | None = None,
) -> EvalResult:
    """Run ``command`` on the snapshot of ``path`` at each of ``revs`` (default ``HEAD``).

    ``output`` receives the command's standard output as it comes (the CLI
    forwards it to stderr); its standard error is the caller's. With
    ``note`` the metrics are attached to each commit's gitsnap note.

    Example::

        res = api.eval_snapshots(["HEAD~1", "HEAD"], ["python", "evaluate.py", "{}"])
        for run in res.runs:
            print(run.rev, run.metrics or run.error)
    """
    if not command:
        raise UsageError(
            "no command to run",
            hint="git snap eval [REV...] [-- PATH] -- CMD ARGS... (e.g. -- python eval.py {})",
        )
    ws = Workspace.discover(cwd)
    wanted = ws.relpath(path) if path is not None else None
    runs = [
        _one(ws, rev, wanted, list(command), note=note, output=output) for rev in (revs or ["HEAD"])
    ]
    return EvalResult(list(command), runs)


def _one(
    ws: Workspace,
    rev: str,
    wanted: str | None,
    command: list[str],
    *,
    note: bool,
    output: Callable[[bytes], None] | None,
) -> EvalRun:
    started = time.perf_counter()
    rel = wanted or ""
    commit: str | None = None
    snapshot: str | None = None
    code: int | None = None
    try:
        rel, commit, snapshot = _which(ws, rev, wanted)
        with Scratch(temp_area(ws.git_dir)) as scratch:
            area = _fresh_dir(scratch)
            try:
                checkpoint = _materialize(ws, rev, rel, area / "checkpoint")
                metrics_file = area / "metrics.json"
                env = {
                    **os.environ,
                    "GITSNAP_CHECKPOINT": str(checkpoint),
                    "GITSNAP_METRICS": str(metrics_file),
                    "GITSNAP_REV": rev,
                    "GITSNAP_COMMIT": commit,
                    "GITSNAP_SNAPSHOT": snapshot,
                    "GITSNAP_PATH": rel,
                }
                argv = [w.replace(PLACEHOLDER, str(checkpoint)) for w in command]
                code, last = _run(argv, env, ws.cwd, output)
                if code != 0:
                    how = (
                        f"was killed by signal {-code}"
                        if code < 0
                        else f"exited with status {code}"
                    )
                    raise EvalFailed(
                        f"{shlex.join(command)} {how}",
                        hint="its output above says why; the other revisions still ran",
                    )
                metrics, params = _metrics(metrics_file, last)
            finally:
                _remove_tree(area)
        if note:
            _attach(ws, commit, rel, snapshot, command=command, metrics=metrics, params=params)
        return EvalRun(
            rev, commit, ws.display(rel), snapshot, metrics, params, code,
            time.perf_counter() - started, noted=note,
        )  # fmt: skip
    except GitsnapError as err:
        return EvalRun(
            rev, commit, ws.display(rel) if rel else "", snapshot, returncode=code,
            seconds=time.perf_counter() - started, error=f"{rev}: {err.message}", hint=err.hint,
        )  # fmt: skip


def _which(ws: Workspace, rev: str, wanted: str | None) -> tuple[str, str, str]:
    """(checkpoint path, commit, snapshot id) that ``rev`` names, or a clear error."""
    from gitsnap.commands.open import resolve

    model = revisions.model_ref(ws, rev)
    if wanted is None and model is None:
        commit = revisions.commit_or_none(ws.root, rev)
        if commit is None:
            raise UsageError(
                "unknown revision",
                hint="give a commit, branch or tag (git log), or NAME@VERSION / NAME#STAGE",
            )
        paths = sorted(revisions.blobs_at(ws, commit))
        if len(paths) != 1:
            listed = ", ".join(ws.display(p) for p in paths[:5]) or "none"
            raise UsageError(
                f"{len(paths)} checkpoints at this revision ({listed}); which one?",
                hint="name it: git snap eval REV... -- PATH -- CMD...",
            )
        wanted = paths[0]
    rel, commit_or_none, ptr = resolve(ws, ws.root / wanted if wanted else None, rev)
    if commit_or_none is None:  # resolve gives None only for the work tree (rev None)
        raise UsageError("not a commit", hint="give a commit, branch or tag")
    return rel, commit_or_none, ptr.id


def _fresh_dir(scratch: Scratch) -> Path:
    """A new, empty folder for one run: in the sweepable temp area below ``.git`` when there
    is one (a killed run's folder is removed by the next command), else the system's."""
    import tempfile

    if scratch.area is not None:
        area = scratch.path(scratch.area / "eval")
        area.mkdir()
        return area
    return Path(tempfile.mkdtemp(prefix="gitsnap-eval-"))


def _materialize(ws: Workspace, rev: str, rel: str, into: Path) -> Path:
    """The snapshot of ``rel`` at ``rev`` restored byte-exactly below ``into``; its path."""
    from gitsnap.commands.checkout import restore_selected, select

    selected = [s for s in select(ws, rev, [rel], revisions.Parser()) if s.path == rel]
    if not selected:
        raise PathError(
            f"no snapshot of {ws.display(rel)} at this revision",
            hint=f"git snap log {ws.display(rel)} lists the commits that have one",
        )
    done = restore_selected(ws, selected, to=into)
    if done.problems:
        problem = done.problems[0]
        raise EvalFailed(problem.message, hint=problem.hint)
    [entry] = done
    return Path(entry.target)


def _run(
    argv: list[str], env: dict[str, str], cwd: Path, output: Callable[[bytes], None] | None
) -> tuple[int, bytes | None]:
    """Run ``argv``; (exit status, the last non-empty line of its standard output).

    The line is None when it is longer than :data:`OUTPUT_TAIL` (only the tail is kept).
    """
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE)
    except OSError as err:
        raise EvalFailed(
            f"cannot run {argv[0]!r}: {err.strerror or err}",
            hint="check the command after the last --; it runs from the current folder",
        ) from None
    assert proc.stdout is not None
    tail = bytearray()
    dropped = False
    fd = proc.stdout.fileno()
    with proc.stdout:
        for chunk in iter(lambda: os.read(fd, 1 << 16), b""):
            if output is not None:
                output(chunk)
            tail += chunk
            if len(tail) > 2 * OUTPUT_TAIL:  # amortised: cut once per OUTPUT_TAIL bytes
                del tail[:-OUTPUT_TAIL]
                dropped = True
    code = proc.wait()
    if len(tail) > OUTPUT_TAIL:
        del tail[:-OUTPUT_TAIL]
        dropped = True
    text = bytes(tail).rstrip()
    cut = text.rfind(b"\n")
    if cut < 0 and dropped:  # the last line began before the tail kept
        return code, None
    return code, text[cut + 1 :].strip()


def _metrics(metrics_file: Path, last_line: bytes | None) -> tuple[dict[str, Scalar], ...]:
    """The metrics (and params) the command wrote: the GITSNAP_METRICS file, else its last line.

    Both end in a note, so both are held to a note's bounds (size, depth, names).
    """
    import json

    from gitsnap import notes

    hint = (
        'write a JSON mapping such as {"accuracy": 0.91} to $GITSNAP_METRICS, '
        "or print one as the command's last line"
    )
    if metrics_file.is_file():
        if metrics_file.stat().st_size > MAX_NOTE_BYTES:
            raise EvalFailed(
                f"the metrics file ($GITSNAP_METRICS) is larger than {MAX_NOTE_BYTES} bytes",
                hint=hint,
            )
        try:
            parsed = notes.parse(
                metrics_file.read_bytes(),
                source="$GITSNAP_METRICS",
                what="the metrics file",
                hint=hint,
            )
        except NoteError as err:
            raise EvalFailed(err.message, hint=hint) from None
        if not parsed.metrics and not parsed.params:
            raise EvalFailed("the metrics file ($GITSNAP_METRICS) is empty", hint=hint)
        return parsed.metrics, parsed.params
    if last_line is None:
        raise EvalFailed(
            f"the last line of the command's output is longer than {OUTPUT_TAIL} bytes", hint=hint
        )
    if last_line.startswith(b"{"):
        try:
            data = json.loads(last_line)
        except (ValueError, RecursionError):
            data = None
        if isinstance(data, dict) and data:
            try:
                return flatten(data, source="the last output line", hint=hint), {}
            except GitsnapError as err:
                raise EvalFailed(err.message, hint=hint) from None
    raise EvalFailed("the command reported no metrics", hint=hint)


def _attach(
    ws: Workspace,
    commit: str,
    rel: str,
    snapshot: str,
    *,
    command: list[str],
    metrics: dict[str, Scalar],
    params: dict[str, Scalar],
) -> None:
    """Merge the metrics into the commit's note and record their source under ``eval``."""
    from gitsnap import notes

    merged = notes.merge(notes.read(ws.root, commit), metrics, params)
    noted = notes.with_eval(merged, rel, snapshot, shlex.join(command), metrics)
    notes.write(ws.root, commit, noted)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
