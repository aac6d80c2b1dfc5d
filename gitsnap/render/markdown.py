"""Markdown for a pull-request comment: ``git snap diff BASE HEAD --format markdown``.

GitHub renders it as it is, with no image hosting: a summary line per
checkpoint, the gate's verdicts, a metrics table, a per-layer table, a
Mermaid ``xychart-beta`` bar chart of the most-changed layers, and the
per-tensor table inside a collapsed ``<details>`` block (changed tensors
first). The text starts with a hidden marker so that a workflow can find and
update its earlier comment, and stays under GitHub's 65,536-character limit
for a comment: table rows past the budget are counted, not shown.

The cell builders (:func:`tensor_cells`, :func:`group_cells`,
:func:`metric_cells`) are shared with the terminal table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from gitsnap.render.text import (
    diff_summary_line,
    fmt_num,
    fmt_pct,
    fmt_scalar,
    fmt_shape,
    fmt_signed,
)

if TYPE_CHECKING:
    from gitsnap.diff import CheckpointDiff, DiffResult, GroupChange, TensorChange
    from gitsnap.metrics import MetricChange

MARKER = "<!-- gitsnap-diff -->"
BUDGET = 60_000  # characters; GitHub refuses comments over 65,536

# ---------------------------------------------------------------- cells (shared with render.table)

TENSOR_HEADERS = ["status", "tensor", "dtype", "shape", "‖W‖", "norm Δ", "mean", "std"]
VALUE_HEADERS = ["‖ΔW‖/‖W‖", "cosine", "max |Δ|", "changed"]
GROUP_HEADERS = ["layer", "tensors changed", "params changed", "norm Δ"]
METRIC_HEADERS = ["name", "before", "after", "Δ", "Δ %", "source"]


def _pair(b: Any, a: Any, fmt: Callable[[Any], str]) -> str:
    if b is None and a is None:
        return "-"
    if b is None:
        return fmt(a)
    if a is None or a == b:
        return fmt(b)
    return f"{fmt(b)} → {fmt(a)}"


def tensor_cells(c: TensorChange, values: bool) -> list[str]:
    b, a = c.before, c.after
    name = f"{c.old_name} → {c.name}" if c.status == "renamed" else c.name
    l2, mean, std = c.stat("l2"), c.stat("mean"), c.stat("std")
    cells = [
        c.status,
        name,
        _pair(b and b.dtype, a and a.dtype, str),
        _pair(b and fmt_shape(b.shape), a and fmt_shape(a.shape), str),
        _pair(l2[0], l2[1], fmt_num),
        fmt_pct(c.norm_change, signed=True) if c.status in ("modified", "reshaped") else "",
        _pair(mean[0], mean[1], fmt_num),
        _pair(std[0], std[1], fmt_num),
    ]
    if values:
        v = c.values
        if v is None:
            cells += ["", "", "", ""]
        else:
            cells += [
                fmt_pct(v.rel_change),
                "-" if v.cosine is None else f"{v.cosine:.6f}",
                fmt_num(v.max_abs_delta),
                fmt_pct(v.changed_fraction),
            ]
    return cells


def group_cells(g: GroupChange, values: bool) -> list[str]:
    frac = g.params_changed / g.params if g.params else 0.0
    cells = [
        g.name,
        f"{g.tensors_changed}/{g.tensors}",
        f"{g.params_changed:,} ({fmt_pct(frac)})",
        fmt_pct(g.norm_change, signed=True),
    ]
    if values:
        cells.append(fmt_pct(g.rel_change))
    return cells


def metric_cells(m: MetricChange, kind: str = "metric") -> list[str]:
    sources = {m.source_before, m.source_after} - {None}
    source = (
        " → ".join(dict.fromkeys(s for s in (m.source_before, m.source_after) if s))
        if sources
        else ""
    )
    return [
        m.name + (" (param)" if kind == "param" else ""),
        fmt_scalar(m.before) if m.sources_before else "-",
        fmt_scalar(m.after) if m.sources_after else "-",
        ""
        if m.status != "changed"
        else fmt_signed(m.abs_change)
        if m.abs_change is not None
        else "changed",
        fmt_pct(m.rel_change, signed=True)
        if m.rel_change is not None and m.status == "changed"
        else "",
        source,
    ]


def changed_groups(ck: CheckpointDiff, top: int) -> list[GroupChange]:
    return [g for g in ck.groups if g.tensors_changed][:top]


def side_label(label: str, commit: str | None) -> str:
    return f"{label} ({commit[:10]})" if commit and not commit.startswith(label) else label


# ---------------------------------------------------------------- document


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    """A code span; GFM needs ``\\|`` for a pipe even inside one, in a table."""
    text = text.replace("\n", " ")
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text.replace('|', chr(92) + '|')}{pad}{fence}"


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()
) -> list[str]:
    align = ["---:" if i in right else "---" for i in range(len(headers))]
    out = ["| " + " | ".join(_cell(h) for h in headers) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def _chart(groups: Sequence[GroupChange], values: bool) -> list[str]:
    """Bars of one measure: ‖ΔW‖/‖W‖ where values were read, else the norm change from stats."""
    measured = [(g, g.rel_change) for g in groups if g.rel_change is not None] if values else []
    if measured:
        what = "relative change ‖ΔW‖/‖W‖"
    else:
        what = "norm change |Δ‖W‖|/‖W‖"
        measured = [(g, abs(g.norm_change)) for g in groups if g.norm_change is not None]
    shown = [(g, m) for g, m in measured if 0 < m < float("inf")]
    if not shown:
        return []

    def label(name: str) -> str:
        name = name if len(name) <= 24 else "…" + name[-23:]
        return '"' + name.replace('"', "'") + '"'

    return [
        "```mermaid",
        "xychart-beta",
        f'    title "Most-changed layers: {what} (%)"',
        f"    x-axis [{', '.join(label(g.name) for g, _ in shown)}]",
        '    y-axis "%"',
        f"    bar [{', '.join(f'{m * 100:.3g}' for _, m in shown)}]",
        "```",
    ]


def diff(r: DiffResult, *, top: int = 10) -> str:
    """The whole comment for a :class:`gitsnap.diff.DiffResult`."""
    before = side_label(r.before, r.before_commit)
    after = side_label(r.after, r.after_commit)
    out = [MARKER, f"### Model changes: {_code(before)} → {_code(after)}", ""]
    if r.gate:
        verdict = "❌ **Gate failed**" if r.failed else "✅ **Gate passed**"
        out.append(verdict)
        out.append("")
        for g in r.gate:
            mark = "❌" if g.failed else ("✅" if g.evaluated else "⚠️")
            out.append(f"- {mark} {_code(g.condition)}: {_cell(g.message)}")
        out.append("")
    if not r.checkpoints:
        out.append("No model snapshots on either side.")
        return "\n".join(out) + "\n"
    if not r.changed:
        out += ["No model changes.", ""]
    for ck in r.checkpoints:
        out += _checkpoint(ck, r, before, after, top)
    # The per-tensor tables go last and share what is left of the budget.
    used = sum(len(line) + 1 for line in out)
    for ck in r.checkpoints:
        out += _details(ck, r.values, max(2_000, (BUDGET - used) // len(r.checkpoints)))
    return "\n".join(out).rstrip("\n") + "\n"


def _checkpoint(ck: CheckpointDiff, r: DiffResult, before: str, after: str, top: int) -> list[str]:
    ids = ""
    if ck.before and ck.after and ck.status == "modified":
        ids = f" · snapshot `{ck.before.snapshot_id[:12]}` → `{ck.after.snapshot_id[:12]}`"
    if ck.after and ck.after.unsaved:
        ids += " (unsaved)"
    out = [
        f"#### {_code(ck.path)}: {ck.status}{ids}",
        "",
        f"**{_cell(diff_summary_line(ck))}**",
        "",
    ]
    rows = [metric_cells(m) for m in ck.metrics] + [metric_cells(m, "param") for m in ck.params]
    if rows:
        headers = ["metric", before, after, "Δ", "Δ %", "source"]
        out += _table(headers, [[_cell(c) for c in row] for row in rows], right=(1, 2, 3, 4))
        out.append("")
    groups = changed_groups(ck, top)
    if groups:
        more = len([g for g in ck.groups if g.tensors_changed]) - len(groups)
        of = f" of {len(groups) + more}" if more else ""
        title = f"Layers, most changed first (top {len(groups)}{of})"
        headers = [*GROUP_HEADERS, "‖ΔW‖/‖W‖"] if r.values else GROUP_HEADERS
        out += [f"**{title}**", ""]
        rows = [
            [_code(c) if i == 0 else _cell(c) for i, c in enumerate(group_cells(g, r.values))]
            for g in groups
        ]
        out += _table(headers, rows, right=tuple(range(1, len(headers))))
        out.append("")
        out += _chart(groups, r.values)
        out.append("")
    return out


def _details(ck: CheckpointDiff, values: bool, budget: int) -> list[str]:
    ordered = [c for c in ck.tensors if c.changed] + [c for c in ck.tensors if not c.changed]
    if not ordered:
        return []
    changed = sum(c.changed for c in ordered)
    headers = TENSOR_HEADERS + (VALUE_HEADERS if values else [])
    head = [
        f"<details><summary>Tensors of {_cell(ck.path)}: {changed} changed, "
        f"{len(ordered) - changed} unchanged</summary>",
        "",
    ]
    table = _table(headers, [], right=tuple(range(4, len(headers))))
    size = sum(len(x) + 1 for x in head + table)
    shown = 0
    for c in ordered:
        cells = tensor_cells(c, values)
        row = (
            "| " + " | ".join(_code(x) if i == 1 else _cell(x) for i, x in enumerate(cells)) + " |"
        )
        if size + len(row) + 1 > budget:
            break
        table.append(row)
        size += len(row) + 1
        shown += 1
    tail = [""]
    if shown < len(ordered):
        tail = [
            "",
            f"… {len(ordered) - shown} more tensors not shown (comment size limit); "
            "`git snap diff --format json` has them all.",
            "",
        ]
    return [*head, *table, *tail, "</details>", ""]
