"""One command line, split once: the words before the first ``--``, the words after it.

Every route (hooks, the fast paths, the typer app) reads the command line
from an :class:`Invocation`; nothing re-reads ``sys.argv``. typer (click)
drops a ``--`` and mixes what follows into the positional arguments, so it
only ever sees :attr:`Invocation.args`; a command that gives ``--`` a meaning
(``diff REV -- PATH``, ``checkout REV -- PATH``) reads :attr:`Invocation.rest`,
which keeps any later ``--`` verbatim (``eval ... -- CMD``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

TRACEBACK_ENV = "GITSNAP_TRACEBACK"
TRACEBACK_FLAG = "--traceback"


@dataclass(frozen=True)
class Invocation:
    """``git snap ARGS... [-- REST...]``."""

    args: tuple[str, ...]  # before the first "--", without the global --traceback
    rest: tuple[str, ...] | None  # after the first "--"; None when there is none
    traceback: bool  # --traceback or GITSNAP_TRACEBACK: show the traceback of any error

    @classmethod
    def parse(cls, argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> Invocation:
        words = list(argv)
        rest: tuple[str, ...] | None = None
        if "--" in words:
            cut = words.index("--")
            words, rest = words[:cut], tuple(words[cut + 1 :])
        # --traceback is a global option: it counts only before the command's name,
        # where it means what GITSNAP_TRACEBACK=1 means.
        flag = False
        for i, word in enumerate(words):
            if not word.startswith("-"):
                break
            if word == TRACEBACK_FLAG:
                del words[i]
                flag = True
                break
        return cls(tuple(words), rest, flag or env_flag(environ.get(TRACEBACK_ENV)))

    @property
    def command(self) -> str | None:
        """The command's name (the first word), or None for ``git snap`` / ``git snap -h``."""
        return self.args[0] if self.args and not self.args[0].startswith("-") else None

    @property
    def words(self) -> list[str]:
        """The command line as given (``--`` and what follows it included), minus --traceback."""
        return [*self.args, *(() if self.rest is None else ("--", *self.rest))]


def env_flag(value: str | None) -> bool:
    """A boolean environment switch: set and neither empty nor ``0``."""
    return value is not None and value.strip() not in ("", "0")
