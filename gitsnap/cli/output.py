"""Writing a command's value: text or JSON on stdout, progress on a terminal's stderr.

Shared by the fast paths and the typer commands; imports nothing heavy until
something is rendered.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from gitsnap.problems import ItemProblem
    from gitsnap.render.text import TransferProgress


def echo(text: str) -> None:
    """``text`` and a newline on stdout; nothing for an empty text."""
    if text:
        sys.stdout.write(text + "\n")


def emit_json(value: Any) -> None:
    """A command's result as the stable JSON of docs/json-output.md."""
    from gitsnap.render import json as render_json

    echo(render_json.dumps(value))


def progress(label: str) -> TransferProgress | None:
    """A progress line on stderr when it is a terminal; nothing otherwise."""
    if not sys.stderr.isatty():
        return None
    from gitsnap.render import text

    return text.TransferProgress(sys.stderr, label)


def local_status(paths: list[Path], json_: bool) -> int:
    """``git snap status [PATH...] [--json]`` against the local store."""
    from gitsnap import api
    from gitsnap.render import text

    result = api.status(paths)
    emit_json(result) if json_ else echo(text.status(result))
    return report_problems(result.problems)


def report_problems(problems: Sequence[ItemProblem]) -> int:
    """Checkpoints a command could not handle, on stderr; the exit code (3 if any, else 0)."""
    if not problems:
        return 0
    from gitsnap.render import text

    sys.stderr.write(text.problems(problems) + "\n")
    return 3
