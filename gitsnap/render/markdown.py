"""Markdown for a pull-request comment: ``git snap diff BASE HEAD --format markdown``.

GitHub renders it as it is, with no image hosting: a summary line per
checkpoint, the gate's verdicts, a metrics table, a per-layer table, a
Mermaid ``xychart-beta horizontal`` bar chart of the most-changed layers
(when at least two moved), and the changed tensors, most moved first, inside
a collapsed ``<details>`` block (unchanged ones counted). How far a tensor or
layer moved is ``‖ΔW‖/‖W‖`` with ``--values``, else its lower bound from
the pointer stats, marked ``≥`` (:mod:`gitsnap.movement`). Every table has
at most six columns, to fit a comment.

Every string from a checkpoint, pointer or note is escaped
(:func:`gitsnap.render.escape.escape`), then Markdown-escaped or put in a
code span, so a name can neither inject markup nor a control character. The
text starts with a hidden marker so that a workflow can find and update its
earlier comment, and stays under GitHub's 65,536-character limit for a
comment: table rows past the budget are counted, not shown.

The cell builders (:func:`tensor_cells`, :func:`group_cells`,
:func:`metric_cells`) are shared with the terminal table.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from gitsnap import movement
from gitsnap.diff import is_optimizer_state
from gitsnap.render.escape import NAME_LIMIT, escape
from gitsnap.render.text import (
    STATE_HEADERS,
    diff_files_line,
    diff_summary_line,
    fmt_pct,
    fmt_scalar,
    fmt_shape,
    fmt_signed,
    state_cells,
)
from gitsnap.working import human_size

if TYPE_CHECKING:
    from gitsnap.commands.compare import CheckpointComparison, Column, CompareResult
    from gitsnap.diff import CheckpointDiff, DiffResult, GroupChange, TensorChange
    from gitsnap.environment import EnvChange
    from gitsnap.metrics import MetricChange

MARKER = "<!-- gitsnap-diff -->"
BUDGET = 60_000  # characters; GitHub refuses comments over 65,536

# ---------------------------------------------------------------- cells (shared with render.table)

# Six columns each: a pull-request comment is about 90 characters wide. The
# before/after stats are in ``--format json``; a reviewer needs how far each
# tensor moved, and the signed change of its mean and spread.
TENSOR_HEADERS = ["status", "tensor", "type", "‖ΔW‖/‖W‖", "mean Δ", "std Δ"]
VALUE_HEADERS = ["status", "tensor", "type", "‖ΔW‖/‖W‖", "cosine", "changed"]
GROUP_HEADERS = ["layer", "tensors changed", "params changed", "‖ΔW‖/‖W‖"]


def fmt_change(frac: float | None) -> str:
    """A relative change in percent, 3 significant digits, never in e-notation.

    ``9.15e-07`` -> ``0.0000915%``: a dense fine-tune moves most layers by far
    less than 0.01 %, and those digits are what tells the layers apart.
    """
    if frac is None:
        return "-"
    if frac == math.inf:
        return "new"
    pct = frac * 100
    if pct == 0:
        return "0%"
    decimals = max(0, 2 - math.floor(math.log10(abs(pct))))
    return f"{pct:.{decimals}f}%"


def change_cell(exact: float | None, bound: float | None) -> str:
    """``‖ΔW‖/‖W‖`` when the values were read, else ``≥`` its lower bound from the stats."""
    if exact is not None:
        return fmt_change(exact)
    if bound is None:
        return "-"
    return fmt_change(bound) if bound in (0.0, math.inf) else "≥ " + fmt_change(bound)


def _type(c: TensorChange) -> str:
    b, a = c.before, c.after
    side = a or b
    assert side is not None  # a change has at least one side
    dtype = side.dtype if a is None or b is None or a.dtype == b.dtype else f"{b.dtype}→{a.dtype}"
    shape = (
        fmt_shape(side.shape)
        if a is None or b is None or a.shape == b.shape
        else f"{fmt_shape(b.shape)}→{fmt_shape(a.shape)}"
    )
    return f"{escape(dtype, NAME_LIMIT)}[{shape}]"


def tensor_name(c: TensorChange) -> str:
    """The tensor's name as a view shows it: escaped, bounded, a rename as ``old → new``."""
    name = escape(c.name, NAME_LIMIT)
    return f"{escape(c.old_name, NAME_LIMIT)} → {name}" if c.status == "renamed" else name


