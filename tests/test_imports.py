"""DESIGN D10: start-up paths import neither torch nor dvc (nor numpy, nor YAML).

``--help``, a clean ``git snap status`` and the git hooks with nothing to do
run on every command, commit and checkout: each is probed in a fresh
interpreter for the heavy modules it loaded.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import MakeCheckpoint, RunSnap, git

HEAVY = ("torch", "dvc", "numpy", "safetensors", "git", "yaml", "blake3", "rich")

PROBE = """
import sys
from gitsnap.cli.main import main
code = main({argv!r})
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print("HEAVY=" + ",".join(heavy))
print("CODE=" + str(code))
"""


def probe(argv: list[str], cwd: Path, heavy: tuple[str, ...] = HEAVY) -> str:
    """The heavy modules ``git snap ARGV`` imported, comma-separated ("" for none); it must pass."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv, heavy=heavy)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = dict(ln.split("=", 1) for ln in proc.stdout.splitlines() if "=" in ln)
    assert lines.get("CODE") == "0", proc.stdout + proc.stderr
    return lines["HEAVY"]


def test_import_gitsnap_is_light(tmp_path: Path) -> None:
    code = (
        "import sys, gitsnap, gitsnap.api, gitsnap.cli.main, gitsnap.hooks\n"
        "print(sorted(m for m in ('torch', 'dvc', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_python_api_names_are_light_until_used(tmp_path: Path) -> None:
    # gitsnap.open & co. are lazy attributes: naming them loads their module, not numpy,
    # torch or dvc (those come with the first tensor read or written, torch only for "pt").
    code = (
        "import sys, gitsnap\n"
        "assert 'gitsnap.commands.open' not in sys.modules\n"
        "fns = (gitsnap.open, gitsnap.load, gitsnap.export,"
        " gitsnap.save, gitsnap.save_state_dict)\n"
        "print(sorted(m for m in ('torch', 'dvc', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_help_and_clean_status_stay_light(
    dvc_repo: Path, make_checkpoint: MakeCheckpoint, run_snap: RunSnap
) -> None:
    make_checkpoint(dvc_repo / "m.safetensors")
    run_snap("save", "m.safetensors")
    run_snap("status")  # fills the stat cache
    assert probe(["--help"], dvc_repo) == ""
    assert probe(["status"], dvc_repo) == ""
    assert probe(["status", "--json"], dvc_repo) == ""
    # The typer app (60-90 ms to build) is for the other commands and for help.
    assert probe(["status"], dvc_repo, heavy=("typer", "click")) == ""
    assert probe(["--help"], dvc_repo, heavy=("typer",)) == "typer"


def test_hooks_with_nothing_to_do_stay_light(
    dvc_repo: Path, make_checkpoint: MakeCheckpoint, run_snap: RunSnap
) -> None:
    make_checkpoint(dvc_repo / "m.safetensors")
    run_snap("save", "m.safetensors")
    git("add", "-A")
    git("commit", "-q", "-m", "v1")
    run_snap("status")  # fills the stat cache
    head = git("rev-parse", "HEAD").stdout.strip()
    (dvc_repo / "notes.txt").write_text("an unrelated change\n")
    git("add", "notes.txt")
    # What git runs for a commit of a text file, a branch checkout and a merge.
    assert probe(["hook", "pre-commit"], dvc_repo) == ""
    assert probe(["hook", "post-checkout", head, head, "1"], dvc_repo) == ""
    assert probe(["hook", "post-merge", "0"], dvc_repo) == ""
    assert probe(["hook", "post-commit"], dvc_repo) == ""
    assert probe(["hook", "post-rewrite", "amend"], dvc_repo) == ""
    assert probe(["hook", "pre-commit"], dvc_repo, heavy=("typer", "click")) == ""


def test_version_prints_and_exits_zero(run_snap: RunSnap, tmp_path: Path) -> None:
    from gitsnap import __version__

    out = run_snap("--version", cwd=tmp_path)
    assert out.stdout == f"gitsnap {__version__}\n"
    assert out.returncode == 0
