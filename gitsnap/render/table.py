"""The terminal view of ``git snap diff``: rich tables, in colour only on a terminal.

For each checkpoint: a summary line, the metrics and params, the most-changed
layers (``--top``), and the changed tensors (``--all``: every tensor). The
cells are the Markdown renderer's, so both views say the same thing.
"""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING

from gitsnap.render.markdown import (
    GROUP_HEADERS,
    VALUE_HEADERS,
    changed_groups,
    group_cells,
    metric_cells,
    side_label,
)
from gitsnap.render.text import diff_summary_line, fmt_num, fmt_pct, fmt_shape, fmt_signed

if TYPE_CHECKING:
    from gitsnap.diff import DiffResult, TensorChange

STATUS_STYLE = {
    "added": "green",
    "removed": "red",
    "renamed": "cyan",
    "reshaped": "magenta",
    "modified": "yellow",
    "unchanged": "dim",
}


# Tensor rows by default: a terminal is for the most changed ones; --all, JSON
# and Markdown have every one.
LIMIT = 30


def _most_changed(changed: list[TensorChange], limit: int) -> list[TensorChange]:
    """The ``limit`` tensors that moved most (new and removed ones first), kept in name order."""
    if len(changed) <= limit:
        return changed

    def moved(c: TensorChange) -> float:
        if c.values is not None and c.values.rel_change is not None:
            return float(c.values.rel_change)
        if c.status in ("added", "removed", "reshaped"):
            return float("inf")
        n = c.norm_change
        return abs(n) if n is not None else 0.0

    keep = {id(c) for c in sorted(changed, key=moved, reverse=True)[:limit]}
    return [c for c in changed if id(c) in keep]


def diff(
    r: DiffResult,
    *,
    top: int = 10,
    all_tensors: bool = False,
    color: bool = False,
    width: int = 120,
) -> str:
    """Render a :class:`gitsnap.diff.DiffResult`; ``color`` adds ANSI styles (on a TTY).

    Lists the changed tensors, at most :data:`LIMIT` of them (the most
    changed); ``all_tensors`` lists every tensor, unchanged ones too.
    """
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    buf = io.StringIO()
    console = Console(
        file=buf,
        width=width,
        color_system="standard" if color else None,
        force_terminal=color,
        no_color=not color,
        markup=False,
        highlight=False,
        emoji=False,
        legacy_windows=False,
    )
    before = side_label(r.before, r.before_commit)
    after = side_label(r.after, r.after_commit)

    def table(headers: list[str], right_from: int) -> Table:
        t = Table(
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            header_style="bold" if color else "",
        )
        for i, h in enumerate(headers):
            t.add_column(h, justify="right" if i >= right_from else "left", overflow="fold")
        return t

    console.print(
        Text(f"diff {before} → {after}" + ("  (with values)" if r.values else ""), style="bold"),
        soft_wrap=True,
    )
    if not r.checkpoints:
        console.print(Text("no model snapshots on either side"))
    for ck in r.checkpoints:
        console.print()
        ids = ""
        if ck.before and ck.after and ck.status == "modified":
            ids = f"  {ck.before.snapshot_id[:12]} → {ck.after.snapshot_id[:12]}"
        if ck.after and ck.after.unsaved:
            ids += " (unsaved)"
        head = Text(ck.path, style="bold")
        head.append(f"  {ck.status}", style=STATUS_STYLE.get(ck.status, ""))
        head.append(ids)
        console.print(head, soft_wrap=True)
        console.print(Text(diff_summary_line(ck)), soft_wrap=True)
        rows = [metric_cells(m) for m in ck.metrics] + [metric_cells(m, "param") for m in ck.params]
        if rows:
            t = table(["metric", before, after, "Δ", "Δ %", "source"], 1)
            for row in rows:
                t.add_row(*(Text(c) for c in row))
            console.print(t)
        groups = changed_groups(ck, top)
        if groups:
            headers = [*GROUP_HEADERS, "‖ΔW‖/‖W‖"] if r.values else list(GROUP_HEADERS)
            t = table(headers, 1)
            for g in groups:
                t.add_row(*(Text(c) for c in group_cells(g, r.values)))
            console.print(t)
        changed = [c for c in ck.tensors if c.changed]
        listed = list(ck.tensors) if all_tensors else _most_changed(changed, LIMIT)
        if listed:
            headers = ["status", "tensor", "type", "‖W‖", "norm Δ"] + (
                VALUE_HEADERS if r.values else ["mean Δ", "std Δ"]
            )
            t = table(headers, 3)
            t.columns[1].min_width = min(30, max(len(c.name) for c in listed))
            for c in listed:
                cells = [Text(x) for x in _tensor_row(c, r.values)]
                cells[0].stylize(STATUS_STYLE.get(c.status, ""))
                t.add_row(*cells)
            console.print(t)
        more = len(changed) - sum(c.changed for c in listed)
        same = len(ck.tensors) - len(changed) if not all_tensors else 0
        notes = [
            f"{more} more changed" if more else "",
            f"{same} unchanged tensor{'s' if same != 1 else ''}" if same else "",
        ]
        if more or same:
            console.print(
                Text(", ".join(x for x in notes if x) + " (--all lists them)", style="dim")
            )
    return "\n".join(_TRAILING.sub(r"\1", line) for line in buf.getvalue().splitlines())


# Trailing blanks, also those followed only by colour codes.
_TRAILING = re.compile(r"[ ]+((?:\x1b\[[0-9;]*m)*)$")


def _tensor_row(c: TensorChange, values: bool) -> list[str]:
    """A narrower row than Markdown's: dtype and shape in one cell, the norm as it is now."""
    b, a = c.before, c.after
    side = a or b
    assert side is not None  # a change has at least one side
    dtype = side.dtype if a is None or b is None or a.dtype == b.dtype else f"{b.dtype}→{a.dtype}"
    shape = (
        fmt_shape(side.shape)
        if a is None or b is None or a.shape == b.shape
        else f"{fmt_shape(b.shape)}→{fmt_shape(a.shape)}"
    )
    l2b, l2a = c.stat("l2")
    row = [
        c.status,
        f"{c.old_name} → {c.name}" if c.status == "renamed" else c.name,
        f"{dtype}[{shape}]",
        fmt_num(l2a if a else l2b),
        fmt_pct(c.norm_change, signed=True) if c.status in ("modified", "reshaped") else "",
    ]
    if values:
        v = c.values
        row += (
            ["", "", "", ""]
            if v is None
            else [
                fmt_pct(v.rel_change),
                "-" if v.cosine is None else f"{v.cosine:.6f}",
                fmt_num(v.max_abs_delta),
                fmt_pct(v.changed_fraction),
            ]
        )
    else:
        for key in ("mean", "std"):
            vb, va = c.stat(key)
            moved = c.status in ("modified", "reshaped") and vb is not None and va is not None
            row.append(fmt_signed(va - vb) if moved and va is not None and vb is not None else "")
    return row
