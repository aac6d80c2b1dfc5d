"""Nothing a user saved is lost by a command that was not told to lose it (DESIGN D19).

Real repositories, the real ``git snap`` in a subprocess, real races: a file
renamed into place while ``save`` hashes it, a ``checkout`` killed with
SIGKILL half-way, a disk that fills up (a small tmpfs in a private mount
namespace).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import git, run_snap

MiB = 1024 * 1024


def commit_all(repo: Path, message: str) -> None:
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", message, cwd=repo)


def state_of(repo: Path, rel: str) -> str | None:
    proc = run_snap("status", "--json", cwd=repo, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    for entry in json.loads(proc.stdout)["entries"]:
        if entry["path"] == rel:
            return str(entry["state"])
    return None


def noise(size: int, seed: int) -> bytes:
    block = bytes((seed * 7 + i) % 251 for i in range(MiB))
    return (block * (size // MiB + 1))[:size]


def holders(path: Path) -> bool:
    """True when some process has ``path`` open (read from /proc, as lsof does)."""
    target = str(path)
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            for fd in fd_dir.iterdir():
                try:
                    if str(fd.readlink()) == target:
                        return True
                except OSError:
                    continue
        except OSError:
            continue
    return False


# ------------------------------------------------------------------ (a) stat cache


def test_file_renamed_in_while_save_hashes_is_never_recorded_clean(dvc_repo: Path) -> None:
    """``rsync -a``/``cp -p`` put a file with a preserved mtime in place mid-save.

    The save hashed the old inode's bytes; the stat cache must not then
    vouch for the new file (same size, same mtime): ``status`` must say
    modified and ``checkout`` must refuse to overwrite it.
    """
    ckpt = dvc_repo / "big.bin"
    ckpt.write_bytes(noise(96 * MiB, 1))
    run_snap("save", "big.bin")
    commit_all(dvc_repo, "v1")
    ckpt.write_bytes(noise(96 * MiB, 2))
    st = ckpt.stat()
    incoming = dvc_repo / "incoming.tmp"
    incoming.write_bytes(noise(96 * MiB, 3))
    os.utime(incoming, ns=(st.st_atime_ns, st.st_mtime_ns))  # what cp -p / rsync -a do
    proc = subprocess.Popen(
        ["git", "snap", "save", "big.bin"],
        cwd=dvc_repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "GITSNAP_WORKERS": "1"},
    )
    deadline = time.monotonic() + 60
    while not holders(ckpt) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    renamed_mid_save = proc.poll() is None
    incoming.replace(ckpt)  # same size, same mtime, other bytes, other inode
    _, err = proc.communicate(timeout=120)
    assert renamed_mid_save, "the save finished before the rename: make the file bigger"
    if proc.returncode != 0:
        assert proc.returncode == 3 and b"changed while it was being read" in err, err
    assert state_of(dvc_repo, "big.bin") == "modified"
    before = ckpt.read_bytes()
    refusal = run_snap("checkout", "HEAD", "big.bin", check=False)
    assert refusal.returncode == 3, refusal.stdout + refusal.stderr
    assert "not saved" in refusal.stderr
    assert ckpt.read_bytes() == before


# ------------------------------------------------------------------ (b) uncommitted pointer


def test_checkout_rev_keeps_a_saved_but_uncommitted_snapshot(dvc_repo: Path) -> None:
    ckpt = dvc_repo / "m.bin"
    ckpt.write_bytes(noise(MiB, 1))
    run_snap("save", "m.bin")
    commit_all(dvc_repo, "v1")
    ckpt.write_bytes(noise(MiB, 2))
    run_snap("save", "m.bin", "-m", "three days of training")
    v2_pointer = (dvc_repo / "m.bin.snap").read_bytes()

    refusal = run_snap("checkout", "HEAD", check=False)
    assert refusal.returncode == 3, refusal.stdout + refusal.stderr
    assert "no commit has" in refusal.stderr and "--force" in refusal.stderr
    assert (dvc_repo / "m.bin.snap").read_bytes() == v2_pointer
    assert ckpt.read_bytes() == noise(MiB, 2)

    forced = run_snap("checkout", "--force", "HEAD")
    assert "dropped" in forced.stdout and "uncommitted snapshot" in forced.stdout
    assert ckpt.read_bytes() == noise(MiB, 1)


def test_checkout_rev_replaces_a_committed_pointer_without_force(dvc_repo: Path) -> None:
    ckpt = dvc_repo / "m.bin"
    ckpt.write_bytes(noise(MiB, 1))
    run_snap("save", "m.bin")
    commit_all(dvc_repo, "v1")
    ckpt.write_bytes(noise(MiB, 2))
    run_snap("save", "m.bin")
    commit_all(dvc_repo, "v2")
    proc = run_snap("checkout", "HEAD~1")
    assert "dropped" not in proc.stdout
    assert ckpt.read_bytes() == noise(MiB, 1)


# ------------------------------------------------------------------ (c) foreign folder entries


def _hf_clone(folder: Path) -> None:
    """A model folder that is itself a git clone with an unpushed commit."""
    folder.mkdir()
    (folder / "config.json").write_text('{"hidden": 8}')
    (folder / "model.bin").write_bytes(noise(MiB, 1))
    (folder / "extra.bin").write_bytes(noise(4096, 5))
    git("init", "-q", folder)
    git("add", "config.json", cwd=folder)
    git("commit", "-q", "-m", "unpushed work", cwd=folder)


def test_folder_restore_keeps_a_nested_git_and_unknown_entries(dvc_repo: Path) -> None:
    hf = dvc_repo / "hf"
    _hf_clone(hf)
    nested_head = git("rev-parse", "HEAD", cwd=hf).stdout
    run_snap("save", "hf")
    commit_all(dvc_repo, "v1")
    (hf / "model.bin").write_bytes(noise(MiB, 2))
    (hf / "extra.bin").unlink()
    (hf / "scratch.gitsnap-tmp").write_text("not ours to delete")
    os.mkfifo(hf / "pipe")
    run_snap("save", "hf")
    commit_all(dvc_repo, "v2")

    run_snap("checkout", "HEAD~1")
    assert (hf / "model.bin").read_bytes() == noise(MiB, 1)
    assert (hf / "extra.bin").exists()
    assert git("rev-parse", "HEAD", cwd=hf).stdout == nested_head
    assert git("log", "--format=%s", cwd=hf).stdout.strip() == "unpushed work"
    assert (hf / "scratch.gitsnap-tmp").read_text() == "not ours to delete"
    assert (hf / "pipe").is_fifo()


def test_status_lists_the_entries_of_a_folder_that_no_snapshot_holds(dvc_repo: Path) -> None:
    """Unsaved, so shown (D19): a nested .git and unknown files; the checkpoint itself is clean."""
    hf = dvc_repo / "hf"
    _hf_clone(hf)
    run_snap("save", "hf")
    (hf / "notes.gitsnap-tmp").write_text("not ours")

    shown = run_snap("status").stdout
    assert "entries no snapshot has" in shown and ".git" in shown
    assert "notes.gitsnap-tmp" in shown
    [entry] = json.loads(run_snap("status", "--json").stdout)["entries"]
    assert entry["state"] == "clean"
    assert sorted(entry["unowned"]) == [".git", "notes.gitsnap-tmp"]


def test_folder_restore_refuses_to_remove_a_foreign_entry_without_force(dvc_repo: Path) -> None:
    hf = dvc_repo / "hf"
    _hf_clone(hf)
    run_snap("save", "hf")
    commit_all(dvc_repo, "v1")
    (hf / "extra.bin").unlink()
    (hf / "extra.bin").symlink_to("does-not-exist")  # not a file gitsnap saves
    run_snap("save", "hf")
    commit_all(dvc_repo, "v2")

    refusal = run_snap("checkout", "HEAD~1", check=False)
    assert refusal.returncode == 3, refusal.stdout + refusal.stderr
    assert "extra.bin" in refusal.stderr and "--force" in refusal.stderr
    assert (hf / "extra.bin").is_symlink()

    forced = run_snap("checkout", "--force", "HEAD~1")
    assert "dropped" in forced.stdout and "extra.bin" in forced.stdout
    assert (hf / "extra.bin").read_bytes() == noise(4096, 5)
    assert (hf / ".git").is_dir()


# ------------------------------------------------------------------ (d) killed runs


def test_killed_checkout_leaves_nothing_after_the_next_command(dvc_repo: Path) -> None:
    ckpt = dvc_repo / "big.bin"
    ckpt.write_bytes(noise(128 * MiB, 4))
    run_snap("save", "big.bin")
    commit_all(dvc_repo, "v1")
    area = Path(git("rev-parse", "--absolute-git-dir", cwd=dvc_repo).stdout.strip()) / "gitsnap"
    killed_mid_restore = False
    for _ in range(5):
        ckpt.unlink()
        proc = subprocess.Popen(
            ["git", "snap", "checkout", "big.bin"],
            cwd=dvc_repo,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "GITSNAP_WORKERS": "1"},
            start_new_session=True,  # its own process group: we kill exactly what we started
        )
        while proc.poll() is None and not list((area / "tmp").glob("*.gitsnap-tmp")):
            time.sleep(0.001)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            killed_mid_restore = bool(list((area / "tmp").glob("*.gitsnap-tmp")))
        if killed_mid_restore:
            break
        run_snap("checkout", "--force", "big.bin")
    assert killed_mid_restore, "every checkout finished before it could be killed"
    # the debris is below .git: git add -A never sees it
    git("add", "-A", cwd=dvc_repo)
    staged = git("diff", "--cached", "--name-only", cwd=dvc_repo).stdout
    assert "gitsnap-tmp" not in staged
    assert not [p for p in dvc_repo.rglob("*.gitsnap-*") if ".git" not in p.parts]

    run_snap("status", check=False)  # any next command sweeps what the dead run left
    assert not list((area / "tmp").glob("*.gitsnap-*"))
    assert not list((area / "tmp").glob("*.lock"))
    run_snap("checkout", "big.bin")
    assert ckpt.read_bytes() == noise(128 * MiB, 4)


def test_a_running_checkout_keeps_its_temp_files_while_another_command_sweeps(
    dvc_repo: Path,
) -> None:
    """The sweep takes only what dead runs left: a live run holds its marker's lock."""
    from gitsnap.fsutil import Scratch, sweep

    area = dvc_repo / ".git" / "gitsnap" / "tmp"
    with Scratch(area) as scratch:
        live = scratch.path(dvc_repo / "x.bin")
        live.write_bytes(b"in progress")
        code = "import sys; from gitsnap.fsutil import sweep; print(sweep(__import__('pathlib').Path(sys.argv[1])))"  # noqa: E501
        other = subprocess.run(
            [sys.executable, "-c", code, str(area)], capture_output=True, text=True, check=True
        )
        assert other.stdout.strip() == "0"
        assert live.read_bytes() == b"in progress"
    live.unlink()
    assert sweep(area) == 0


