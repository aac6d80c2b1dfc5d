"""The hand-written ``git snap diff`` parser (the fast path) reads arguments exactly as typer does.

A property over generated argument lists: whatever :func:`parse_fast`
accepts, typer parses to the same parameters (and does not reject); and every
plainly well-formed list is accepted, so the fast path is really taken.
Arguments are the words before ``--`` (the command line is split there once,
before either parser sees it).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import typer.main
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gitsnap.cli.commands import app
from gitsnap.cli.diff import DiffFormat, DiffOptions, parse_fast, split_revisions
from gitsnap.errors import UsageError

_GROUP: Any = typer.main.get_command(app)


def typer_parse(argv: list[str]) -> DiffOptions | None:
    """What typer passes to the diff command for ``git snap diff ARGV``; None: a usage error."""
    ctx = _GROUP.make_context("git snap", ["diff", *argv])
    sub = _GROUP.get_command(ctx, "diff")
    try:
        params = sub.make_context("diff", list(argv), parent=ctx).params
    except typer.TyperException:  # click's usage errors
        return None
    params.pop("ctx", None)
    params["args"] = list(params["args"] or [])
    params["fail_on"] = list(params["fail_on"] or [])
    params["fmt"] = DiffFormat(params["fmt"])
    return DiffOptions(**params)


OPTIONS = [
    "--values",
    "--json",
    "--all",
    "--exit-code",
    "--format",
    "--top",
    "--depth",
    "--fail-on",
]
VALUES = ["table", "json", "markdown", "yaml", "", "0", "1", "07", "10", "-1", "x", "²", "٣"]
VALUES += ["accuracy < -0.01", "loss > 5%", " 3", "3 "]
REVISIONS = ["HEAD", "HEAD~1", "main", "v1.0", "a:b", "models/m.safetensors", "café"]
ODD = ["-", "-h", "--help", "--valeus", "--for", "-x", "--top=", "--json=1", "--values=no", "-1"]

word = st.one_of(
    st.sampled_from(OPTIONS + VALUES + REVISIONS + ODD),
    st.builds(lambda o, v: f"{o}={v}", st.sampled_from(OPTIONS), st.sampled_from(VALUES)),
    st.text(max_size=6).filter(lambda w: w != "--"),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(word, max_size=8))
@example(["--top", "3", "--depth=2", "HEAD"])
@example(["--fail-on", "accuracy < -0.01", "--fail-on=loss > 5%", "HEAD~2"])
def test_what_the_fast_parser_accepts_typer_parses_the_same(argv: list[str]) -> None:
    fast = parse_fast(argv)
    if fast is not None:
        assert fast == typer_parse(argv)


# Well-formed lists: options with good values, and revisions, in any order.
good_value = {
    "--format": st.sampled_from([f.value for f in DiffFormat]),
    "--top": st.integers(1, 999).map(str),
    "--depth": st.integers(1, 9).map(str),
    "--fail-on": st.sampled_from(["accuracy < 0.9", "loss > 5%", "f1 < -0.01"]),
}
good_word = st.one_of(
    st.sampled_from(["--values", "--json", "--all", "--exit-code"]).map(lambda o: [o]),
    st.sampled_from(REVISIONS).map(lambda r: [r]),
    st.sampled_from(sorted(good_value)).flatmap(
        lambda o: good_value[o].flatmap(lambda v: st.sampled_from([[o, v], [f"{o}={v}"]]))
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(good_word, max_size=6).map(lambda ws: [w for group in ws for w in group]))
def test_well_formed_arguments_take_the_fast_path(argv: list[str]) -> None:
    fast = parse_fast(argv)
    assert fast is not None
    assert fast == typer_parse(argv)


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["-h"], ["--format", "yaml"], ["--format"], ["--top", "0"], ["--top", "x"],
     ["--top", "-1"], ["--depth", "²"], ["--json=1"], ["--valeus"], ["-"], ["--fail-on", "-x < 1"]],
)  # fmt: skip
def test_anything_else_is_left_to_typer(argv: list[str]) -> None:
    assert parse_fast(argv) is None


def test_the_options_compared_are_the_commands_parameters() -> None:
    # A new diff option must be added to DiffOptions (and so to the property) too.
    fields = {f.name for f in dataclasses.fields(DiffOptions)}
    sub = _GROUP.get_command(_GROUP.make_context("git snap", ["diff"]), "diff")
    assert {p.name for p in sub.params} - {"ctx"} == fields


@pytest.mark.parametrize(
    ("argv", "rest", "expected"),
    [
        # a REV:PATH word makes every word before -- one side, a bare one a work-tree path
        (["HEAD:a", "b"], None, (["HEAD:a", "b"], [])),
        (["b", "HEAD:a"], None, (["b", "HEAD:a"], [])),
        (["HEAD~1:a", "HEAD:b"], None, (["HEAD~1:a", "HEAD:b"], [])),
        (["HEAD:a", "HEAD:b"], ["c"], (["HEAD:a", "HEAD:b"], ["c"])),  # the library refuses it
        # as before: revisions until a word that exists, then paths
        (["HEAD~1", "b"], None, (["HEAD~1"], ["b"])),
        (["x:y"], None, ([], ["x:y"])),  # an existing file with a colon stays a path
        ([":/fix the head", "b"], None, ([":/fix the head"], ["b"])),  # git's :/TEXT: a revision
    ],
)
def test_split_revisions_with_rev_path(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    rest: list[str] | None,
    expected: tuple[list[str], list[str]],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "b").write_text("")
    (tmp_path / "x:y").write_text("")
    assert split_revisions(argv, rest) == expected


def test_more_than_two_sides_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="at most two") as exc:
        split_revisions(["HEAD:a", "HEAD:b", "HEAD:c"], None)
    assert "REV_A[:PATH]" in exc.value.hint
