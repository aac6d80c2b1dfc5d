"""Issue 3, point 6, at full size: a 4 GiB sharded checkpoint saves with peak RSS <= 300 MiB.

Opt-in (it writes the checkpoint and a copy in the store: 8 GiB of disk):

    GITSNAP_MEMORY_GIB=4 .venv/bin/python -m pytest -q -s \
        tests/formats/test_folder_sharded_memory.py

The everyday suite runs the same measurement at 512 MiB (tests/formats/test_folder_sharded.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.formats.test_folder_sharded import measure_save, write_big_sharded

GIB = os.environ.get("GITSNAP_MEMORY_GIB")


@pytest.mark.slow
@pytest.mark.skipif(not GIB, reason="set GITSNAP_MEMORY_GIB=4 to run the full-size measurement")
@pytest.mark.parametrize("workers", [None, 8])
def test_saving_gigabytes_keeps_peak_memory_under_300_mib(
    dvc_repo: Path, workers: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    total = int(float(GIB or 0) * (1 << 30))
    write_big_sharded(dvc_repo / "big", total_bytes=total, shard_bytes=1 << 30)
    if workers is not None:  # what an 8-core machine would run
        monkeypatch.setenv("GITSNAP_WORKERS", str(workers))
    peak, size, written, seconds = measure_save(dvc_repo, "big")
    print(f"\nsaved {size / (1 << 30):.2f} GiB in {seconds:.1f} s, workers={workers or 'default'}, "
          f"wrote {written / (1 << 30):.2f} GiB, peak RSS {peak / (1 << 20):.0f} MiB")  # fmt: skip
    assert size >= total
    assert peak <= 300 << 20
