"""The routing table: the hot paths answer without typer, everything else goes through it.

Each command line runs in a fresh interpreter, which reports its exit code
and whether typer was imported.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROBE = """
import sys
from gitsnap.cli.main import main
code = main({argv!r})
print("TYPER=" + str("typer" in sys.modules) + " CODE=" + str(code))
"""


def routed(argv: list[str], cwd: Path) -> tuple[bool, int]:
    """(typer imported?, exit code) of ``git snap ARGV``."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    last = proc.stdout.splitlines()[-1]
    typer_, code = (part.split("=")[1] for part in last.split())
    return typer_ == "True", int(code)


ROUTES = [
    (["status"], False, 0),
    (["status", "--json"], False, 0),
    (["diff"], False, 0),
    (["diff", "--json", "--top", "3"], False, 0),
    (["diff", "HEAD", "--", "m.safetensors"], False, 0),
    (["hook", "pre-commit"], False, 0),
    (["hook", "nosuch"], False, 2),
    (["status", "m.safetensors"], True, 0),
    (["status", "--", "m.safetensors"], True, 0),
    (["diff", "--top", "0"], True, 2),
    (["diff", "-h"], True, 0),
    (["log"], True, 0),
    (["--version"], True, 0),
]


def test_routes(dvc_repo: Path) -> None:
    import numpy as np

    from tests.helpers import git, run_snap, write_safetensors

    write_safetensors(dvc_repo / "m.safetensors", {"w": np.zeros(4, dtype=np.float32)})
    run_snap("save", "m.safetensors")
    git("add", "-A")
    git("commit", "-q", "-m", "v1")
    # one repository for the whole table (each probe is a fresh interpreter)
    for argv, via_typer, code in ROUTES:
        assert routed(argv, dvc_repo) == (via_typer, code), argv


def test_the_commands_never_import_the_entry_point(tmp_path: Path) -> None:
    # No cycle: main routes to commands (lazily); commands know nothing of main.
    code = "import sys, gitsnap.cli.commands; print('gitsnap.cli.main' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
