"""One bad checkpoint never breaks the rest: per-item errors collected into a command's result.

A command that walks many checkpoints (``status``, ``diff``, ``log``,
``checkout``) reads each inside :func:`collecting`: a pointer that does not
parse or a checkpoint whose format reader fails becomes an
:class:`ItemProblem` (its path, the error and its hint) and the walk goes on.
The CLI prints them as ``error:``/``hint:`` lines and exits 3.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from gitsnap.errors import FormatError, GitsnapError, PointerError

# What one checkpoint's bad bytes raise; anything else (git, the store, usage)
# concerns the whole command and still stops it.
ITEM_ERRORS = (PointerError, FormatError)

T = TypeVar("T")


@dataclass(frozen=True)
class ItemProblem:
    """A checkpoint a command could not handle: ``path`` as shown, the error, its fix."""

    path: str
    message: str
    hint: str


@contextmanager
def collecting(problems: list[ItemProblem], path: str) -> Iterator[None]:
    """Run one item's work; its :data:`ITEM_ERRORS` land in ``problems`` instead of raising."""
    try:
        yield
    except ITEM_ERRORS as err:
        problems.append(ItemProblem(path, err.message, err.hint))


class Listing(list[T]):
    """A command's list of results that also carries the items it could not handle.

    A plain list to existing callers (``for e in api.log(): ...``); ``problems``
    is the rest of the answer.
    """

    def __init__(self, items: Iterable[T] = (), problems: Iterable[ItemProblem] = ()) -> None:
        super().__init__(items)
        self.problems: list[ItemProblem] = list(problems)


def raise_first(problems: Iterable[ItemProblem]) -> None:
    """For a command that does not report per item yet: its first problem as an error."""
    items = list(problems)
    if items:
        first = items[0]
        more = f" (and {len(items) - 1} more)" if len(items) > 1 else ""
        said = (
            first.message
            if first.message.startswith(first.path)
            else (f"{first.path}: {first.message}")
        )
        raise GitsnapError(said + more, hint=first.hint)
