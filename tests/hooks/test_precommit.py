"""``.pre-commit-hooks.yaml`` with the real pre-commit framework (issue 6, point 5).

pre-commit reads a hooks repository at a committed revision, so a session
fixture copies this project's working state (tracked and new files, as
``git ls-files`` lists them) into a fresh repository and commits it once.

- the fast tests override ``language: system`` in a user's
  ``.pre-commit-config.yaml`` (the gitsnap on PATH, no environment to build)
  and run every hook id through real ``git commit`` / ``push`` / ``checkout``
  / ``merge`` via ``pre-commit install``;
- the slow test runs ``pre-commit try-repo`` as published (``language:
  python``): pre-commit builds its own environment and pip-installs gitsnap
  with its dependencies into it. ``PIP_CONSTRAINT`` points pip at
  constraints.txt so that torch is the CPU build (any other resolution pulls
  gigabytes of CUDA packages); the environment is built once per session.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests import helpers
from tests.helpers import git, run_snap
from tests.hooks.test_hooks import ckpt, oids, pointer, remote_oids

PROJECT = Path(__file__).resolve().parents[2]
IDS = ("gitsnap-check", "gitsnap-no-raw-weights", "gitsnap-push", "gitsnap-checkout")
PRE_COMMIT = [str(helpers.VENV_BIN / "pre-commit")]


@pytest.fixture(scope="session")
def hooks_repo(tmp_path_factory: pytest.TempPathFactory, isolated_home: Path) -> tuple[Path, str]:
    """(path, commit) of a repository holding this project's working state."""
    if not (PROJECT / ".git").exists():
        pytest.fail("the project is not a git checkout: run the suite from a clone")
    listed = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=PROJECT).stdout
    dest = tmp_path_factory.mktemp("gitsnap-src") / "gitsnap"
    for rel in filter(None, listed.split("\0")):
        src = PROJECT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    helpers.init_git_repo(dest)
    git("add", "-A", cwd=dest)
    git("commit", "-q", "--no-verify", "-m", "working state", cwd=dest)
    return dest, git("rev-parse", "HEAD", cwd=dest).stdout.strip()


