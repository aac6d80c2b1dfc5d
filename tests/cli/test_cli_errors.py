"""The one error funnel: wording, exit codes and the traceback switch, for every route.

Routes: the typer app (``log``, usage errors), the fast paths (``status``,
``diff``) and the hooks (``git snap hook NAME``), through the real ``git snap``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gitsnap.cli import funnel
from gitsnap.cli.invocation import Invocation
from gitsnap.errors import PathError
from tests.helpers import VENV_BIN, run_snap

NOT_A_REPO = "error: not a git repository: {}\nhint: run gitsnap inside a git working tree"


@pytest.fixture(autouse=True)
def _no_traceback_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITSNAP_TRACEBACK", raising=False)


@pytest.mark.parametrize(
    "argv",
    [["status"], ["status", "--json"], ["diff"], ["diff", "--json"], ["log"], ["status", "x"]],
    ids=["fast-status", "fast-status-json", "fast-diff", "fast-diff-json", "typer", "typer-status"],
)
def test_not_a_git_repository_reads_the_same_on_every_route(
    tmp_path: Path, argv: list[str]
) -> None:
    proc = run_snap(*argv, cwd=tmp_path, check=False)
    assert proc.returncode == 128
    assert proc.stderr.startswith(NOT_A_REPO.format(tmp_path)), proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["frobnicate"], "error: No such command 'frobnicate'."),
        (["show"], "error: Missing argument '[REV:]PATH'."),
        (["diff", "--top", "0"], "error: Invalid value for '--top': 0 is not in the range x>=1."),
        (["save"], "error: which checkpoint?"),
    ],
)
def test_usage_errors_are_exit_2_in_our_wording(
    tmp_path: Path, argv: list[str], message: str
) -> None:
    proc = run_snap(*argv, cwd=tmp_path, check=False)
    assert proc.returncode == 2
    first, hint = proc.stderr.splitlines()
    assert first == message
    assert hint.startswith("hint: git snap")


def test_a_hook_error_has_the_same_wording_tagged_for_git(git_repo: Path) -> None:
    proc = run_snap("hook", "nosuch", check=False)
    assert proc.returncode == 2
    assert proc.stderr == (
        "gitsnap: error: unknown hook 'nosuch'\n"
        "hint: one of: pre-commit, pre-push, post-checkout, post-merge, post-commit, "
        "post-rewrite, "
        "check-pointers, no-raw-weights, push-weights, restore\n"
    )
    proc = run_snap("hook", check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("gitsnap: error: which hook?\nhint: ")


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["--traceback", "log"], {}),
        (["log"], {"GITSNAP_TRACEBACK": "1"}),
        (["--traceback", "status"], {}),
        (["status"], {"GITSNAP_TRACEBACK": "1"}),
        (["--traceback", "diff"], {}),
    ],
)
def test_traceback_flag_and_env_mean_the_same(
    tmp_path: Path, argv: list[str], env: dict[str, str]
) -> None:
    proc = run_snap(*argv, cwd=tmp_path, check=False, env=env)
    assert proc.returncode == 128
    assert proc.stderr.startswith("Traceback (most recent call last):\n")
    assert "gitsnap.errors.NotAGitRepository: not a git repository" in proc.stderr
    # the message and the exit code are those without the switch
    assert proc.stderr.endswith(run_snap(*argv[-1:], cwd=tmp_path, check=False).stderr)


def test_traceback_switch_for_hooks(git_repo: Path) -> None:
    for argv, env in (
        (["--traceback", "hook", "nosuch"], {}),
        (["hook", "nosuch"], {"GITSNAP_TRACEBACK": "1"}),
    ):
        proc = run_snap(*argv, check=False, env=env)
        assert proc.returncode == 2
        assert proc.stderr.startswith("Traceback (most recent call last):\n")
        assert proc.stderr.endswith(
            "gitsnap: error: unknown hook 'nosuch'\n" + proc.stderr.splitlines(True)[-1]
        )
    assert (
        "Traceback"
        not in run_snap("hook", "nosuch", check=False, env={"GITSNAP_TRACEBACK": "0"}).stderr
    )


# A terminal's ^C reaches a process whose SIGINT is the default; a suite started as a
# background job inherits SIGINT ignored, which Python keeps: set the default, then exec.
_DEFAULT_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def _interrupted(argv: list[str]) -> tuple[int, str]:
    """Start ``git-snap ARGV``, press ^C once it waits, return (exit code, stderr)."""
    git_snap = str(VENV_BIN / "git-snap")
    proc = subprocess.Popen(
        [sys.executable, "-c", _DEFAULT_SIGINT, git_snap, *argv],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # It is waiting once the kernel says it sleeps on the pipe or the FIFO (start-up may
    # take seconds on a loaded machine with nothing compiled yet).
    wchan = Path(f"/proc/{proc.pid}/wchan")
    deadline = time.monotonic() + 60
    while wchan.read_text() not in {"anon_pipe_read", "pipe_read", "wait_for_partner"}:
        assert proc.poll() is None and time.monotonic() < deadline, "it never waited"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def test_interrupt_is_exit_130_in_a_hook(git_repo: Path) -> None:
    # pre-push waits for git's ref lines on stdin
    assert _interrupted(["hook", "pre-push", "origin", "/nowhere"]) == (
        130,
        "gitsnap: interrupted\n",
    )


def test_interrupt_is_exit_130_in_a_typer_command(git_repo: Path) -> None:
    # textconv opens the file git names: a FIFO without a writer waits
    os.mkfifo(git_repo / "waits.snap")
    assert _interrupted(["textconv", "waits.snap"]) == (130, "interrupted\n")


def test_an_unexpected_exception_is_an_internal_error(capsys: pytest.CaptureFixture[str]) -> None:
    route = funnel.Route(lambda: int("seven"), what="the test")
    assert funnel.run(route, traceback=False, rerun="git snap diff a b") == funnel.INTERNAL_ERROR
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "error: internal error in the test: ValueError: invalid literal for int() "
        "with base 10: 'seven'\n"
        "hint: this is a bug in gitsnap: run it again with the traceback shown "
        "(GITSNAP_TRACEBACK=1 git snap diff a b) and report what it prints\n"
    )
    assert funnel.run(route, traceback=True, rerun="x") == funnel.INTERNAL_ERROR
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):\n") and "ValueError" in err


def test_an_error_of_a_hook_after_gits_work_warns_and_exits_0(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def fail() -> int:
        raise PathError("m.safetensors: no such file", hint="git snap pull")

    route = funnel.Route(fail, tag="gitsnap: ", error_exit=0)
    assert funnel.run(route, traceback=False, rerun="x") == 0
    assert (
        capsys.readouterr().err
        == "gitsnap: error: m.safetensors: no such file\nhint: git snap pull\n"
    )


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        (["diff", "a", "--", "p", "--", "cmd"], {}, (("diff", "a"), ("p", "--", "cmd"), False)),
        (["--traceback", "log", "--traceback"], {}, (("log", "--traceback"), None, True)),
        (["status"], {"GITSNAP_TRACEBACK": "1"}, (("status",), None, True)),
        (["status"], {"GITSNAP_TRACEBACK": "0"}, (("status",), None, False)),
        (["--", "--traceback"], {}, ((), ("--traceback",), False)),
    ],
)
def test_the_command_line_is_split_once(
    argv: list[str], environ: dict[str, str], expected: tuple[object, ...]
) -> None:
    inv = Invocation.parse(argv, environ)
    assert (inv.args, inv.rest, inv.traceback) == expected
    # the words as given, "--" kept, minus the global --traceback
    assert inv.words == (argv[1:] if argv[0] == "--traceback" else argv)


def test_a_reader_that_goes_away_is_exit_141_without_a_word(
    capsys: pytest.CaptureFixture[str],
) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # git snap log | head: head has exited

    def write() -> int:
        with open(write_end, "wb") as out:
            out.write(b"x" * 10)
            out.flush()
        return 0

    assert funnel.run(funnel.Route(write), traceback=False, rerun="x") == funnel.BROKEN_PIPE
    assert capsys.readouterr() == ("", "")


def test_a_columns_value_that_is_no_number_is_not_a_crash(dvc_repo: Path) -> None:
    import numpy as np

    from tests.helpers import write_safetensors

    write_safetensors(dvc_repo / "m.safetensors", {"w": np.zeros(4, dtype=np.float32)})
    run_snap("save", "m.safetensors")
    write_safetensors(dvc_repo / "m.safetensors", {"w": np.ones(4, dtype=np.float32)})
    proc = run_snap("diff", env={"COLUMNS": "wide"})
    assert "m.safetensors" in proc.stdout
