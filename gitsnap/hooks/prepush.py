"""pre-push (``push-weights``): upload what the pushed commits' snapshots need, then the notes.

Only a push that carries snapshots imports the transfer layer and dvc; the
push is stopped (exit 1) when the upload fails, so that no commit on the git
remote points at weights the weight remote lacks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gitsnap import gitio
from gitsnap.errors import GitsnapError
from gitsnap.hooks.result import HookResult, Out
from gitsnap.notes import REF as NOTES_REF
from gitsnap.problems import ItemProblem
from gitsnap.revisions import commit_or_none, history_snapshots, is_zero

if TYPE_CHECKING:
    from gitsnap.revisions import SnapshotRef
    from gitsnap.transfer import Progress, TransferResult


@dataclass(frozen=True)
class RefUpdate:
    local_ref: str
    local_sha: str
    remote_ref: str
    remote_sha: str


def parse_push_lines(stdin: bytes) -> list[RefUpdate]:
    """git's pre-push input: ``<local ref> <local sha> <remote ref> <remote sha>`` per line."""
    updates = []
    for line in stdin.decode(errors="surrogateescape").splitlines():
        parts = line.rsplit(maxsplit=3)
        if len(parts) == 4:
            updates.append(RefUpdate(*parts))
    return updates


def push_input(name: str, args: Sequence[str], stdin: bytes) -> tuple[str, str, list[RefUpdate]]:
    """(remote name, remote url, ref updates) from git's arguments and stdin, or the framework's."""
    remote_name = args[0] if args else os.environ.get("PRE_COMMIT_REMOTE_NAME", "")
    remote_url = args[1] if len(args) > 1 else os.environ.get("PRE_COMMIT_REMOTE_URL", remote_name)
    updates = parse_push_lines(stdin)
    if not updates and name == "push-weights":
        # The pre-commit framework read stdin itself and passes one ref range on:
        # FROM_REF..TO_REF, or only the local branch when the remote has none of it.
        env = os.environ
        to_ref = env.get("PRE_COMMIT_TO_REF") or env.get("PRE_COMMIT_LOCAL_BRANCH")
        if to_ref:
            from_ref = env.get("PRE_COMMIT_FROM_REF") or "0" * 40
            remote_ref = env.get("PRE_COMMIT_REMOTE_BRANCH", "")
            local_ref = env.get("PRE_COMMIT_LOCAL_BRANCH", to_ref)
            updates = [RefUpdate(local_ref, to_ref, remote_ref, from_ref)]
    return remote_name, remote_url, updates


def pushed_snapshots(
    root: Path,
    remote_name: str,
    updates: Sequence[RefUpdate],
    problems: list[ItemProblem] | None = None,
) -> list[SnapshotRef]:
    """Every snapshot (pointer version) in the pushed commits that the git remote lacks.

    The commits are ``git rev-list LOCAL --not --remotes=NAME REMOTE_SHA...``
    (git-lfs's range); a pointer version in any of them is in the diff of one
    of them against its first parent, or already in a commit the remote has.
    """
    tips, known = [], []
    for u in updates:
        if is_zero(u.local_sha):
            continue  # a deletion pushes nothing
        tip = commit_or_none(root, u.local_sha)
        if tip is None:
            continue  # a tag of a tree or blob: no snapshots
        tips.append(tip)
        if not is_zero(u.remote_sha) and commit_or_none(root, u.remote_sha):
            known.append(u.remote_sha)
    if not tips:
        return []
    rev_args = [*tips, "--not", *known]
    if remote_name:
        rev_args.append(f"--remotes={remote_name}")
    return history_snapshots(root, rev_args, problems)  # gitsnap's pointers only


def push_weights(
    root: Path,
    remote_name: str,
    remote_url: str,
    updates: Sequence[RefUpdate],
    *,
    progress: Callable[[], Progress | None] | None = None,
    hook: str = "pre-push",
) -> HookResult:
    """Upload the pushed commits' objects to the DVC remote, then the notes; exit 1 on failure."""
    out = Out()
    problems: list[ItemProblem] = []
    try:
        refs = pushed_snapshots(root, remote_name, updates, problems)
    except GitsnapError as err:
        out.error(f"cannot read the snapshots of the pushed commits: {err}", err.hint)
        return _push_stopped(hook, out)
    transfer_result = None
    if refs:
        transfer_result = _upload(root, refs, out, progress)
    for p in problems:  # the others were uploaded; these snapshots' objects are unknown
        out.error(p.message if p.message.startswith(p.path) else f"{p.path}: {p.message}", p.hint)
    if out.failed:
        return _push_stopped(hook, out)
    pushes_notes = any(u.remote_ref == NOTES_REF for u in updates)
    if updates and not pushes_notes and any(not is_zero(u.local_sha) for u in updates):
        _push_notes(root, remote_name, out)
    return HookResult(hook, 0, out.messages, transfer=transfer_result)


def _upload(
    root: Path, refs: list[SnapshotRef], out: Out, progress: Callable[[], Progress | None] | None
) -> TransferResult | None:
    from gitsnap import transfer
    from gitsnap.errors import TransferFailed
    from gitsnap.remote import open_remote
    from gitsnap.working import human_size
    from gitsnap.workspace import Workspace

    ws = Workspace.discover(root)
    paths = sorted({r.path for r in refs})
    shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
    if ws.dvc_dir is None:
        out.error(
            f"the pushed commits hold snapshots of {shown}, but this repository has no DVC "
            "project to upload their weights to",
            "git snap init --remote URL, then git push again",
        )
        return None
    try:
        remote = open_remote(ws.dvc_dir, gitio.config_get(root, "gitsnap.remote"), None)
        result = transfer.push(
            root, ws.store, remote, refs, progress=progress() if progress else None, notes=False
        )
    except TransferFailed as err:  # some objects failed: the summary says what did go up
        out.error(f"could not upload the weights of {shown} to the DVC remote: {err}", err.hint)
        return err.result
    except GitsnapError as err:
        out.error(f"could not upload the weights of {shown} to the DVC remote: {err}", err.hint)
        return None
    if result.objects_transferred:
        out.info(
            f"uploaded {result.objects_transferred} object(s) "
            f"({human_size(result.bytes_transferred)}) of {result.snapshots} snapshot(s) "
            f"to DVC remote '{result.remote}'"
            + (f"; {result.objects_skipped} already there" if result.objects_skipped else "")
        )
    return result


def _push_notes(root: Path, remote_name: str, out: Out) -> None:
    from gitsnap import notes

    state = notes.push(root, remote_name)
    if state == "none":
        return  # no metrics notes here
    if state == "pushed":
        out.info(f"pushed the metrics notes ({NOTES_REF})")
    elif state == "no-origin":
        out.warn(
            f"the metrics notes ({NOTES_REF}) were not pushed: '{remote_name}' is not a named "
            "git remote",
            f"git push {remote_name} {NOTES_REF}",
        )
    elif state.startswith("failed"):
        # The weights are up; a notes ref the server refuses must not block every push.
        out.warn(
            f"the metrics notes ({NOTES_REF}) were not pushed: {state[len('failed: ') :]}",
            "git snap push",
        )


def _push_stopped(hook: str, out: Out) -> HookResult:
    out.info(
        "push stopped, so that no commit on the git remote points at weights the weight remote "
        "lacks; fix the above and push again (git push --no-verify skips this check)"
    )
    return HookResult(hook, 1, out.messages)
