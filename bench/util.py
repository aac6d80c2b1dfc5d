"""Timing helpers for the benchmarks: run a real command, time it, read its peak memory.

Every timed command is a subprocess started the way a user starts it (the
console scripts of the project's virtualenv on ``PATH``). Its wall time and
CPU time are taken around ``Popen`` + ``os.wait4``.

Peak memory comes from GNU time (``/usr/bin/time -f %M``), which forks the
command from its own tiny process and reports the largest ``ru_maxrss`` of
the command and the descendants it waited for (``git snap`` is git running
the ``git-snap`` python process): no polling, no short peak missed. The
``ru_maxrss`` that ``wait4`` returns to *us* would be wrong: Python starts
children with ``vfork``, and Linux charges the parent's high-water mark
(this process generated gigabytes of test data) to a vforked child at
``exec``. Without GNU time the wait4 figure is kept and flagged.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent  # bench/run.py runs with the project's .venv python
BUF = 8 * 1024 * 1024
MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass(frozen=True)
class Proc:
    argv: tuple[str, ...]
    wall: float  # seconds
    cpu: float  # user + sys seconds of the child and the descendants it waited for
    maxrss: int  # bytes (see the module docstring)
    others: (
        float  # CPU used by *other* processes during the run, in cores (0 = the machine was ours)
    )
    returncode: int
    stdout: str
    stderr: str


GNU_TIME = "/usr/bin/time" if Path("/usr/bin/time").exists() else None
MAXRSS_EXACT = GNU_TIME is not None


class CommandFailed(RuntimeError):
    pass


def child_env(home: Path) -> dict[str, str]:
    """The environment of every benchmarked command.

    * ``PYTHONDONTWRITEBYTECODE`` is dropped: real users have ``.pyc`` caches, and
      without them every run would re-compile dvc's and typer's modules.
    * the virtualenv's ``bin`` comes first on ``PATH`` (``git snap`` finds ``git-snap``);
    * HOME, git's system config and DVC's global / system / site-cache dirs point
      into the run's temp dir, so neither side reads a developer's settings or
      DVC's hash database from an earlier run (``/var/tmp/dvc``);
    * DVC's usage analytics are off (they fork a background reporter; nothing
      comparable exists on the gitsnap side).
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(VENV_BIN.parent)
    env["HOME"] = str(home)
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    env["DVC_NO_ANALYTICS"] = "1"
    env["DVC_GLOBAL_CONFIG_DIR"] = str(home / "dvc-global")
    env["DVC_SYSTEM_CONFIG_DIR"] = str(home / "dvc-system")
    env["DVC_SITE_CACHE_DIR"] = str(home / "dvc-site-cache")
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        env.pop(var, None)
    return env


