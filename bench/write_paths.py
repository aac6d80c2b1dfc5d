"""How expensive is it to copy a checkpoint's bytes into new object files, by write path?

    .venv/bin/python bench/write_paths.py FILE [--rounds 2]

Copies FILE into 8 MiB object files (one per 8 MiB, like gitsnap's store)
in a temp folder next to it, four ways, alternating, and prints wall and CPU
time of each: ``preadv`` + one 8 MiB ``write`` per object (what
``gitsnap.store.ObjectWriter`` does today), the same with the write split in
1 MiB or 256 KiB calls, and ``os.copy_file_range`` (an in-kernel copy; a
reflink on XFS / btrfs; ``dvc add`` uses ``sendfile``, its cousin).
Every path moves the same bytes into the same number of new page-cache
pages, so differences are the kernel's cost per path on this machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

OBJECT = 8 * 1024 * 1024


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def copy(fd: int, size: int, out: Path, how: str, buf: memoryview) -> None:
    off = i = 0
    while off < size:
        n = min(OBJECT, size - off)
        dfd = os.open(out / f"o{i}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            if how == "copy_file_range":
                done = 0
                while done < n:
                    done += os.copy_file_range(fd, dfd, n - done, off + done)
            else:
                piece = {"write 8 MiB": OBJECT, "write 1 MiB": 1 << 20, "write 256 KiB": 256 << 10}[
                    how
                ]
                view = buf[:n]
                got = 0
                while got < n:
                    got += os.preadv(fd, [view[got:]], off + got)
                p = 0
                while p < n:
                    p += os.write(dfd, view[p : min(n, p + piece)])
        finally:
            os.close(dfd)
        off += n
        i += 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("file", type=Path)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    size = args.file.stat().st_size
    fd = os.open(args.file, os.O_RDONLY)
    buf = memoryview(bytearray(OBJECT))
    ways = ("write 8 MiB", "write 1 MiB", "write 256 KiB", "copy_file_range")
    results: dict[str, list[tuple[float, float]]] = {w: [] for w in ways}
    for _ in range(args.rounds):
        for how in ways:
            out = Path(tempfile.mkdtemp(prefix="write-paths-", dir=args.file.parent))
            os.sync()
            t, c = time.perf_counter(), _cpu()
            copy(fd, size, out, how, buf)
            results[how].append((time.perf_counter() - t, _cpu() - c))
            shutil.rmtree(out)
    objects = (size + OBJECT - 1) // OBJECT
    print(f"{size / 2**30:.2f} GiB into {objects} objects; best of {args.rounds}:")
    for how, rs in results.items():
        wall, cpu = min(rs)
        print(f"  {how:16} wall {wall:6.2f} s   cpu {cpu:6.2f} s   (all: {rs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
