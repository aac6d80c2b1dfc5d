"""Hostile pointers and notes through the real CLI: each ends within seconds, in bounded
memory, with ``error:``/``hint:`` and exit 3 (docs/pointer-format.md, "Limits").

Each case commits a crafted pointer (or attaches a crafted note) on top of a real
``git snap save`` and runs the commands that read it -- ``show``, ``log``,
``diff``, ``metrics show`` -- as a user would, in a subprocess whose address
space is capped (``RLIMIT_AS``) and whose peak RSS and wall time are measured
(``wait4``). Before the limits, these inputs segfaulted (a 100 KB pointer nested
50,000 deep), grew to several GB (aliases in metrics or a note), or ran for
minutes (300,000 entries, an 8 MiB tensor name).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import helpers

ADDRESS_SPACE = 2 * 1024**3  # a hard stop; the measured peak RSS is what is asserted
MAX_RSS_MIB = 300
MAX_SECONDS = 20.0  # "seconds" on a loaded 2-core CI runner; each takes ~1-2 s idle


@dataclass
class Outcome:
    code: int
    out: str
    err: str
    seconds: float
    peak_mib: float


# A tiny launcher runs ``git snap`` for us and reports its peak RSS: the
# ``ru_maxrss`` that wait4 returns to a process carries its parent's peak over
# fork and exec, so measured from a pytest worker that has imported torch it
# would report the worker's size, not gitsnap's.
_LAUNCHER = """
import os, resource, sys
limit, report, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
pid = os.fork()
if pid == 0:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.execvp(argv[0], argv)
_, status, usage = os.wait4(pid, 0)
with open(report, "w") as f:
    f.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_bounded(args: list[str], cwd: Path) -> Outcome:
    """``git snap ARGS`` with RLIMIT_AS set, its peak RSS (git and git-snap) and wall time."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.TemporaryDirectory() as tmp,
    ):
        report = Path(tmp) / "maxrss"
        start = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-S", "-c", _LAUNCHER, str(ADDRESS_SPACE), str(report),
             "git", "snap", *args],
            cwd=cwd,
            stdout=out,
            stderr=err,
        )  # fmt: skip
        try:
            proc.wait(timeout=MAX_SECONDS * 3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        seconds = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        peak_kib = int(report.read_text()) if report.exists() else 0
        return Outcome(
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            seconds,
            peak_kib / 1024,  # KiB on Linux; covers the waited-for git-snap child
        )


def assert_refused(outcome: Outcome, *words: str) -> None:
    shown = f"exit {outcome.code}\n{outcome.err[:2000]}"
    assert outcome.code == 3, shown
    assert outcome.err.startswith("error: ") and "\nhint: " in outcome.err, shown
    assert all(w in outcome.err for w in words), shown
    assert len(outcome.err) < 4096, "the message must not echo the hostile input"
    assert outcome.seconds < MAX_SECONDS, f"{outcome.seconds:.1f} s"
    assert outcome.peak_mib < MAX_RSS_MIB, f"{outcome.peak_mib:.0f} MiB"


@pytest.fixture(scope="module")
def base_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repo with a real saved checkpoint ``m.bin`` committed twice (``base``, ``second``)."""
    repo = helpers.init_dvc_repo(helpers.init_git_repo(tmp_path_factory.mktemp("h") / "repo"))
    helpers.run_snap("init", cwd=repo)
    (repo / "m.bin").write_bytes(b"weights")
    helpers.run_snap("save", "m.bin", "-m", "base", cwd=repo)
    helpers.git("add", "-A", cwd=repo)
    helpers.git("commit", "-q", "-m", "base", cwd=repo)
    (repo / "m.bin").write_bytes(b"WEIGHTS")
    helpers.run_snap("save", "m.bin", "-m", "second", cwd=repo)
    helpers.git("commit", "-q", "-am", "second", cwd=repo)
    return repo