# ------------------------------------------------------------------ full disk, read-only cache


def test_status_works_when_the_stat_cache_cannot_be_written(dvc_repo: Path) -> None:
    ckpt = dvc_repo / "m.bin"
    ckpt.write_bytes(noise(MiB, 1))
    run_snap("save", "m.bin")
    gitsnap_dir = dvc_repo / ".git" / "gitsnap"
    for p in sorted(gitsnap_dir.rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    gitsnap_dir.rmdir()
    gitsnap_dir.write_text("not a folder: nothing below it can be written")
    ckpt.write_bytes(noise(MiB, 2))
    assert state_of(dvc_repo, "m.bin") == "modified"
    ckpt.write_bytes(noise(MiB, 1))
    assert state_of(dvc_repo, "m.bin") == "clean"


FULL_DISK_SCRIPT = r"""
set -e
mount -t tmpfs -o size=24m tmpfs "$MNT"
cd "$MNT"
git init -q repo && cd repo
git commit -q --allow-empty -m init
"$PYTHON" -m dvc init -q
head -c 3000000 /dev/urandom > small.bin
git snap save small.bin > /dev/null
head -c 6000000 /dev/urandom > big.bin
cp small.bin small.copy
# fill the disk to the last block
dd if=/dev/zero of=filler bs=64k 2>/dev/null || true
echo "== save"
git snap save big.bin && echo "save-exit 0" || echo "save-exit $?"
test ! -e big.bin.snap && echo "no pointer written"
echo "== checkout"
rm -f small.bin
dd if=/dev/zero of=filler2 bs=64k 2>/dev/null || true
git snap checkout small.bin && echo "checkout-exit 0" || echo "checkout-exit $?"
test ! -e small.bin && echo "workspace untouched"
echo "== status"
git snap status && echo "status-exit 0" || echo "status-exit $?"
ls -a .git/gitsnap/tmp 2>/dev/null | grep -c gitsnap-tmp || true
"""


def test_a_full_disk_is_an_error_with_a_hint_and_leaves_the_workspace_untouched(
    dvc_repo: Path, tmp_path: Path
) -> None:
    """A 24 MiB tmpfs filled to the last block, in a private mount namespace."""
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    script = tmp_path / "full.sh"
    script.write_text(FULL_DISK_SCRIPT)
    proc = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", str(script)],
        env={**os.environ, "MNT": str(mnt), "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out, err = proc.stdout, proc.stderr
    assert proc.returncode == 0, out + err
    assert "internal error" not in err and "Traceback" not in err, err
    save_part = out.split("== save")[1].split("== checkout")[0]
    assert "save-exit 3" in save_part and "no pointer written" in save_part, out + err
    checkout_part = out.split("== checkout")[1].split("== status")[0]
    assert "checkout-exit 3" in checkout_part and "workspace untouched" in checkout_part, out + err
    assert err.count("disk is full") >= 2, err
    assert "left untouched" in err and "hint: free some space" in err, err
    status_part = out.split("== status")[1]
    assert "status-exit 0" in status_part or "status-exit 1" in status_part, out + err
    assert status_part.strip().splitlines()[-1] == "0", out


def test_sweep_removes_dead_runs_debris_and_only_gitsnap_names(tmp_path: Path) -> None:
    """A dead run's marker and its temp files go; other names and fresh markers stay."""
    from gitsnap.fsutil import Scratch, sweep

    area = tmp_path / "git" / "gitsnap" / "tmp"
    # /dev/shm is another filesystem (tmpfs) on Linux: there the temp file goes next to its
    # destination, and only the marker names it.
    elsewhere = Path("/dev/shm") / f"gitsnap-test-{os.getpid()}-{time.monotonic_ns()}"
    elsewhere.mkdir()
    code = (
        "import os, sys, pathlib\n"
        "from gitsnap.fsutil import Scratch\n"
        "s = Scratch(pathlib.Path(sys.argv[1])).__enter__()\n"
        "for dest in sys.argv[2:]:\n"
        "    s.path(pathlib.Path(dest)).write_bytes(b'debris')\n"
        "os._exit(0)  # dies holding its marker, like a SIGKILL: no clean exit\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(area), str(area / "x"), str(elsewhere / "y")], check=True
    )
    assert list(area.glob("*.gitsnap-tmp")) and list(area.glob("*.lock"))
    (area / "notes.txt").write_text("not gitsnap's")
    stale, fresh = area / ".marker.old", area / ".marker.new"
    stale.write_text("")
    fresh.write_text("")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    assert list(elsewhere.glob(".*.gitsnap-tmp"))
    assert sweep(area) >= 2
    assert sorted(p.name for p in area.iterdir()) == [".marker.new", "notes.txt"]
    assert list(elsewhere.iterdir()) == []
    elsewhere.rmdir()
    with Scratch(area) as scratch:
        assert scratch.path(area / "z").parent == area


def test_pwrite_all_writes_more_pieces_than_one_call_takes(tmp_path: Path) -> None:
    """The restore's coalesced writes: 3,000 pieces (more than IOV_MAX per call) of varied
    sizes land one after another at the offset, byte for byte."""
    from gitsnap.fsutil import pwrite_all

    pieces = [memoryview(bytes([i % 251]) * (1 + i % 37)) for i in range(3000)]
    path = tmp_path / "out"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        pwrite_all(fd, pieces, 5)
    finally:
        os.close(fd)
    assert path.read_bytes() == b"\0" * 5 + b"".join(bytes(p) for p in pieces)
