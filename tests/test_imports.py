"""DESIGN D10: start-up paths import neither torch nor dvc (nor numpy)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROBE = """
import sys
from gitsnap.cli.main import main
code = main({argv!r})
heavy = sorted(m for m in ("torch", "dvc", "numpy", "safetensors", "git") if m in sys.modules)
print("HEAVY=" + ",".join(heavy))
"""


def probe(argv: list[str], cwd: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("HEAVY=")]
    assert line, proc.stdout + proc.stderr
    return line[0][len("HEAVY=") :]


def test_import_gitsnap_is_light(tmp_path: Path) -> None:
    code = "import sys, gitsnap, gitsnap.api, gitsnap.cli.main; print(sorted(m for m in ('torch','dvc','numpy') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_help_and_clean_status_stay_light(dvc_repo: Path, make_checkpoint, run_snap) -> None:  # type: ignore[no-untyped-def]
    make_checkpoint(dvc_repo / "m.safetensors")
    run_snap("save", "m.safetensors")
    run_snap("status")  # fills the stat cache
    assert probe(["--help"], dvc_repo) == ""
    assert probe(["status"], dvc_repo) == ""
