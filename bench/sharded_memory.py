"""Peak memory saving a multi-GiB sharded safetensors folder (four 1 GiB shards by default).

The everyday suite runs the same measurement at 512 MiB
(tests/formats/test_folder_sharded.py::test_saving_a_sharded_checkpoint_keeps_memory_flat);
this is the full size, with the default workers and with 8 (what an 8-core
machine runs). It writes the checkpoint and its copy in the store: 2 x SIZE
of disk.

    .venv/bin/python bench/sharded_memory.py              # 4 GiB
    .venv/bin/python bench/sharded_memory.py --gib 1

Prints one line per run and one JSON line; the budget is 300 MiB of peak RSS.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import util
from tests.formats.test_folder_sharded import measure_save, write_big_sharded

BUDGET = 300 << 20


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gib", type=float, default=4.0, help="checkpoint size (default 4)")
    args = ap.parse_args()
    total = int(args.gib * (1 << 30))
    results = []
    with tempfile.TemporaryDirectory(prefix="gitsnap-bench-") as tmp:
        env = util.child_env(Path(tmp))
        for workers in (None, 8):
            repo = util.git_repo(Path(tmp) / f"repo-{workers or 'default'}", env)
            util.commit_all(repo, env, "init")
            write_big_sharded(repo / "big", total_bytes=total, shard_bytes=1 << 30)
            if workers is not None:
                env["GITSNAP_WORKERS"] = str(workers)
            peak, size, written, seconds = measure_save(repo, "big", env)
            results.append({"workers": workers, "size": size, "written": written,
                            "seconds": round(seconds, 2), "peak_rss": peak})  # fmt: skip
            shown = workers or "default"
            print(f"saved {util.fmt_bytes(size)} in {seconds:.1f} s, workers={shown}: "
                  f"peak RSS {util.fmt_bytes(peak)} (budget {util.fmt_bytes(BUDGET)})")  # fmt: skip
    print(json.dumps({"bench": "sharded_memory", "runs": results}))
    return 0 if all(r["peak_rss"] <= BUDGET for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