def run(
    argv: Sequence[str | os.PathLike[str]],
    cwd: Path,
    env: Mapping[str, str],
    *,
    check: bool = True,
    stdout_to_null: bool = False,
) -> Proc:
    """Run ``argv`` to completion; return wall time, peak RSS and output.

    Output goes to temp files rather than pipes, so a chatty child can never
    block on a full pipe while we sit in ``wait4``.
    """
    args = tuple(str(a) for a in argv)
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r", prefix="rss-") as rss,
    ):
        stdout = subprocess.DEVNULL if stdout_to_null else out
        launch = [GNU_TIME, "-f", "%M", "-o", rss.name, *args] if GNU_TIME else list(args)
        busy_before = _cpu_busy_seconds()
        started = time.perf_counter()
        proc = subprocess.Popen(
            launch, cwd=cwd, env=dict(env), stdout=stdout, stderr=err, stdin=subprocess.DEVNULL
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        cpu = usage.ru_utime + usage.ru_stime
        others = max(0.0, (_cpu_busy_seconds() - busy_before - cpu) / wall) if wall > 0 else 0.0
        proc.returncode = os.waitstatus_to_exitcode(status)
        maxrss = usage.ru_maxrss * 1024  # Linux reports KiB
        if GNU_TIME:
            lines = rss.read().split()
            maxrss = int(lines[-1]) * 1024 if lines and lines[-1].isdigit() else -1
        out.seek(0)
        err.seek(0)
        result = Proc(
            argv=args,
            wall=wall,
            cpu=cpu,
            others=others,
            maxrss=maxrss,
            returncode=proc.returncode,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
        )
    if check and result.returncode != 0:
        raise CommandFailed(
            f"{' '.join(args)} (in {cwd}) exited {result.returncode}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    return result


def _cpu_busy_seconds() -> float:
    """Non-idle CPU seconds of the whole machine since boot (``/proc/stat``)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def cpu_busy(interval: float = 0.5) -> float:
    """How many cores the machine kept busy over ``interval`` seconds."""
    before = _cpu_busy_seconds()
    time.sleep(interval)
    return (_cpu_busy_seconds() - before) / interval


def wait_idle(max_wait: float, threshold: float = 0.3) -> float:
    """Wait (<= ``max_wait`` s) until others use < ``threshold`` cores; return the last reading.

    The benchmarks may share a machine with test suites and builds: a run that
    starts while two cores are busy measures the neighbours, not the tool.
    """
    deadline = time.monotonic() + max_wait
    busy = cpu_busy()
    while busy >= threshold and time.monotonic() < deadline:
        busy = cpu_busy(1.0)
    return busy


def prefault(nbytes: int) -> float:
    """Touch, then free, ``nbytes`` of anonymous memory; return the seconds it took.

    On a VM whose balloon driver hands free pages back to the host (virtio
    free-page reporting, as on this project's machines), the first write to
    such a page costs a host fault: writing 1 GiB of new page cache then takes
    ~4 s of system time instead of ~0.4 s, and whichever tool happens to run
    after an idle pause pays it. Touching and releasing the memory just before
    a timed command gives every command the resident free pages a normal
    machine has. Capped at what the kernel reports available minus 2 GiB.
    """
    import mmap

    import numpy as np

    nbytes = min(nbytes, max(0, _mem_available() - 2 * GiB))
    if nbytes <= 0:
        return 0.0
    started = time.perf_counter()
    m = mmap.mmap(-1, nbytes)
    a = np.frombuffer(m, dtype=np.uint8)
    a[:: mmap.PAGESIZE] = 1
    del a
    m.close()
    return time.perf_counter() - started


def _mem_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def sync() -> None:
    """Flush dirty pages left by the set-up (copies), so no writeback lands inside a timing."""
    os.sync()


def warm(path: Path) -> float:
    """Read ``path`` once so its pages are in the OS page cache; return the seconds it took."""
    buf = bytearray(BUF)
    view = memoryview(buf)
    started = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.readinto(view):
            pass
    return time.perf_counter() - started


def read_file(path: Path, update: object = None, bufsize: int = BUF) -> float:
    """Stream ``path`` through ``update(view)`` (or just read it); return the seconds."""
    buf = bytearray(bufsize)
    view = memoryview(buf)
    started = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(view):
            if update is not None:
                update(view[:n])  # type: ignore[operator]
    return time.perf_counter() - started


def md5_file(path: Path) -> float:
    h = hashlib.md5()
    return read_file(path, h.update)


def place(src: Path, dest: Path, *, age: float = 60.0) -> Path:
    """Copy a checkpoint into a repository (a real copy, never a link: DVC may move it).

    The copy's mtime is set ``age`` seconds into the past, so gitsnap's stat
    cache, which ignores files modified in the last 0.1 s ("racy clean"), can
    remember it.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.bench-tmp")
    shutil.copyfile(src, tmp)
    then = time.time() - age
    os.utime(tmp, (then, then))
    tmp.replace(dest)  # replaces a read-only file or a DVC link as well
    return dest


def git_repo(
    path: Path, env: Mapping[str, str], *, dvc: bool = True, remote: Path | None = None
) -> Path:
    """A fresh git repository (+ ``dvc init``, + an optional local-folder default DVC remote).

    Extension point for push / pull benchmarks: pass ``remote=<empty folder>``
    and both tools will find it as the default DVC remote ``storage``.
    """
    path.mkdir(parents=True, exist_ok=True)
    run(["git", "init", "-q", "-b", "main"], path, env)
    run(["git", "config", "user.email", "bench@example.invalid"], path, env)
    run(["git", "config", "user.name", "gitsnap bench"], path, env)
    if dvc:
        run(["dvc", "init", "-q"], path, env)
        if remote is not None:
            remote.mkdir(parents=True, exist_ok=True)
            run(["dvc", "remote", "add", "-d", "storage", str(remote)], path, env)
    return path


def commit_all(repo: Path, env: Mapping[str, str], message: str) -> None:
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-q", "--no-verify", "-m", message], repo, env)


def tree_size(path: Path) -> int:
    """Bytes in the regular files below ``path`` (0 if it does not exist)."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(dirpath, name)).st_size  # noqa: PTH118 (hot loop)
    return total


def median(samples: Sequence[float]) -> float:
    return float(statistics.median(samples))


def fmt_seconds(s: float) -> str:
    if s < 1:
        return f"{s * 1000:.0f} ms"
    return f"{s:.2f} s"


def fmt_bytes(n: float) -> str:
    if n >= GiB:
        return f"{n / GiB:.2f} GiB"
    if n >= MiB:
        return f"{n / MiB:.0f} MiB"
    return f"{n / 1024:.0f} KiB"


# ------------------------------------------------------------------ machine


def _first_line(cmd: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, check=False).stdout
    except OSError:
        return "?"
    return out.strip().splitlines()[0] if out.strip() else "?"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _filesystem(path: Path) -> str:
    """Type of the filesystem holding ``path`` (longest matching mount point)."""
    best, fstype = "", "?"
    target = str(path.resolve())
    try:
        for line in Path("/proc/self/mounts").read_text().splitlines():
            _, mnt, typ, *_ = line.split()
            if (target == mnt or target.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(
                best
            ):
                best, fstype = mnt, typ
    except OSError:
        pass
    return f"{fstype} (mounted at {best or '?'})"


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


def machine(tmp: Path) -> dict[str, object]:
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    head = _first_line(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = _first_line(["git", "-C", str(ROOT), "status", "--porcelain", "--", "gitsnap"]) != "?"
    return {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "ram_bytes": mem,
        "ram": fmt_bytes(mem),
        "filesystem": _filesystem(tmp),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "git": _first_line(["git", "--version"]),
        "versions": {
            d: _version(d)
            for d in ("gitsnap", "dvc", "dvc-data", "blake3", "numpy", "safetensors", "typer")
        },
        "gitsnap_commit": head + ("+dirty" if dirty else ""),
    }
