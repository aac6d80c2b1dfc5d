"""Where does ``git snap save`` spend its time? A cProfile run, bucketed by activity.

    .venv/bin/python bench/profile_save.py [--size-gib 1] [--data-dir bench/data] [--resave]

Saves a generated checkpoint (``bench/data.py``) into a fresh git + DVC repo,
in-process through the CLI entry point (``gitsnap.cli.main.main``), with the
same warm page cache and resident free memory as ``bench/run.py``. cProfile
only sees the thread it runs in, so the profiled save runs with **one worker**
(``snapshot.default_workers`` patched to 1): the buckets then add up to the
serial CPU cost of each activity. A second, unprofiled save with the default
workers gives the real wall and CPU time for comparison.

Buckets (by each function's own time, so nothing is counted twice):
start-up (imports), read (preadv), hash (BLAKE3; for segments up to 8 MiB the
hash runs in the ``blake3(view)`` constructor, which cProfile charges to
``_Reader.read``), write objects (temp file, write, chmod, rename, mkdir),
stats (gitsnap.stats + numpy), pointer (YAML), git (subprocesses), other.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import data, util
from bench.util import GiB

CKPT = "model.safetensors"

BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    # (bucket, substrings of "file:function" that select it); first match wins
    ("hash", ("blake3", "snapshot.py:read)", "snapshot.py:_stream)")),
    ("read", ("preadv", "readinto", "_pread_exact")),
    ("write objects", ("posix.write", "store.py", "tempfile.py", "fchmod", "posix.replace",
                       "posix.mkdir", "posix.open", "posix.close", "pathlib.py:mkdir",
                       "posix.unlink")),
    ("stats", ("stats.py", "numpy", "_methods.py", "_sum", "round_stat", "_rounded")),
    ("start-up (imports)", ("importlib", "marshal", "<frozen", "builtins.exec", "builtins.compile",
                            "builtins.__build_class__", "_compiler.py", "_parser.py", "sre_")),
    ("git subprocesses", ("subprocess", "_posixsubprocess", "gitio.py", "posix.waitpid",
                          "posix.read")),
    ("pointer (YAML)", ("yaml", "pointer.py")),
]  # fmt: skip


def bucket_of(key: tuple[str, int, str]) -> str:
    filename, _, func = key
    label = f"{Path(filename).name}:{func})" if filename != "~" else f"{func})"
    for name, needles in BUCKETS:
        if any(n in label or n in filename for n in needles):
            return name
    return "other"


def profile_save(
    repo: Path, workers: int | None, timer: str | None = None
) -> tuple[float, float, pstats.Stats | None]:
    """Run ``git snap save`` in-process in ``repo``; return (wall, cpu, stats when ``timer``).

    ``timer``: "wall" (perf_counter: includes time blocked or preempted) or
    "cpu" (process_time: only time on a CPU; with one worker that is this thread's).
    """
    from gitsnap import snapshot
    from gitsnap.cli.main import main

    if workers is not None:
        snapshot.default_workers = lambda: workers
    old = Path.cwd()
    os.chdir(repo)
    try:
        prof = None
        if timer is not None:
            prof = cProfile.Profile(time.process_time if timer == "cpu" else time.perf_counter)
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        if prof is not None:
            prof.enable()
        rc = main(["save", CKPT])
        if prof is not None:
            prof.disable()
        wall = time.perf_counter() - started
        r1 = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        os.chdir(old)
    if rc != 0:
        raise SystemExit(f"git snap save exited {rc}")
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return wall, cpu, pstats.Stats(prof) if prof is not None else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--size-gib", type=float, default=1.0)
    ap.add_argument(
        "--data-dir", type=Path, help="reuse generated checkpoints here (e.g. bench/data)"
    )
    ap.add_argument("--resave", action="store_true", help="profile the re-save of v2 after v1")
    ap.add_argument("--top", type=int, default=20, help="functions to list by own time")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="gitsnap-profile-"))
    env = util.child_env(tmp / "home")
    os.environ.update({k: env[k] for k in ("HOME", "GIT_CONFIG_NOSYSTEM", "DVC_NO_ANALYTICS")})
    ck = data.cached_versions(
        (args.data_dir or tmp / "data").resolve(), int(args.size_gib * GiB), with_v2=True
    )
    started = time.perf_counter()
    import gitsnap.cli.main  # noqa: F401  (start-up is measured apart: it is the same for every size)

    imports = time.perf_counter() - started
    results = {}
    runs = (
        ("1 worker, wall profile", 1, "wall"),
        ("1 worker, cpu profile", 1, "cpu"),
        ("default workers", None, None),
    )
    for n, (label, workers, timer) in enumerate(runs):
        repo = util.git_repo(tmp / f"repo{n}", env)
        path = util.place(Path(ck.v1), repo / CKPT)
        if args.resave:
            profile_save(repo, workers)
            util.place(Path(ck.v2 or ck.v1), path)
        util.sync()
        util.warm(path)
        util.prefault(2 * ck.size)
        results[label] = profile_save(repo, workers, timer)

    print(
        f"checkpoint: {util.fmt_bytes(ck.size)}, {ck.tensors} tensors; "
        f"{'re-save of v2' if args.resave else 'first save'}"
    )
    print(f"start-up (import gitsnap.cli.main, in-process): {imports:.3f} s")
    for label, (wall, cpu, _) in results.items():
        print(f"{label:20}: wall {wall:.2f} s, cpu {cpu:.2f} s (user+sys of this process)")
    tables: dict[str, dict[str, float]] = {}
    for label in ("1 worker, wall profile", "1 worker, cpu profile"):
        stats = results[label][2]
        assert stats is not None
        raw = stats.stats  # type: ignore[attr-defined]
        buckets: dict[str, float] = {}
        for key, (_, _, tottime, _, _) in raw.items():
            buckets[bucket_of(key)] = buckets.get(bucket_of(key), 0.0) + tottime
        tables[label] = buckets
    wall_b, cpu_b = tables["1 worker, wall profile"], tables["1 worker, cpu profile"]
    print(
        "\n1-worker profiles by activity (own time; wall includes waiting for a CPU or the disk):"
    )
    print(f"  {'activity':20} {'wall s':>8} {'cpu s':>8}")
    for name in sorted(wall_b, key=lambda k: -wall_b[k]):
        print(f"  {name:20} {wall_b[name]:8.3f} {cpu_b.get(name, 0.0):8.3f}")
    print(f"  {'total':20} {sum(wall_b.values()):8.3f} {sum(cpu_b.values()):8.3f}")
    for label in ("1 worker, wall profile", "1 worker, cpu profile"):
        out = io.StringIO()
        stats = results[label][2]
        assert stats is not None
        stats.stream = out  # type: ignore[attr-defined]
        stats.sort_stats("tottime").print_stats(args.top)
        print(f"\n--- {label}, top {args.top} by own time")
        print("\n".join(line for line in out.getvalue().splitlines()[4:] if line.strip()))
    util_rm(tmp)
    return 0


def util_rm(path: Path) -> None:
    import shutil

    for root, dirs, _ in os.walk(path):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)  # noqa: PTH101, PTH118
    shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
