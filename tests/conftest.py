"""Fixtures over real parts: git repos, a dvc project, local and S3 remotes, models.

Nothing here is mocked (DESIGN §4, STYLE "Tests"): ``git`` and ``dvc`` are the
real CLIs, the S3 remote is moto's S3 API server in a subprocess on loopback,
and checkpoints are small seeded torch models. The reusable logic lives in
``helpers.py`` so tests can call it directly as well.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import helpers

# Variables that would let the developer's (or CI's) git, dvc, AWS and
# pre-commit setups leak into the tests. GIT_DIR/GIT_WORK_TREE/GIT_INDEX_FILE
# are the dangerous ones (git exports them to hooks, so running the suite from
# a hook would touch the outer repo); identity and GIT_CONFIG_* overrides go
# too. DVC_NOSCM in particular must not survive: gitsnap needs dvc's scm.
_STRIPPED_PREFIXES = ("GIT_", "DVC_", "AWS_", "PRE_COMMIT")
_STRIPPED_NAMES = (
    "SOURCE_DATE_EPOCH",
    "FORCE_COLOR",
    "CLICOLOR_FORCE",
    "TTY_COMPATIBLE",
    "TTY_INTERACTIVE",
    "LANGUAGE",
)

_DVC_GLOBAL_CONFIG = """\
[core]
    analytics = false
    check_update = false
"""


@pytest.fixture(scope="session", autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Run the whole session with a throw-away HOME and no outside git/dvc config.

    Yields the temporary HOME. Environment variables changed (for this
    process and every subprocess):

    - ``HOME`` and ``XDG_{CONFIG,CACHE,DATA,STATE}_HOME`` inside it; a
      ``.gitconfig`` with a test identity, ``init.defaultBranch=main`` and
      ``safe.directory=*``, also named by ``GIT_CONFIG_GLOBAL``;
    - ``GIT_CONFIG_NOSYSTEM=1``, ``GIT_TEMPLATE_DIR`` an empty directory (no
      sample hooks), ``GIT_TERMINAL_PROMPT=0`` (a push never waits for input);
    - ``DVC_NO_ANALYTICS=1``, ``DVC_GLOBAL_CONFIG_DIR``,
      ``DVC_SYSTEM_CONFIG_DIR`` and ``DVC_SITE_CACHE_DIR`` (default
      ``/var/tmp/dvc``) inside the temp dir -- the names dvc 3.x reads in
      ``dvc/env.py`` / ``dvc/dirs.py``;
    - the interpreter's bin dir first on ``PATH`` so ``git snap`` finds
      ``git-snap`` and ``dvc`` is this venv's;
    - loopback exempt from proxies; ``LC_ALL=C.UTF-8`` so git speaks English;
    - removed: every ``GIT_*``, ``DVC_*``, ``AWS_*`` and ``PRE_COMMIT*``
      variable not set above, and ``SOURCE_DATE_EPOCH`` and colour forcing.
    """
    root = tmp_path_factory.mktemp("isolated")
    home = root / "home"
    template_dir = root / "git-template"
    dvc_system = root / "dvc-system-config"
    dvc_site_cache = root / "dvc-site-cache"
    xdg = {
        "XDG_CONFIG_HOME": home / ".config",
        "XDG_CACHE_HOME": home / ".cache",
        "XDG_DATA_HOME": home / ".local" / "share",
        "XDG_STATE_HOME": home / ".local" / "state",
    }
    dvc_global = xdg["XDG_CONFIG_HOME"] / "dvc"
    for directory in (home, template_dir, dvc_system, dvc_site_cache, dvc_global, *xdg.values()):
        directory.mkdir(parents=True, exist_ok=True)
    gitconfig = helpers.write_gitconfig(home)
    (dvc_global / "config").write_text(_DVC_GLOBAL_CONFIG, encoding="utf-8")

    no_proxy = ",".join(filter(None, ["127.0.0.1", "localhost", os.environ.get("NO_PROXY", "")]))
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith(_STRIPPED_PREFIXES) or name in _STRIPPED_NAMES:
                mp.delenv(name)
        env: dict[str, str | Path] = {
            "HOME": home,
            **xdg,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": gitconfig,
            "GIT_TEMPLATE_DIR": template_dir,
            "GIT_TERMINAL_PROMPT": "0",
            "DVC_NO_ANALYTICS": "1",
            "DVC_GLOBAL_CONFIG_DIR": dvc_global,
            "DVC_SYSTEM_CONFIG_DIR": dvc_system,
            "DVC_SITE_CACHE_DIR": dvc_site_cache,
            "NO_PROXY": no_proxy,
            "no_proxy": no_proxy,
            "LC_ALL": "C.UTF-8",
        }
        for name, value in env.items():
            mp.setenv(name, os.fspath(value))
        mp.setenv("PATH", os.fspath(helpers.VENV_BIN), prepend=os.pathsep)
        yield home


