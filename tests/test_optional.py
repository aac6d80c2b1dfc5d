"""gitsnap._optional: a missing extra is a GitsnapError that names the install command.

The clean-environment half (torch really absent) is in tests/test_wheel.py;
here a module that does not exist stands for it, in real imports.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gitsnap._optional import require, require_torch
from gitsnap.errors import GitsnapError, MissingDependency


def test_present_module_is_returned() -> None:
    assert require("json", "reading JSON").__name__ == "json"
    assert require_torch("handing tensors to torch").__name__ == "torch"


def test_absent_module_names_the_extra() -> None:
    with pytest.raises(MissingDependency) as err:
        require("gitsnap_absent_module.sub", "reading a checkpoint", extra="torch")
    assert isinstance(err.value, GitsnapError)
    assert str(err.value) == (
        "reading a checkpoint needs gitsnap_absent_module, which is not installed"
    )
    assert err.value.hint == "pip install 'gitsnap[torch]'"


def test_a_broken_install_is_not_reported_as_a_missing_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The package is there but one of its own dependencies is not: that is a
    # broken environment, and the real ModuleNotFoundError must surface.
    pkg = tmp_path / "gitsnap_broken_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("import gitsnap_dependency_that_is_not_there\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "gitsnap_broken_pkg", raising=False)
    with pytest.raises(ModuleNotFoundError, match="gitsnap_dependency_that_is_not_there"):
        require("gitsnap_broken_pkg", "a feature")
