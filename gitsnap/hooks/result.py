"""What a hook run returns (:class:`HookResult`) and the one list of hook names.

Below :mod:`.dispatch` and every hook module: the hooks build a result, the
dispatcher picks a hook by name, the installer writes one shim per name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gitsnap.transfer import TransferResult

# The one list of git hooks gitsnap answers (and installs shims for, :mod:`.install`).
GIT_HOOKS = (
    "pre-commit",
    "pre-push",
    "post-checkout",
    "post-merge",
    "post-commit",  # git cherry-pick / revert / a merge concluded by git commit
    "post-rewrite",  # git rebase, git commit --amend
)
# The framework's entry points: they never chain a .legacy hook (the
# framework chains its own) and read the framework's PRE_COMMIT_* variables.
CHECKS = ("check-pointers", "no-raw-weights", "push-weights", "restore")
NAMES = GIT_HOOKS + CHECKS


@dataclass(frozen=True)
class Message:
    level: str  # "error", "warning" or "info"
    text: str
    hint: str = ""


@dataclass(frozen=True)
class HookResult:
    """What one hook run did. ``exit_code`` is what the hook returns to git."""

    hook: str
    exit_code: int
    messages: list[Message] = field(default_factory=list)
    legacy_exit: int | None = None  # the chained <hook>.legacy's exit code; None: none ran
    restored: list[str] = field(default_factory=list)  # restore: checkpoints rewritten
    # restore: checkpoints left alone (unsaved changes, missing objects)
    kept: list[str] = field(default_factory=list)
    transfer: TransferResult | None = None  # pre-push: the upload

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class Out:
    """Collects messages; ``failed`` once an error is added."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def error(self, text: str, hint: str = "") -> None:
        self.messages.append(Message("error", text, hint))

    def warn(self, text: str, hint: str = "") -> None:
        self.messages.append(Message("warning", text, hint))

    def info(self, text: str, hint: str = "") -> None:
        self.messages.append(Message("info", text, hint))

    @property
    def failed(self) -> bool:
        return any(m.level == "error" for m in self.messages)
