"""One exception tree. Every error carries a message and a ``hint`` with the fix.

The CLI funnel (:mod:`gitsnap.cli.funnel`) maps these to exit codes: a
:class:`NotAGitRepository` is 128 (as git), a :class:`UsageError` is 2, every
other :class:`GitsnapError` is 3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the summary type only: errors imports nothing of gitsnap at run time
    from gitsnap.transfer import TransferResult


# Re-saving stores a checkpoint's objects again, but also records whatever is on disk: a
# checkpoint left behind by a reset, stash or rebase would become the pointer's snapshot.
RESAVE = (
    "re-save the checkpoint only if the one on disk is still that snapshot "
    "(git snap status lists it clean): git snap save PATH"
)


class GitsnapError(Exception):
    """Base class: ``str(err)`` is the message, ``err.hint`` the fix."""

    exit_code = 3
    default_hint = ""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def __str__(self) -> str:
        return self.message


class UsageError(GitsnapError):
    """The command line asks for something that makes no sense."""

    exit_code = 2


class NotAGitRepository(GitsnapError):
    exit_code = 128
    default_hint = "run gitsnap inside a git working tree (git init, or cd into your repository)"


class NotInitialized(GitsnapError):
    default_hint = "run: git snap init"


class GitError(GitsnapError):
    """A git command failed."""


class PathError(GitsnapError):
    """A path does not exist, is not a checkpoint, or lies outside the repository."""


class PointerError(GitsnapError):
    """A ``.snap`` pointer file is malformed, unsupported or unsafe."""

    default_hint = (
        "restore the pointer from git (git checkout -- PATH.snap) "
        "or re-create it with git snap save"
    )


class PointerConflict(PointerError):
    """A ``.snap`` pointer is in a merge conflict: a side must be chosen before it is used."""

    default_hint = "choose a side: git snap resolve PATH --ours | --theirs | --base"


class PickleError(Exception):
    """A pickle's opcode stream is malformed or exceeds a bound (control flow: the format
    readers turn it into a :class:`FormatError` that names the file)."""


class NotCanonical(Exception):
    """Pointer text the fast reader is not sure to read as YAML does: use the YAML reader.

    Not a :class:`GitsnapError`: it never leaves :func:`gitsnap.pointer.loads`.
    """


class FormatError(GitsnapError):
    """A checkpoint file is malformed (e.g. a truncated safetensors header)."""


class ArchiveError(FormatError):
    """A zip archive (PyTorch checkpoint, ``.npz``) whose structure is not what it claims."""

    default_hint = "the file may be truncated or still being written; write it again"


class UnsafePickle(GitsnapError):
    """A checkpoint whose pickle would run code when loaded with ``torch.load``."""


class Busy(GitsnapError):
    """Another gitsnap process holds the store's lock (:mod:`gitsnap.lock`) past the timeout."""

    default_hint = "wait for the other gitsnap command to finish, then run this one again"


class ObjectError(GitsnapError):
    """Base for problems with stored objects."""


class ObjectMissing(ObjectError):
    default_hint = f"fetch it from the remote (git snap fetch), or {RESAVE}"


class ObjectCorrupt(ObjectError):
    default_hint = (
        f"the stored copy is damaged; delete it and fetch it again (git snap fetch), or {RESAVE}"
    )


class PackMemberCorrupt(ObjectCorrupt):
    """An object inside a pack on a remote is damaged: ``pack`` names the pack."""

    def __init__(self, message: str, hint: str | None = None, *, pack: str) -> None:
        super().__init__(message, hint)
        self.pack = pack


class DirtyCheckpoint(GitsnapError):
    """Refusing to overwrite a checkpoint whose changes are not saved."""

    default_hint = "save it first (git snap save PATH) or pass --force to discard its changes"


class RemoteError(GitsnapError):
    """A DVC remote is missing, unreachable, or misconfigured."""


class DvcConfigError(GitsnapError):
    """A DVC config file (system, global, .dvc/config, config.local) cannot be used."""


class MissingDependency(GitsnapError):
    """An optional package a feature needs is not installed (e.g. the ``torch`` extra)."""


class ConcurrentChange(GitsnapError):
    """A file changed while gitsnap was reading it."""

    default_hint = "wait until the file is no longer being written, then run the command again"


class DiskFull(GitsnapError):
    """A write failed because the disk (or the user's quota) is full."""

    default_hint = "free some space (df -h shows which disk is full), then run the command again"


class StorageError(GitsnapError):
    """gc / du / fsck cannot proceed safely."""


class NoteError(GitsnapError):
    """A gitsnap note is not a mapping of metrics/params."""


class EvalFailed(GitsnapError):
    """``git snap eval``: one revision's restore, command or metrics failed (the others run)."""


class RegistryError(GitsnapError):
    """The registry refuses: unknown model, taken version, stage not allowed, ..."""


class UnknownModel(RegistryError):
    pass


class VersionExists(RegistryError):
    pass


class StageNotAllowed(RegistryError):
    pass


class TransferFailed(ObjectError):
    """Some objects of a push or fetch failed; ``result`` summarises the whole transfer.

    Raised after every other object was transferred, so the summary says what did arrive.
    """

    result: TransferResult

    def __init__(self, result: TransferResult, message: str, hint: str) -> None:
        super().__init__(message, hint)
        self.result = result


class TransferCorrupt(TransferFailed, ObjectCorrupt):
    """Some objects were corrupt (on the remote, or the local copies being pushed)."""


class TransferMissing(TransferFailed, ObjectMissing):
    """Some objects were in neither the local store nor the remote."""