@pytest.fixture
def git_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ``git init`` work tree at ``tmp_path / "repo"``, made the cwd.

    Branch ``main``, no commits (tests decide what the first one holds).
    """
    repo = helpers.init_git_repo(tmp_path / "repo")
    monkeypatch.chdir(repo)
    return repo


@pytest.fixture
def dvc_repo(git_repo: Path) -> Path:
    """``git_repo`` after a real ``dvc init``, committed as ``init``."""
    return helpers.init_dvc_repo(git_repo)


@pytest.fixture
def local_remote(dvc_repo: Path, tmp_path: Path) -> Path:
    """A folder outside the repo set as the default DVC remote ``storage``.

    Configured with ``dvc remote add -d`` and committed; returns the folder.
    """
    remote = tmp_path / "dvc-remote"
    remote.mkdir()
    helpers.add_dvc_remote(dvc_repo, "storage", os.fspath(remote))
    return remote


@pytest.fixture
def bare_origin(git_repo: Path, tmp_path: Path) -> Path:
    """A bare repository at ``tmp_path / "origin.git"``, added as ``origin`` of git_repo."""
    origin = tmp_path / "origin.git"
    helpers.git("init", "-q", "--bare", origin)
    helpers.git("remote", "add", "origin", origin, cwd=git_repo)
    return origin


@pytest.fixture(scope="session")
def moto_server(
    isolated_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[helpers.MotoServer]:
    """moto's S3 server in a subprocess on a free 127.0.0.1 port, for the session.

    Started on first use only (so runs deselecting ``-m "not s3"`` never
    start it) and stopped at session end: SIGTERM, then SIGKILL after 10 s.
    Sets test AWS credentials and ``AWS_DEFAULT_REGION=us-east-1`` from then on.
    """
    log_path = tmp_path_factory.mktemp("moto") / "server.log"
    with pytest.MonkeyPatch.context() as mp, log_path.open("wb") as log:
        for name, value in helpers.TEST_AWS_ENV.items():
            mp.setenv(name, value)
        process, endpoint = helpers.start_moto_server(log)
        try:
            yield helpers.MotoServer(process, endpoint, log_path)
        finally:
            helpers.stop_process(process)


@pytest.fixture(scope="session")
def s3_server(moto_server: helpers.MotoServer) -> str:
    """Endpoint URL (``http://127.0.0.1:PORT``) of the session's S3 API server."""
    return moto_server.endpoint


@pytest.fixture
def s3_remote(dvc_repo: Path, s3_server: str) -> str:
    """A fresh bucket set as the default DVC remote ``storage``; returns ``s3://BUCKET/prefix``.

    The remote's ``endpointurl`` points at :func:`s3_server`; the config
    change is committed. List what was pushed with
    ``helpers.list_s3_keys(s3_server, url)``.
    """
    bucket = f"gitsnap-test-{uuid.uuid4().hex[:16]}"
    helpers.s3_client(s3_server).create_bucket(Bucket=bucket)
    url = f"s3://{bucket}/prefix"
    helpers.add_dvc_remote(dvc_repo, "storage", url, endpointurl=s3_server)
    return url


@pytest.fixture
def make_checkpoint() -> helpers.MakeCheckpoint:
    """``make_checkpoint(path, *, seed=0, modify=(), dtype="float32", hidden=32, ...)``.

    Writes a tiny seeded model as safetensors; see ``helpers.make_checkpoint``.
    """
    return helpers.make_checkpoint


@pytest.fixture
def run_snap() -> helpers.RunSnap:
    """``run_snap(*args, cwd=None, check=True, input=None, env=None)`` -> CompletedProcess.

    Runs the installed ``git snap`` in a subprocess; see ``helpers.run_snap``.
    """
    return helpers.run_snap