def tensor_cells(c: TensorChange, values: bool) -> list[str]:
    """The six cells of a changed tensor (:data:`TENSOR_HEADERS` or :data:`VALUE_HEADERS`)."""
    v = c.values
    cells = [c.status, tensor_name(c), _type(c)]
    cells.append(change_cell(v.rel_change if v is not None else None, c.change))
    if values:
        if v is None:
            return [*cells, "", ""]
        cosine = "-" if v.cosine is None else f"{v.cosine:.6f}"
        return [*cells, cosine, fmt_pct(v.changed_fraction)]
    for key in ("mean", "std"):
        vb, va = c.stat(key)
        moved = c.status == "modified" and vb is not None and va is not None
        cells.append(fmt_signed(va - vb) if moved and va is not None and vb is not None else "")
    return cells


def ranked(changes: Sequence[TensorChange]) -> list[TensorChange]:
    """The changed tensors, most moved first (new, removed and reshaped ones first of all);
    the model's weights before optimizer state, whose moments would drown them."""

    def key(c: TensorChange) -> tuple[bool, float]:
        m = c.change
        moved = math.inf if m is None and c.status != "modified" else (m or 0.0)
        side = c.after or c.before
        return side is not None and is_optimizer_state(c.tensor, side.file), -moved

    return sorted((c for c in changes if c.changed), key=key)


def group_cells(g: GroupChange, values: bool) -> list[str]:
    frac = g.params_changed / g.params if g.params else 0.0
    return [
        escape(g.name, NAME_LIMIT),
        f"{g.tensors_changed}/{g.tensors}",
        f"{g.params_changed:,} ({fmt_pct(frac)})",
        change_cell(g.rel_change, movement.best(g.change_bound, g.norm_change)),
    ]


# A change judged by the direction .gitsnap.yaml declares (MetricChange.verdict),
# in words as well as colour: a log or a comment shows no colour.
_VERDICT = {"better": " better", "worse": " worse"}
VERDICT_STYLE = {"better": "green", "worse": "red"}
VERDICT_MARK = {"better": "🟢 ", "worse": "🔴 "}


def metric_cells(m: MetricChange, kind: str = "metric") -> list[str]:
    # where each side's value comes from: pointer, note, or eval (a note git snap eval wrote)
    source = " → ".join(dict.fromkeys(s for s in (m.origin_before, m.origin_after) if s))
    return [
        escape(m.name, NAME_LIMIT) + (" (param)" if kind == "param" else ""),
        fmt_scalar(m.before) if m.sources_before else "-",
        fmt_scalar(m.after) if m.sources_after else "-",
        ""
        if m.status != "changed"
        else fmt_signed(m.abs_change) + _VERDICT.get(m.verdict or "", "")
        if m.abs_change is not None
        else "changed",
        fmt_pct(m.rel_change, signed=True)
        if m.rel_change is not None and m.status == "changed"
        else "",
        escape(source),
    ]


ENV_HEADER = "environment"


def env_cells(c: EnvChange) -> list[str]:
    """One environment change: what, before, after (``-``: not installed on that side)."""

    def side(value: str | None, count: int | None) -> str:
        if value is None:
            return "-"
        if c.name != "installed":
            return escape(value, NAME_LIMIT)
        n = "?" if count is None else f"{count:,}"
        return f"{n} (digest {escape(value[:12], NAME_LIMIT)})"

    name = "installed packages" if c.name == "installed" else escape(c.name, NAME_LIMIT)
    return [name, side(c.before, c.count_before), side(c.after, c.count_after)]


def changed_groups(ck: CheckpointDiff, top: int) -> list[GroupChange]:
    return [g for g in ck.groups if g.tensors_changed][:top]


def side_label(label: str, commit: str | None) -> str:
    label = escape(label, NAME_LIMIT)
    return f"{label} ({commit[:10]})" if commit and not commit.startswith(label) else label


# ---------------------------------------------------------------- document

# ASCII punctuation that means something to GitHub's Markdown in running
# text or a table cell (emphasis, links, HTML, entities, pipes); each is shown
# as itself when escaped by a backslash. ``&`` matters most: ``&#x1b;`` and
# ``&#x202e;`` would put back the characters escape() took out.
_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]<|~&"})


