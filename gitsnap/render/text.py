"""Plain-text output for people. No rich here: these run on the fast paths."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from gitsnap.api import CheckoutEntry, InitResult, LogEntry, SaveResult, ShowResult, StatusResult


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def fmt_mapping(m: dict[str, Any]) -> str:
    return "  ".join(f"{k}={fmt_value(v)}" for k, v in m.items())


def init(r: InitResult) -> str:
    lines = [f"{'initialized DVC and ' if r.dvc_initialized else ''}gitsnap ready in {r.root}"]
    lines.append(f"objects go to {r.cache_dir}/gitsnap/blake3")
    if r.remote:
        lines.append(f"default remote: {r.remote}")
    if r.dvc_initialized:
        lines.append("next: git add .dvc .dvcignore && git commit -m 'set up gitsnap'")
    return "\n".join(lines)


def save(results: Sequence[SaveResult]) -> str:
    lines = []
    for r in results:
        if not r.changed:
            lines.append(f"unchanged {r.path} (snapshot {r.snapshot_id[:12]})")
            continue
        lines.append(
            f"saved {r.path} -> {r.pointer}  snapshot {r.snapshot_id[:12]}, {r.tensors} tensors, "
            f"{human_bytes(r.size)}; stored {r.objects_written} new objects "
            f"({human_bytes(r.bytes_written)}) in {r.seconds:.2f} s"
        )
    return "\n".join(lines)


def status(r: StatusResult) -> str:
    if not r.entries:
        return "no saved checkpoints (git snap save PATH records one)"
    groups: list[tuple[str, str, list[str]]] = [
        ("Checkpoints changed since their pointer:", 'use "git snap save <path>..." to record them, '
         'or "git snap checkout --force <path>" to discard', [
            f"modified: {e.path}" for e in r.entries if e.state == "modified"]),
        ("Pointers whose checkpoint is absent:", 'use "git snap checkout" to restore them', [
            f"absent:   {e.path}" for e in r.entries if e.state == "absent"]),
        ("Pointers whose objects are missing from the local store:", 'use "git snap pull" to fetch them', [
            f"{e.path} ({e.missing_objects} of {e.total_objects} objects missing)"
            for e in r.entries if e.missing_objects]),
    ]  # fmt: skip
    lines = []
    for title, hint, items in groups:
        if items:
            lines += [title, f"  ({hint})", *(f"\t{i}" for i in items), ""]
    clean = sum(1 for e in r.entries if e.state == "clean" and not e.missing_objects)
    if not lines:
        return f"clean: {clean} checkpoint{'s' if clean != 1 else ''} match their pointers"
    if clean:
        lines.append(f"{clean} other checkpoint{'s' if clean != 1 else ''} clean")
    return "\n".join(lines).rstrip()


def checkout(results: Sequence[CheckoutEntry]) -> str:
    return "\n".join(
        f"{'restored' if r.action == 'restored' else 'up to date'} {r.target} "
        f"(snapshot {r.snapshot_id[:12]}, {human_bytes(r.size)})"
        for r in results
    )


def log(entries: Sequence[LogEntry]) -> str:
    out = []
    for e in entries:
        if e.commit is None:
            where = "uncommitted"
        else:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.commit_time or 0))
            where = f"commit {e.commit[:10]}, {when}"
        out.append(f"snapshot {e.snapshot_id[:12]}  {e.path}  ({where})")
        if e.message:
            out.append(f"    {e.message}")
        if e.subject and e.subject != e.message:
            out.append(f"    commit: {e.subject}")
        out.append(f"    {e.tensors} tensors, {human_bytes(e.size)}, saved {e.created}")
        if e.metrics:
            out.append(f"    metrics: {fmt_mapping(e.metrics)}")
        if e.params:
            out.append(f"    params:  {fmt_mapping(e.params)}")
        out.append("")
    return "\n".join(out).rstrip()


def show(r: ShowResult) -> str:
    p = r.pointer
    head = [
        f"snapshot {p.id}",
        f"path:     {r.path}" + (f"  (at {r.rev}, commit {r.commit[:10]})" if r.commit else "  (work tree)"),
        f"format:   {p.format}, {len(p.tensors)} tensors, {human_bytes(p.size)}",
        f"created:  {p.created}",
    ]
    if p.parent:
        head.append(f"parent:   {p.parent[:12]}")
    if p.message:
        head.append(f"message:  {p.message}")
    if p.metrics:
        head.append(f"metrics:  {fmt_mapping(p.metrics)}")
    if p.params:
        head.append(f"params:   {fmt_mapping(p.params)}")
    cols = ["name", "dtype", "shape", "size", "mean", "std", "min", "max", "l2", "nonfinite"]
    rows = [
        [
            t.name or "",
            t.dtype or "",
            "x".join(str(d) for d in t.shape or ()) or "scalar",
            human_bytes(t.size),
            *(fmt_value(t.stats[k]) if k in t.stats else "-" for k in cols[4:]),
        ]
        for t in p.tensors
    ]
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]
    table = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    table += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join([*head, "", *table])
