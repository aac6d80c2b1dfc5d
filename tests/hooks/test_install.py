"""``git snap install`` / ``uninstall`` / ``init --hooks`` (issue 6, point 1).

Real repositories, real ``git commit`` through the installed shims; a foreign
hook is a small shell script that records how it was called.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gitsnap.hooks import install
from tests import helpers
from tests.helpers import git, run_snap

PROJECT = Path(__file__).resolve().parents[2]
HOOKS = (
    "pre-commit",
    "pre-push",
    "post-checkout",
    "post-merge",
    "post-commit",
    "post-rewrite",
)


def hooks_dir(repo: Path) -> Path:
    return repo / ".git" / "hooks"


def write_hook(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    path.chmod(0o755)
    return path


def recording_hook(path: Path, log: Path, exit_code: int = 0) -> Path:
    """A foreign hook that appends its name, arguments and stdin to ``log``."""
    return write_hook(
        path,
        f'echo "$(basename "$0") args=[$*]" >> "{log}"\n'
        f'if [ "$(basename "$0")" = pre-push.legacy ]; then cat >> "{log}"; fi\n'
        f"exit {exit_code}\n",
    )


def test_install_writes_the_four_shims_from_hooks_folder(git_repo: Path) -> None:
    out = run_snap("install").stdout
    for name in HOOKS:
        path = hooks_dir(git_repo) / name
        assert path.read_bytes() == (PROJECT / "hooks" / name).read_bytes()
        assert path.stat().st_mode & stat.S_IXUSR
        assert f'exec git snap hook {name} "$@"' in path.read_text()
        assert f"installed {name}" in out
    # A second run recognises its own shims and touches nothing.
    again = run_snap("install").stdout
    assert all(f"unchanged {name}" in again for name in HOOKS)


def test_shims_carry_a_version_line_and_fail_closed_without_git_snap(git_repo: Path) -> None:
    for name in HOOKS:
        lines = (PROJECT / "hooks" / name).read_text().splitlines()
        assert lines[0] == "#!/bin/sh"
        assert lines[1].startswith(install.VERSION_LINE)
    run_snap("install")
    (git_repo / "a.txt").write_text("a\n")
    git("add", "a.txt")
    # git itself is in /usr/bin; git-snap (in the virtualenv) is not on this PATH.
    no_snap = {"PATH": "/usr/bin:/bin"}
    proc = helpers.run(["git", "commit", "-q", "-m", "x"], env=no_snap, check=False)
    assert proc.returncode != 0, "pre-commit must stop the commit when git-snap is missing"
    assert "pre-commit hook needs git-snap, which is not on PATH" in proc.stderr
    assert "hint:" in proc.stderr
    assert git("rev-parse", "--verify", "HEAD", check=False).returncode != 0  # no commit was made
    # post-checkout cannot stop anything: it warns, and git checkout succeeds.
    git("commit", "-q", "--no-verify", "-m", "x")
    proc = helpers.run(["git", "checkout", "-q", "-b", "other"], env=no_snap, check=False)
    assert proc.returncode == 0
    assert "git-snap is not on PATH" in proc.stderr


def test_core_hooks_path_is_honoured(git_repo: Path) -> None:
    git("config", "core.hooksPath", "githooks")
    run_snap("install")
    assert all((git_repo / "githooks" / name).is_file() for name in HOOKS)
    assert not (hooks_dir(git_repo) / "pre-commit").exists()
    # and git really runs them from there: a raw weight file is refused.
    (git_repo / "w.pt").write_bytes(b"\0" * 64)
    git("add", "w.pt")
    proc = git("commit", "-q", "-m", "w", check=False)
    assert proc.returncode == 1
    assert "w.pt is a raw weight file" in proc.stderr

    absolute = git_repo.parent / "shared-hooks"
    git("config", "core.hooksPath", str(absolute))
    run_snap("install", "pre-push")
    assert (absolute / "pre-push").is_file()
    assert not (absolute / "pre-commit").exists()


def test_hooks_of_a_linked_worktree_are_the_repositorys(git_repo: Path, tmp_path: Path) -> None:
    (git_repo / "a").write_text("a")
    git("add", "a")
    git("commit", "-q", "-m", "a")
    wt = tmp_path / "wt"
    git("worktree", "add", "-q", "-b", "wt", str(wt))
    run_snap("install", cwd=wt)
    assert (hooks_dir(git_repo) / "pre-commit").is_file()


def test_a_foreign_hook_is_chained_first_and_never_overwritten(
    git_repo: Path, tmp_path: Path
) -> None:
    log = tmp_path / "calls.log"
    foreign = recording_hook(hooks_dir(git_repo) / "pre-commit", log)
    original = foreign.read_bytes()
    out = run_snap("install").stdout
    assert "chained   pre-commit" in out
    legacy = hooks_dir(git_repo) / "pre-commit.legacy"
    assert legacy.read_bytes() == original
    assert install.classify(foreign, "pre-commit") == "current"

    (git_repo / "a.txt").write_text("a\n")
    git("add", "a.txt")
    git("commit", "-q", "-m", "a")
    assert log.read_text().splitlines() == ["pre-commit.legacy args=[]"]

    # A failing foreign hook still stops the commit, as it did before install.
    recording_hook(legacy, log, exit_code=7)
    (git_repo / "b.txt").write_text("b\n")
    git("add", "b.txt")
    assert git("commit", "-q", "-m", "b", check=False).returncode != 0
    assert git("log", "--format=%s").stdout.split() == ["a"]

    # Installing again neither moves the shim onto the legacy hook nor rewrites it.
    run_snap("install")
    assert legacy.read_text().endswith("exit 7\n")


def test_a_chained_pre_push_hook_gets_the_same_stdin(
    git_repo: Path, bare_origin: Path, tmp_path: Path
) -> None:
    log = tmp_path / "calls.log"
    recording_hook(hooks_dir(git_repo) / "pre-push", log)
    run_snap("install")
    (git_repo / "a.txt").write_text("a\n")
    git("add", "a.txt")
    git("commit", "-q", "-m", "a")
    head = git("rev-parse", "HEAD").stdout.strip()
    git("push", "-q", "origin", "main")
    lines = log.read_text().splitlines()
    assert lines[0] == f"pre-push.legacy args=[origin {bare_origin}]"
    assert lines[1] == f"refs/heads/main {head} refs/heads/main {'0' * 40}"
    assert git("rev-parse", "main", cwd=bare_origin).stdout.strip() == head


def test_uninstall_removes_only_its_shims_and_restores_what_it_moved(
    git_repo: Path, tmp_path: Path
) -> None:
    log = tmp_path / "calls.log"
    foreign = recording_hook(hooks_dir(git_repo) / "post-merge", log)
    original = foreign.read_bytes()
    run_snap("install")
    # Someone replaces our pre-push shim with their own hook after the install.
    theirs = write_hook(hooks_dir(git_repo) / "pre-push", "exit 0\n")
    out = run_snap("uninstall", check=False)
    assert out.returncode == 1  # one hook skipped
    assert "restored  post-merge" in out.stdout
    assert "skipped   pre-push" in out.stdout
    assert foreign.read_bytes() == original
    assert not (hooks_dir(git_repo) / "post-merge.legacy").exists()
    assert theirs.read_text() == "#!/bin/sh\nexit 0\n"
    assert not (hooks_dir(git_repo) / "pre-commit").exists()
    assert not (hooks_dir(git_repo) / "post-checkout").exists()
    again = run_snap("uninstall", "pre-commit").stdout
    assert "absent    pre-commit" in again


def test_an_earlier_shim_is_upgraded_and_an_edited_one_needs_force(git_repo: Path) -> None:
    d = hooks_dir(git_repo)
    d.mkdir(parents=True)
    write_hook(d / "pre-push", install.EARLIER["pre-push"][0][len("#!/bin/sh\n") :])
    edited = write_hook(
        d / "post-checkout",
        '# gitsnap-hook-version: 2\necho mine\nexec git snap hook post-checkout "$@"\n',
    )
    out = run_snap("install", check=False)
    assert out.returncode == 1
    assert "upgraded  pre-push" in out.stdout
    assert (d / "pre-push").read_text() == (PROJECT / "hooks" / "pre-push").read_text()
    assert "skipped   post-checkout" in out.stdout and "--force" in out.stdout
    assert "echo mine" in edited.read_text()
    assert not (d / "post-checkout.legacy").exists()  # ours, edited: never chained to itself
    forced = run_snap("install", "--force").stdout
    assert "upgraded  post-checkout" in forced
    assert install.classify(edited, "post-checkout") == "current"


def test_hooks_it_cannot_chain_are_skipped_with_a_hint(git_repo: Path) -> None:
    d = hooks_dir(git_repo)
    framework = write_hook(
        d / "pre-commit", "# File generated by pre-commit: https://pre-commit.com\nexit 0\n"
    )
    write_hook(d / "pre-push", "exit 0\n")
    write_hook(d / "pre-push.legacy", "exit 0\n")
    out = run_snap("install", check=False)
    assert out.returncode == 1
    assert "skipped   pre-commit" in out.stdout and ".pre-commit-config.yaml" in out.stdout
    assert "skipped   pre-push" in out.stdout and "pre-push.legacy exists too" in out.stdout
    assert "pre-commit.com" in framework.read_text()
    assert "installed post-checkout" in out.stdout


def test_our_shim_moved_aside_by_another_tool_is_not_run_twice(
    git_repo: Path, tmp_path: Path
) -> None:
    """pre-commit's own `install` moves an existing hook to .legacy: ours must not call itself."""
    run_snap("install", "pre-commit")
    d = hooks_dir(git_repo)
    (d / "pre-commit").replace(d / "pre-commit.legacy")
    log = tmp_path / "calls.log"
    write_hook(d / "pre-commit", f'echo outer >> "{log}"\nexec "$0.legacy" "$@"\n')
    (git_repo / "w.bin").write_bytes(b"\0" * 16)
    git("add", "w.bin")
    proc = git("commit", "-q", "-m", "w", check=False)
    assert proc.returncode == 1
    assert proc.stderr.count("w.bin is a raw weight file") == 1
    assert log.read_text() == "outer\n"


def test_init_installs_hooks_only_when_asked(git_repo: Path) -> None:
    out = run_snap("init").stdout
    assert "git snap install" in out
    assert not (hooks_dir(git_repo) / "pre-push").exists()
    out = run_snap("init", "--hooks").stdout
    assert all(f"installed {name}" in out for name in HOOKS)
    assert (hooks_dir(git_repo) / "pre-push").is_file()


def test_unknown_hook_names_are_a_usage_error(git_repo: Path) -> None:
    proc = run_snap("install", "pre-rebase", check=False)
    assert proc.returncode == 2
    assert "unknown hook" in proc.stderr
    proc = run_snap("hook", "nonsense", check=False)
    assert proc.returncode == 2


@pytest.mark.parametrize("name", HOOKS)
def test_every_shim_is_valid_sh(name: str) -> None:
    helpers.run(["sh", "-n", str(PROJECT / "hooks" / name)])
