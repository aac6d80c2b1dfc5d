"""The layers of DESIGN §2 hold: ``lint-imports`` keeps every contract of pyproject.toml.

The contracts (``[tool.importlinter]``) order the modules in layers, forbid
import cycles, keep the CLI and the renderers out of the library and torch out
of gitsnap; docs/architecture.md explains them. The second test proves the
check bites: the same contracts on a copy of the package with one upward import
added must fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The console script of the virtualenv that runs the tests (the `test` extra installs it).
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with the contracts of ``root/pyproject.toml`` on ``root/gitsnap``."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_contract_is_kept() -> None:
    proc = lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_an_upward_import_breaks_the_layers(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "gitsnap", tmp_path / "gitsnap")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    store = tmp_path / "gitsnap" / "store.py"
    # Inside a function, where a lazy import hides from a module-level scan.
    store.write_text(
        store.read_text() + "\n\ndef _upward() -> None:\n    from gitsnap.cli import main\n"
    )
    proc = lint_imports(tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "layers: a module imports only from the layers below it BROKEN" in proc.stdout
    assert "gitsnap.store -> gitsnap.cli" in proc.stdout
    assert "the library never imports the CLI or the renderers BROKEN" in proc.stdout
