"""`git snap --help` is `man git-snap`: the shipped page must match the CLI."""

from __future__ import annotations

from gitsnap.cli import manpage


def test_man_page_is_current() -> None:
    assert manpage.PAGE.read_text(encoding="utf-8") == manpage.render(), (
        "man/git-snap.1 is stale: run python -m gitsnap.cli.manpage"
    )
