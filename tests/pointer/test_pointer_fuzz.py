"""Fuzzing both pointer readers: any input ends in a Pointer or a GitsnapError, never
another exception, and the two readers agree (DESIGN D13).

Inputs are the golden pointers (real saves) and generated canonical pointers,
cut and spliced with YAML's structural characters, aliases, tags, document
markers, deep brackets, long digits and odd Unicode. ``loads`` (fast line
reader, falling back to YAML) and ``load_yaml`` (bounded PyYAML) must give the
same pointer -- and then ``dumps`` must write it -- or the same error.

The suite runs a few thousand cases; set ``GITSNAP_FUZZ_EXAMPLES`` for a
longer run (docs/security.md).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitsnap.errors import GitsnapError
from gitsnap.pointer import dumps, load_yaml, loads

EXAMPLES = int(os.environ.get("GITSNAP_FUZZ_EXAMPLES", "1500"))
GOLDEN = [p.read_text() for p in sorted((Path(__file__).parent / "golden").glob("*.snap"))]

pieces = st.one_of(
    st.sampled_from(
        [
            "", " ", "\n", "\t", "-", "- ", ":", ": ", ",", "'", '"', "#", "{", "}", "[", "]",
            "?", "? ", "&a ", "*a", "&x [1, 2]", "!!python/object:os.system ", "!!binary ",
            "!foo ", "%YAML 1.1\n", "---\n", "...\n", "\n...\n", "\n---\n", "|\n  ", ">\n  ",
            "1: ", "null: ", "~: ", "? [a, b]\n: c\n", "<<: {a: 1}\n", "\r", "\r\n", "\ufeff",
            "\x85", "\u2028", "\x00", "\x1b[2J", "é", "中", ".nan", "-.inf", "0x1f", "012",
            "1_000", "1:30", "2026-01-02", "y", "no", "1" * 5000, "9" * 20, "[" * 40, "{a: " * 40,
            "\n  " * 40, "tensors:\n", "blobs:\n", "files:\n", "gitsnap: 1\n", "gitsnap: 2\n",
        ]
    ),
    st.text(max_size=8),
)  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(GOLDEN))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 8))
        text = text[:at] + draw(pieces) + text[at + cut :]
    return text


def _outcome(read: object, text: str) -> tuple[str, str]:
    """('ok', canonical text) or ('error', message); anything else escapes and fails."""
    try:
        ptr = read(text, "f.snap")  # type: ignore[operator]
    except GitsnapError as exc:
        return "error", f"{exc} | {exc.hint}"
    try:
        return "ok", dumps(ptr)
    except GitsnapError as exc:  # what a reader accepts, the writer must write
        raise AssertionError(f"read but not writable: {exc}") from exc


def check(text: str) -> None:
    fast = _outcome(loads, text)
    slow = _outcome(load_yaml, text)
    assert fast == slow
    raw = text.encode("utf-8", errors="surrogatepass")
    with contextlib.suppress(GitsnapError):
        loads(raw, "f.snap")


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated())
def test_mutated_golden_pointers_read_the_same_or_fail_the_same(text: str) -> None:
    check(text)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(pieces, max_size=30).map("".join))
def test_arbitrary_yaml_ish_text_reads_the_same_or_fails_the_same(body: str) -> None:
    check("gitsnap: 1\n" + body)
    check(body)
