"""gitsnap.api is a thin facade: every command and result type of gitsnap.commands, re-exported.

And the command modules keep their promises: typed results (no ``Any``),
no printing.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import gitsnap.commands
from gitsnap import api

# Every name callers used before the commands moved out of api.py.
NAMES_BEFORE = {
    "CheckoutEntry", "Entry", "InitResult", "LogEntry", "PointerError", "PullResult",
    "SaveResult", "ShowResult", "StatusEntry", "StatusResult", "checkout", "diff", "du",
    "fetch", "fsck", "gc", "init", "install", "log", "ls", "ls_history", "metrics_add",
    "metrics_show", "pull", "push", "read_pointer_file", "remote_status", "save", "show",
    "status", "tag", "textconv", "uninstall", "MetricsNoteResult", "MetricsCheckpoint",
    "MetricsShowResult",
}  # fmt: skip

MODULES = [
    importlib.import_module(f"gitsnap.commands.{m.name}")
    for m in pkgutil.iter_modules(gitsnap.commands.__path__)
]


def _public(module: object) -> dict[str, object]:
    """The commands and result types a command module defines (not what it imports)."""
    name = getattr(module, "__name__", "")
    return {
        k: v
        for k, v in vars(module).items()
        if not k.startswith("_")
        and (inspect.isfunction(v) or inspect.isclass(v))
        and getattr(v, "__module__", None) == name
    }


def test_every_old_name_is_still_there() -> None:
    missing = sorted(n for n in NAMES_BEFORE if not hasattr(api, n))
    assert not missing
    assert set(api.__all__) >= NAMES_BEFORE
    assert set(api.__all__) == set(api._WHERE)  # the lazy table and the list agree


def test_api_reexports_the_commands_themselves() -> None:
    for module in MODULES:
        for name, obj in _public(module).items():
            if name in api.__all__:
                assert getattr(api, name) is obj, f"api.{name} is not {module.__name__}.{name}"
    commands = {n for m in MODULES for n, o in _public(m).items() if inspect.isfunction(o)}
    assert {n for n in api.__all__ if inspect.isfunction(getattr(api, n))} <= commands


def test_api_is_a_facade() -> None:
    source = Path(api.__file__).read_text(encoding="utf-8")
    # no logic of its own: only the lazy lookup of its name -> module table
    assert [ln for ln in source.splitlines() if "def " in ln] == [
        "def __getattr__(name: str) -> object:"
    ]
    assert len(source.splitlines()) < 160


def test_api_imports_only_the_command_used(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from gitsnap import api\n"
        "api.status\n"
        "print(sorted(m for m in sys.modules if m.startswith('gitsnap.commands.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "['gitsnap.commands.status']"


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_commands_are_typed_and_silent(module: object) -> None:
    source = inspect.getsource(module)  # type: ignore[arg-type]
    calls = [n.func for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)]
    assert not [c for c in calls if isinstance(c, ast.Name) and c.id == "print"]
    assert "# ---- " not in source  # no feature section markers
    for name, obj in _public(module).items():
        if inspect.isfunction(obj) and not name.startswith("_"):
            for arg, hint in inspect.get_annotations(obj).items():
                assert "Any" not in str(hint), f"{name}({arg}) is typed {hint}"
        if inspect.isclass(obj) and dataclasses.is_dataclass(obj):
            for f in dataclasses.fields(obj):
                assert "Any" not in str(f.type), f"{name}.{f.name} is typed {f.type}"
