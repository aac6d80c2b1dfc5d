"""Render ``git-snap(1)`` from the CLI itself, so the man page never drifts from it.

git turns ``git snap --help`` into ``man git-snap``; the wheel ships the page
at ``share/man/man1/git-snap.1`` (man finds ``<prefix>/share/man`` from
``<prefix>/bin`` on PATH). Regenerate with ``python -m gitsnap.cli.manpage``;
a test fails when the committed page is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

PAGE = Path(__file__).resolve().parents[2] / "man" / "git-snap.1"


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace("-", "\\-").replace("'", "\\(aq")


def render() -> str:
    import typer

    from gitsnap import __version__
    from gitsnap.cli.commands import app

    group: Any = typer.main.get_command(app)
    out = [
        f'.TH GIT\\-SNAP 1 "" "gitsnap {__version__}" "gitsnap manual"',
        ".SH NAME",
        "git\\-snap \\- " + _esc(group.help or ""),
        ".SH SYNOPSIS",
        ".B git snap",
        ".I COMMAND",
        "[\\fIOPTIONS\\fR]",
        ".SH COMMANDS",
    ]
    ctx = typer.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        usage = " ".join(cmd.collect_usage_pieces(ctx))
        out += [".TP", f"\\fBgit snap {name}\\fR {_esc(usage)}", _esc(cmd.help or "")]
        for param in cmd.params:
            if getattr(param, "hidden", False) or param.param_type_name != "option":
                continue
            flags = ", ".join(param.opts)
            out += [
                ".RS",
                ".TP",
                f"\\fB{_esc(flags)}\\fR",
                _esc(getattr(param, "help", "") or ""),
                ".RE",
            ]
    out += [
        ".SH EXIT STATUS",
        "0 ok; 1 differences found or a check failed (only where asked); 2 usage error;",
        "3 a gitsnap error (an error: line and a hint: line); 128 not in a git repository;",
        "130 interrupted; 70 an internal error (a bug in gitsnap).",
        ".SH ENVIRONMENT",
        ".TP",
        ".B GITSNAP_TRACEBACK",
        "Set to 1 to print the traceback of any error before its message, in commands and",
        "in the hooks git runs; the same as \\fBgit snap \\-\\-traceback\\fR \\fICOMMAND\\fR.",
        ".SH SEE ALSO",
        "README.md and docs/ in the gitsnap source; \\fBgit snap \\-h\\fR.",
    ]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    PAGE.parent.mkdir(exist_ok=True)
    PAGE.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {PAGE}\n")