def pre_commit(
    *args: str, cwd: Path, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return helpers.run([*PRE_COMMIT, *args], cwd=cwd, check=check, env=env, timeout=1800)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_manifest_is_valid_and_has_the_right_stages() -> None:
    pre_commit("validate-manifest", ".pre-commit-hooks.yaml", cwd=PROJECT)
    hooks = {h["id"]: h for h in yaml.safe_load((PROJECT / ".pre-commit-hooks.yaml").read_text())}
    assert set(hooks) == set(IDS)
    assert hooks["gitsnap-check"]["stages"] == ["pre-commit"]
    assert hooks["gitsnap-no-raw-weights"]["stages"] == ["pre-commit"]
    assert hooks["gitsnap-push"]["stages"] == ["pre-push"]
    assert hooks["gitsnap-checkout"]["stages"] == [
        "post-checkout",
        "post-merge",
        "post-commit",
        "post-rewrite",
    ]
    assert {h["language"] for h in hooks.values()} == {"python"}
    # Only the upload reaches the remote: only its environment gets dvc (gitsnap[remote]).
    deps = {i: h.get("additional_dependencies", []) for i, h in hooks.items()}
    assert deps == {i: ["dvc>=3.50"] if i == "gitsnap-push" else [] for i in IDS}
    assert all(h["entry"].startswith("git-snap hook ") for h in hooks.values())


def test_docs_config_matches_the_manifest() -> None:
    """The .pre-commit-config.yaml shown in docs/hooks.md uses only ids that exist."""
    text = (PROJECT / "docs" / "hooks.md").read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = yaml.safe_load(block)
    used = {h["id"] for repo in config["repos"] for h in repo["hooks"]}
    assert used == set(IDS)


@pytest.fixture
def framework_repo(
    dvc_repo: Path, local_remote: Path, bare_origin: Path, hooks_repo: tuple[Path, str]
) -> Iterator[Path]:
    """A user project whose .pre-commit-config.yaml runs gitsnap's hooks (``language: system``)."""
    src, rev = hooks_repo
    config = {
        "repos": [
            {
                "repo": str(src),
                "rev": rev,
                "hooks": [
                    # as docs/hooks.md says: the system gitsnap, no environment to build
                    {"id": i, "language": "system", "additional_dependencies": []}
                    for i in IDS
                ],
            },
        ]
    }
    (dvc_repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    git("add", ".pre-commit-config.yaml")
    git("commit", "-q", "-m", "pre-commit config")
    pre_commit(
        "install", "--hook-type", "pre-commit", "--hook-type", "pre-push",
        "--hook-type", "post-checkout", "--hook-type", "post-merge", cwd=dvc_repo,
    )  # fmt: skip
    yield dvc_repo


def test_every_hook_id_through_git(
    framework_repo: Path, local_remote: Path, bare_origin: Path
) -> None:
    repo = framework_repo
    # gitsnap-no-raw-weights
    (repo / "w.pt").write_bytes(b"\x01" * 512)
    git("add", "w.pt")
    proc = git("commit", "-m", "raw", check=False)
    assert proc.returncode != 0
    assert (
        "no raw weight files committed to git" in proc.stdout + proc.stderr
        and "Failed" in proc.stdout + proc.stderr
    )
    assert "w.pt is a raw weight file (.pt" in proc.stdout + proc.stderr
    git("rm", "-q", "--cached", "w.pt")
    (repo / "w.pt").unlink()

    # gitsnap-check: a stale staged pointer
    ckpt(repo / "m.safetensors", 1.0)
    run_snap("save", "m.safetensors")
    git("add", "m.safetensors.snap", ".gitignore")
    ckpt(repo / "m.safetensors", 2.0)
    proc = git("commit", "-m", "stale", check=False)
    assert proc.returncode != 0
    assert "m.safetensors changed since its pointer was saved" in proc.stdout + proc.stderr
    assert "hint: git snap save m.safetensors" in proc.stdout + proc.stderr
    run_snap("save", "m.safetensors")
    git("add", "m.safetensors.snap")
    proc = git("commit", "-m", "v2", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    v2 = sha256(repo / "m.safetensors")

    # gitsnap-push: the weights reach the DVC remote before the commit reaches origin
    proc = git("push", "origin", "main", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "upload the pushed snapshots' weights to the DVC remote" in proc.stdout + proc.stderr
    assert oids(pointer(repo, "m.safetensors")) <= remote_oids(local_remote)
    assert (
        git("rev-parse", "main", cwd=bare_origin).stdout.strip()
        == git("rev-parse", "HEAD").stdout.strip()
    )

    # gitsnap-checkout: post-checkout and post-merge
    git("checkout", "-q", "-b", "feature")
    ckpt(repo / "m.safetensors", 3.0)
    run_snap("save", "m.safetensors")
    git("commit", "-q", "-am", "v3")
    v3 = sha256(repo / "m.safetensors")
    proc = git("checkout", "main", check=False)
    assert proc.returncode == 0
    assert sha256(repo / "m.safetensors") == v2
    proc = git("merge", "--ff-only", "feature", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sha256(repo / "m.safetensors") == v3
    # A file checkout (checkout type 0) leaves the checkpoint alone.
    git("checkout", "HEAD~1", "--", "m.safetensors.snap")
    assert sha256(repo / "m.safetensors") == v3


@pytest.mark.slow
def test_try_repo_with_the_published_python_environment(
    dvc_repo: Path, hooks_repo: tuple[Path, str]
) -> None:
    """``pre-commit try-repo`` as a user would run it: gitsnap installed into pre-commit's own env.

    try-repo builds a fresh environment on every call (a temporary store), so
    this is one call: every pre-commit-stage hook of the manifest, on an index
    holding a good pointer and a raw weight file.
    """
    src, rev = hooks_repo
    repo = dvc_repo
    ckpt(repo / "m.safetensors", 1.0)
    run_snap("save", "m.safetensors")
    (repo / "w.safetensors").write_bytes(b"\x01" * 512)
    git("add", "m.safetensors.snap", ".gitignore", "w.safetensors")
    # pip inside pre-commit's environment: the CPU torch of constraints.txt
    env = {"PIP_CONSTRAINT": str(PROJECT / "constraints.txt")}
    proc = pre_commit("try-repo", str(src), "--ref", rev, cwd=repo, check=False, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert re.search(r"gitsnap pointers are saved and their weights stored\.+Passed", out), out
    assert re.search(r"no raw weight files committed to git\.+Failed", out), out
    assert "w.safetensors is a raw weight file (.safetensors" in out
    assert "m.safetensors" not in out.split("no raw weight files")[1]  # the pointer is fine
