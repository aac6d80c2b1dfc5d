"""The environment a snapshot records (gitsnap/environment.py; issue 15, point 6)."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
from pathlib import Path

from gitsnap import environment
from gitsnap.hashing import oid_of
from gitsnap.pointer import loads
from tests.helpers import make_checkpoint, run_snap


def _by_importlib() -> dict[str, str]:
    """importlib.metadata's view: every distribution on sys.path, the first of a name wins."""
    out: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        out.setdefault(environment.normalize(dist.metadata["Name"]), dist.version)
    return out


def test_the_folder_scan_agrees_with_importlib_metadata() -> None:
    """The stand-in for speed (names of *-info folders) against the library it replaces."""
    found = environment.installed()
    assert found == _by_importlib()
    assert len(found) > 50  # the venv: torch, transformers, dvc, ...


def test_info_folders_of_every_spelling(tmp_path: Path) -> None:
    (tmp_path / "Foo_Bar-1.0.dist-info").mkdir()
    (tmp_path / "old_pkg-2.1-py3.11.egg-info").mkdir()
    dev = tmp_path / "devpkg.egg-info"  # a develop install: the version is in PKG-INFO
    dev.mkdir()
    (dev / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: Dev.Pkg\nVersion: 0.3.dev1\n\nBody")
    (tmp_path / "broken.egg-info").mkdir()  # no PKG-INFO: skipped
    (tmp_path / "numpy-1.0.dist-info").mkdir()
    shadowed = tmp_path / "later"
    shadowed.mkdir()
    (shadowed / "numpy-9.9.dist-info").mkdir()
    paths = [str(tmp_path), str(shadowed), str(tmp_path / "missing"), str(tmp_path / "x.zip")]
    assert environment.installed(paths) == {
        "foo-bar": "1.0",
        "old-pkg": "2.1",
        "dev-pkg": "0.3.dev1",
        "numpy": "1.0",  # the first on the path wins, as for imports
    }
    env = environment.current(paths)
    assert env["packages"] == {"numpy": "1.0"} and env["installed"] == 4
    lines = "dev-pkg==0.3.dev1\nfoo-bar==1.0\nnumpy==1.0\nold-pkg==2.1\n"
    assert env["digest"] == oid_of(lines.encode())


def test_a_save_records_the_real_installed_versions(dvc_repo: Path) -> None:
    make_checkpoint(dvc_repo / "m.safetensors", seed=1)
    run_snap("save", "m.safetensors", cwd=dvc_repo)
    env = loads((dvc_repo / "m.safetensors.snap").read_bytes()).env
    real = _by_importlib()
    assert env["python"] == platform.python_version()
    for name in ("torch", "numpy", "safetensors", "transformers", "accelerate", "lightning"):
        assert env["packages"][name] == importlib.metadata.version(name), name
    assert set(env["packages"]) == {n for n in environment.ML_STACK if n in real}
    assert env["installed"] == len(real)
    lines = "".join(f"{n}=={v}\n" for n, v in sorted(real.items()))
    assert env["digest"] == oid_of(lines.encode())


def test_env_changes_python_packages_and_the_whole_set() -> None:
    before = {"python": "3.11.7", "packages": {"numpy": "1.26.4", "torch": "2.1.0"},
              "installed": 100, "digest": "a" * 64}  # fmt: skip
    after = {"python": "3.12.1", "packages": {"numpy": "2.0.0", "lightning": "2.4.0"},
             "installed": 101, "digest": "b" * 64}  # fmt: skip
    got = environment.env_changes(before, after)
    assert [(c.name, c.before, c.after) for c in got] == [
        ("python", "3.11.7", "3.12.1"),
        ("lightning", None, "2.4.0"),
        ("numpy", "1.26.4", "2.0.0"),
        ("torch", "2.1.0", None),
        ("installed", "a" * 64, "b" * 64),
    ]
    assert (got[-1].count_before, got[-1].count_after) == (100, 101)
    assert environment.env_changes(before, before) == []
    assert environment.env_changes({}, after) == []  # an older pointer recorded none: no claim
    odd = environment.env_changes({"packages": ["x"], "python": 3}, {"python": "3"})
    assert odd == []  # a hand-edited value: shown as text, 3 == "3"


def test_recording_the_environment_imports_no_package_and_is_cheap() -> None:
    code = (
        "import sys, time\n"
        "from gitsnap import environment\n"
        "environment.current()\n"
        "t = time.perf_counter()\n"
        "env = environment.current()\n"
        "print(time.perf_counter() - t)\n"
        "print(sorted(set(env['packages']) & {m.replace('_', '-') for m in sys.modules}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[1] == "[]"  # torch, numpy, transformers, ... recorded, none imported
    assert float(out[0]) < 0.5  # measured ~2 ms for 185 distributions