def _cell(text: str) -> str:
    """Text for a table cell or a line of the comment: escaped, then Markdown-escaped."""
    return escape(text).translate(_MD_SPECIAL)


def _code(text: str) -> str:
    """A code span; GFM needs ``\\|`` for a pipe even inside one, in a table."""
    text = escape(text)
    run = longest = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text.replace('|', chr(92) + '|')}{pad}{fence}"


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()
) -> list[str]:
    align = ["---:" if i in right else "---" for i in range(len(headers))]
    out = ["| " + " | ".join(_cell(h) for h in headers) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


# Bars a chart shows at most (the --top layers, capped): past 30 the labels of
# a comment-sized chart no longer stay apart.
CHART_BARS = 30


def _decimal(x: float, digits: int = 3) -> str:
    """``x`` in fixed point with ``digits`` significant digits: mermaid's xychart reads no
    e-notation (``9.15e-05`` is a syntax error)."""
    if x == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    return f"{x:.{decimals}f}"


# What mermaid would read in a label: the quote ends it, ``#...;`` is an
# entity, ``<...>`` HTML. Each becomes a look-alike that is only text.
_LABEL = str.maketrans({'"': "'", "<": "\u2039", ">": "\u203a", "#": "\uff03", ";": ","})


def _label(name: str) -> str:
    """A bar's label: the layer name's tail, quoted, without what mermaid would read."""
    name = escape(name)
    name = name if len(name) <= 28 else "…" + name[-27:]
    return '"' + name.translate(_LABEL) + '"'


def _chart(groups: Sequence[GroupChange], values: bool) -> list[str]:
    """A horizontal bar chart of how far the layers moved, or a sentence when bars say nothing.

    Each bar is what ranks its layer (:attr:`GroupChange.movement`):
    ``‖ΔW‖/‖W‖`` where the values were read, else the lower bound from the
    stats; the title says which. Layers that are new
    (no before side) are left out: their bar would have no length. With one
    bar, or none above zero, the table already says all there is.
    """
    bars = [(g, g.movement) for g in groups[:CHART_BARS]]
    shown = [(g, m) for g, m in bars if m != math.inf]
    exact = sum(g.rel_change is not None for g, _ in shown)
    if len(shown) < 2:
        return []
    if all(m == 0 for _, m in shown):
        return [
            "No layer moved by its stored mean and std; "
            "`git snap diff --values` reads the weights and measures ‖ΔW‖/‖W‖.",
            "",
        ]
    top = max(m for _, m in shown)
    scale, unit = (100.0, "%") if top >= 1e-4 else (1e6, "ppm")
    what = (
        "‖ΔW‖/‖W‖"
        if exact == len(shown)
        else "lower bound of ‖ΔW‖/‖W‖ from the stats"
        if not exact
        else "‖ΔW‖/‖W‖, a lower bound where the weights were not read"
    )
    height = max(240, 60 + 26 * len(shown))
    return [
        "```mermaid",
        "---",
        "config:",
        "  xyChart:",
        "    width: 720",
        f"    height: {height}",
        "---",
        "xychart-beta horizontal",
        f'    title "Most-changed layers: {what} ({unit})"',
        f"    x-axis [{', '.join(_label(g.name) for g, _ in shown)}]",
        f'    y-axis "{unit}" 0 --> {_decimal(top * scale * 1.1, 2)}',
        f"    bar [{', '.join(_decimal(m * scale) for _, m in shown)}]",
        "```",
        "",
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
        b, a = _code(ck.before.snapshot_id[:12]), _code(ck.after.snapshot_id[:12])
        ids = f" · snapshot {b} → {a}"
    if ck.after and ck.after.unsaved:
        ids += " (unsaved)"
    out = [
        f"#### {_code(ck.path)}: {ck.status}{ids}",
        "",
        f"**{_cell(diff_summary_line(ck))}**",
        "",
    ]
    files = diff_files_line(ck)
    if files:
        out += [_cell(files), ""]
    out += _security(ck)
    rows = [metric_cells(m) for m in ck.metrics] + [metric_cells(m, "param") for m in ck.params]
    if rows:
        headers = ["metric", before, after, "Δ", "Δ %", "source"]
        marks = [VERDICT_MARK.get(mc.verdict or "", "") for mc in [*ck.metrics, *ck.params]]
        cells = [
            [mark + _cell(row[0]), *(_cell(c) for c in row[1:])]
            for mark, row in zip(marks, rows, strict=True)
        ]
        out += _table(headers, cells, right=(1, 2, 3, 4))
        out.append("")
    if ck.env:
        out += _table(
            [ENV_HEADER, before, after], [[_cell(c) for c in env_cells(e)] for e in ck.env]
        )
        out.append("")
    state = ck.state_changes
    if state:
        out += ["**Training state**", ""]
        cells = [[_cell(c) for c in state_cells(m)] for m in state]
        out += _table([STATE_HEADERS[0], before, after, STATE_HEADERS[3]], cells, right=(1, 2, 3))
        out.append("")
    groups = changed_groups(ck, top)
    if groups:
        more = len([g for g in ck.groups if g.tensors_changed]) - len(groups)
        of = f" of {len(groups) + more}" if more else ""
        title = f"Layers, most changed first (top {len(groups)}{of})"
        out += [f"**{title}**", ""]
        rows = [
            [_code(c) if i == 0 else _cell(c) for i, c in enumerate(group_cells(g, r.values))]
            for g in groups
        ]
        out += _table(GROUP_HEADERS, rows, right=(1, 2, 3))
        out.append("")
        if not r.values:
            out += [
                "_≥: a lower bound from the stored mean and std; "
                "`--values` measures ‖ΔW‖/‖W‖ from the weights._",
                "",
            ]
        out += _chart(groups, r.values)
    return out


def _security(ck: CheckpointDiff) -> list[str]:
    """What the newer side's pickles would run at ``torch.load``: first, for the reviewer."""
    if not ck.security:
        return []
    out = ["**Security**", ""]
    for f in ck.security:
        where = f" ({_code(f.path)})" if f.path != ck.path else ""
        if f.kind == "unsafe":
            allowed = " (saved with `--allow-unsafe-pickle`)" if f.allowed else ""
            out.append(
                f"- ⚠ this checkpoint runs {_code(f.name)} when loaded with `torch.load`"
                f"{where}{allowed}"
            )
        else:
            out.append(
                f"- ⚠ its pickle calls {_code(f.name)}, which gitsnap cannot judge "
                f"(an unknown global){where}"
            )
    return [*out, ""]


def _details(ck: CheckpointDiff, values: bool, budget: int) -> list[str]:
    changed = ranked(ck.tensors)
    if not changed:
        return []
    same = len(ck.tensors) - len(changed)
    headers = VALUE_HEADERS if values else TENSOR_HEADERS
    summary = html.escape(
        f"Tensors of {escape(ck.path, NAME_LIMIT)}: {len(changed)} changed, most changed first"
        + (f" ({same} unchanged not listed)" if same else "")
    )
    head = [f"<details><summary>{summary}</summary>", ""]
    table = _table(headers, [], right=(3, 4, 5))
    size = sum(len(x) + 1 for x in head + table)
    shown = 0
    for c in changed:
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
    if shown < len(changed):
        tail = [
            "",
            f"… {len(changed) - shown} more changed tensors not shown (comment size limit); "
            "`git snap diff --format json` has them all.",
            "",
        ]
    return [*head, *table, *tail, "</details>", ""]


# ---------------------------------------------------------------- compare (cells shared with
# render.table and render.html: one row per field, one column per snapshot)

COMPARE_MARKER = "<!-- gitsnap-compare -->"
NOTE_MARK = " (note)"
EVAL_MARK = " (eval)"
COMPARE_LEGEND = (
    "Values marked (note) come from the commit's git note (measured after the commit), "
    "(eval) from git snap eval (in the note); the others from the pointer (recorded at save "
    "time). Changes are from the first column."
)


def compare_header(c: Column, best: bool) -> str:
    """A column's header: the revision as named, its commit, and whether it is the best."""
    return side_label(c.rev, c.commit) + (" (best)" if best else "")


def compare_value(m: MetricChange, first: bool) -> str:
    """A metric or param of one column: its value, ``(note)`` when a note gave it (``(eval)``
    when ``git snap eval`` wrote it there), and (after the first column) its change from the
    first, judged by the declared direction."""
    if not m.sources_after:
        return "-"
    mark = {"note": NOTE_MARK, "eval": EVAL_MARK}.get(m.origin_after or "", "")
    value = fmt_scalar(m.after) + mark
    if first or m.status != "changed":
        return value
    change = fmt_signed(m.abs_change) if m.abs_change is not None else "changed"
    return f"{value} {change}{_VERDICT.get(m.verdict or '', '')}"


class CompareRow(NamedTuple):
    """One row of a compare table: a field, its cell per column, and per cell ``better``,
    ``worse`` or ``""`` (a metric's change from the first column, by its declared direction).
    ``metric``: the metric a metric row shows (None for other rows)."""

    label: str
    cells: list[str]
    verdicts: list[str]
    metric: str | None = None


def compare_rows(ck: CheckpointComparison) -> list[CompareRow]:
    """The rows every compare view shows, top to bottom, cells already escaped."""
    cols = ck.columns
    plain = [""] * len(cols)

    def row(label: str, cells: list[str]) -> CompareRow:
        return CompareRow(label, cells, plain)

    def present(text: str, c: Column) -> str:
        return text if c.present else "-"

    out = [
        row("snapshot", [c.snapshot_id[:12] if c.snapshot_id else "no snapshot" for c in cols]),
        row("message", [escape(c.message, 60) if c.present else "-" for c in cols]),
    ]
    for r in [*ck.metrics, *ck.params]:
        label = escape(r.name, NAME_LIMIT) + (" (param)" if r.kind == "param" else "")
        if r.better:
            label += f" ({r.better} is better)"
        cells = [compare_value(m, i == 0) for i, m in enumerate(r.cells)]
        verdicts = ["" if i == 0 else (m.verdict or "") for i, m in enumerate(r.cells)]
        out.append(CompareRow(label, cells, verdicts, r.name if r.kind == "metric" else None))
    for key in sorted({k for c in cols for k in c.training}):
        values = [fmt_scalar(c.training[key]) if key in c.training else "-" for c in cols]
        out.append(row(escape(key, NAME_LIMIT), values))
    out += [
        row("size", [present(human_size(c.size), c) for c in cols]),
        row("tensors", [present(f"{c.tensors:,}", c) for c in cols]),
        row("stored", [present(human_size(c.stored_bytes), c) for c in cols]),
        row("new objects", [present(human_size(c.new_bytes), c) for c in cols]),
    ]
    drift = [c.drift for c in cols]
    if any(drift):
        moved = [
            change_cell(d.rel_change, None if d.exact else d.movement) if d else "-" for d in drift
        ]
        changed = [f"{d.tensors_changed}/{d.tensors}" if d else "-" for d in drift]
        layers = [
            ", ".join(escape(g.name, 60) for g in d.layers) or "-" if d else "-" for d in drift
        ]
        out += [
            row("‖ΔW‖/‖W‖ from first", moved),
            row("tensors changed", changed),
            row("most moved layers", layers),
        ]
    return out


def compare(r: CompareResult) -> str:
    """The Markdown of ``git snap compare --format markdown`` (a pull-request comment)."""
    revs = " · ".join(_code(x) for x in r.revisions)
    out = [COMPARE_MARKER, f"### Snapshots compared: {revs}", ""]
    if r.metric is not None:
        out += [f"Best by {_code(r.metric)} ({_cell(_best_words(r))}).", ""]
    for t in r.registered:
        out += [f"Registered {_code(t.tag)} on commit {_code(t.commit[:10])}.", ""]
    if not r.checkpoints:
        out.append("No model snapshots in these revisions.")
    for ck in r.checkpoints:
        out += [f"#### {_code(ck.path)}", ""]
        headers = [""] + [compare_header(c, i == ck.best) for i, c in enumerate(ck.columns)]
        rows = []
        for row in compare_rows(ck):
            marked = [
                VERDICT_MARK.get(v, "") + _cell(c)
                for c, v in zip(row.cells, row.verdicts, strict=True)
            ]
            if ck.best is not None and row.metric is not None and row.metric == r.metric:
                marked[ck.best] = f"**{marked[ck.best]}**"
            rows.append([_cell(row.label), *marked])
        out += _table(headers, rows, right=range(1, len(headers)))
        out.append("")
    out += [f"_{_cell(COMPARE_LEGEND)}_", ""]
    return "\n".join(out).rstrip("\n") + "\n"


def _best_words(r: CompareResult) -> str:
    way = "the largest" if r.best == "max" else "the smallest"
    where = "--best" if r.best_from == "option" else f"as {r.best_from} declares"
    return f"{way} value, {where}"