@pytest.fixture
def repo(base_repo: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    shutil.copytree(base_repo, copy, symlinks=True)
    return copy


def commit_pointer(repo: Path, edit: Callable[[str], str]) -> None:
    pointer = repo / "m.bin.snap"
    pointer.write_text(edit(pointer.read_text()))
    helpers.git("commit", "-q", "-am", "hostile", cwd=repo)


def laughs(levels: int = 9) -> str:
    """A "billion laughs": each level 9 aliases of the one before (9**9 leaves)."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        refs = ",".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


ENTRY = "- {{offset: 0, size: 0, oid: {oid}, role: gap}}\n"

POINTERS: dict[str, tuple[Callable[[str], str], tuple[str, ...]]] = {
    # 100 KB nested 50,000 deep: crashed PyYAML's C loader (segfault).
    "deep": (
        lambda t: t.replace("metrics: {}", "metrics: " + "[" * 50_000 + "]" * 50_000),
        ("nested deeper than 32 levels",),
    ),
    "deep-block": (
        lambda t: t.replace(
            "metrics: {}", "metrics:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 200))
        ),
        ("nested deeper than 32 levels",),
    ),
    # ~1 KB of YAML aliases in the metrics: several GB before.
    "billion-laughs": (
        lambda t: t.replace(
            "metrics: {}",
            "metrics:\n" + "".join("  " + line + "\n" for line in laughs().split("\n") if line),
        ),
        ("alias or anchor",),
    ),
    # 300,000 zero-size entries (~30 MB): 150 s and 1.8 GB in show before.
    "300k-entries": (
        lambda t: t.replace("tensors: []", "tensors: []").replace(
            "blobs:\n", "blobs:\n" + ENTRY.format(oid="a" * 64) * 300_000, 1
        ),
        ("more than 250000 entries",),
    ),
    # One 8 MiB tensor name: 103 s in diff before (line wrapping).
    "8MiB-name": (
        lambda t: t.replace(
            "tensors: []",
            "tensors:\n- {name: "
            + "n" * (8 * 1024 * 1024)
            + ", dtype: F32, shape: [0], offset: 7, size: 0, oid: "
            + "b" * 64
            + "}",
        ),
        ("longer than 4096 characters",),
    ),
    "huge-metadata": (
        lambda t: t.replace(
            "metrics: {}", "metadata:\n  blob: " + "x" * (2 * 1024 * 1024) + "\nmetrics: {}"
        ),
        ("more than 1048576 characters",),
    ),
    # A non-string key: read, then crashed the writer ("internal error").
    "int-key": (lambda t: t.replace("metrics: {}", "metrics:\n  1: 0.5"), ("not a string",)),
    "5000-digit-size": (
        lambda t: t.replace("\nsize: 7\n", "\nsize: 1" + "0" * 5000 + "\n"),
        ("a number too long",),
    ),
    "size-2**63": (
        lambda t: t.replace("\nsize: 7\n", f"\nsize: {2**63}\n"),
        ("larger than any file",),
    ),
    "document-end": (lambda t: t.replace("params: {}", "...\nparams: {}"), ("malformed",)),
    # 320 MiB of pointer: git hands it over whole; it is refused without being held.
    "320MiB-pointer": (
        lambda t: t.replace(
            "metrics: {}", "metadata:\n  blob: " + "x" * (320 << 20) + "\nmetrics: {}"
        ),
        ("pointer is larger than 67108864 bytes",),
    ),
}


@pytest.mark.parametrize("case", sorted(POINTERS))
def test_hostile_pointer_is_refused_quickly_by_every_reader(repo: Path, case: str) -> None:
    edit, words = POINTERS[case]
    commit_pointer(repo, edit)
    for args in (["show", "m.bin"], ["log"], ["diff", "HEAD~1", "HEAD"], ["metrics", "show"]):
        assert_refused(run_bounded(args, repo), *words)


def test_textconv_of_a_hostile_pointer_ends_quickly(repo: Path) -> None:
    # git's textconv shows a pointer it cannot read as its raw text (git diff must work).
    commit_pointer(repo, POINTERS["deep"][0])
    outcome = run_bounded(["textconv", "m.bin.snap"], repo)
    assert outcome.code == 0 and outcome.out.startswith("gitsnap: 1"), outcome.err
    assert outcome.seconds < MAX_SECONDS and outcome.peak_mib < MAX_RSS_MIB
    diff = helpers.git("diff", "HEAD~1", "HEAD", cwd=repo)
    assert "[[[[" in diff.stdout


NOTES = {
    # 442 bytes fetched from origin: grew to several GB before.
    "billion-laughs": (laughs(), "alias or anchor"),
    "deep": ("metrics: " + "[" * 50_000 + "]" * 50_000 + "\n", "nested deeper than 32 levels"),
    "too-many-names": (
        "{" + ",".join(f"m{i}: {i}" for i in range(20_000)) + "}\n",
        "more than 10000 metrics/params",
    ),
    # 320 MiB of note: read past, never held.
    "320MiB": ("metrics: {a: " + "1" * (320 << 20) + "}\n", "larger than 1048576 bytes"),
}


@pytest.mark.parametrize("case", sorted(NOTES))
def test_hostile_note_is_refused_quickly(repo: Path, case: str) -> None:
    text, words = NOTES[case]
    if case == "billion-laughs":
        assert len(text.encode()) < 500
    helpers.run(
        ["git", "notes", "--ref=refs/notes/gitsnap", "add", "-f", "-F", "-", "HEAD"],
        cwd=repo,
        input=text,
    )
    for args in (["metrics", "show"], ["diff", "HEAD~1", "HEAD"], ["diff"]):
        assert_refused(run_bounded(args, repo), words)
