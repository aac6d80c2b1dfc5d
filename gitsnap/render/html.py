"""One self-contained HTML page: ``git snap diff``, ``log`` and ``compare`` ``--format html``.

A CI job attaches the page as an artifact, and a reviewer opens it offline,
so it loads nothing: the CSS and a small sorting script are inline, the
charts are SVG drawn here, and a Content-Security-Policy (``default-src
'none'``) makes the browser refuse any fetch a string could still smuggle in.

The diff page has the summary and gate, the metrics (a change is coloured
green or red when ``.gitsnap.yaml`` declares which way is better), a bar
chart of how far each layer moved, a sortable table of the changed tensors,
and, when the diff value carries them, its ``security`` and
``training_state`` sections (read with :func:`getattr`, rendered from
whatever plain values they hold). The log page draws one line chart per
numeric metric across the snapshots of the history, oldest to newest. The
compare page has one table per checkpoint with a column per snapshot (the
cells of :func:`gitsnap.render.markdown.compare_rows`, changes coloured by
the declared direction, the best marked) and a bar chart per numeric metric
and of how far each snapshot moved from the first.

Every string from a checkpoint, pointer or note goes through
:func:`gitsnap.render.escape.escape` (control and bidi characters shown as
``\\x1b``, names bounded) and then :func:`html.escape`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gitsnap.pickle_policy import security_line
from gitsnap.render.escape import NAME_LIMIT, escape
from gitsnap.render.markdown import (
    COMPARE_LEGEND,
    ENV_HEADER,
    GROUP_HEADERS,
    TENSOR_HEADERS,
    VALUE_HEADERS,
    change_cell,
    changed_groups,
    compare_header,
    compare_rows,
    env_cells,
    fmt_change,
    group_cells,
    metric_cells,
    ranked,
    side_label,
    tensor_cells,
)
from gitsnap.render.text import STATE_HEADERS, diff_files_line, diff_summary_line, state_cells

if TYPE_CHECKING:
    from gitsnap.api import LogEntry
    from gitsnap.commands.compare import CheckpointComparison, CompareResult
    from gitsnap.diff import CheckpointDiff, DiffResult, GroupChange, TensorChange

__all__ = ["compare", "diff", "render_diff_html", "render_log_html"]

# Rows of the tensor table at most: 20,000 rows is a 10 MB page a browser still sorts.
MAX_ROWS = 20_000
# Bars of the layer chart and points of a log chart at most.
MAX_BARS = 40
MAX_POINTS = 500

_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"

_CSS = """
:root{--fg:#1f2328;--mute:#59636e;--line:#d1d9e0;--bg2:#f6f8fa;--good:#1a7f37;--bad:#cf222e;
--goodbg:#dafbe1;--badbg:#ffebe9;--bar:#0969da}
*{box-sizing:border-box}
body{font:14px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif;
color:var(--fg);margin:0 auto;padding:24px;max-width:1200px}
h1{font-size:22px;margin:0 0 8px}h2{font-size:18px;margin:28px 0 8px;
border-bottom:1px solid var(--line);padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:var(--bg2);
padding:1px 4px;border-radius:4px;overflow-wrap:anywhere}
.mute{color:var(--mute)}.summary{font-weight:600}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid var(--line);padding:3px 8px;text-align:left;vertical-align:top}
th{background:var(--bg2)}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.name{overflow-wrap:anywhere;max-width:520px}
table.sortable th{cursor:pointer;user-select:none;white-space:nowrap}
table.sortable th[aria-sort=ascending]::after{content:" ▲"}
table.sortable th[aria-sort=descending]::after{content:" ▼"}
tr.better td{background:var(--goodbg)}tr.worse td{background:var(--badbg)}
.better{color:var(--good)}.worse{color:var(--bad)}
.gate{padding:8px 12px;border-radius:6px;margin:8px 0;font-weight:600}
.gate.ok{background:var(--goodbg);color:var(--good)}.gate.failed{background:var(--badbg);
color:var(--bad)}
ul.checks{margin:4px 0 12px;padding-left:20px}
li.failed{color:var(--bad)}li.ok{color:var(--good)}li.skipped{color:var(--mute)}
svg.chart{display:block;max-width:100%;height:auto;margin:6px 0 12px}
svg.chart text{font:12px -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;fill:var(--fg)}
svg.chart .bar{fill:var(--bar)}svg.chart .axis{stroke:var(--line)}
svg.chart .line{fill:none;stroke:var(--bar);stroke-width:2}svg.chart .dot{fill:var(--bar)}
dl.kv{display:grid;grid-template-columns:max-content auto;gap:2px 12px;margin:6px 0}
dl.kv dt{color:var(--mute)}dl.kv dd{margin:0;overflow-wrap:anywhere}
"""

# Sorting: a click on a header orders the body's rows by that column (numbers
# by their data-v value, text by its content), a second click reverses.
# ``gitsnapSort`` is global so that a test or a reader's console can call it.
_JS = """
function gitsnapSort(table, col, dir) {
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var th = table.tHead.rows[0].cells[col];
  var num = th.classList.contains("num");
  function key(r) {
    var c = r.cells[col];
    if (!num) return c.textContent;
    var v = parseFloat(c.getAttribute("data-v"));
    return isNaN(v) ? -Infinity : v;
  }
  rows.sort(function (a, b) {
    var x = key(a), y = key(b);
    var o = num ? (x < y ? -1 : x > y ? 1 : 0) : String(x).localeCompare(String(y));
    return dir === "descending" ? -o : o;
  });
  rows.forEach(function (r) { body.appendChild(r); });
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) {
    h.removeAttribute("aria-sort");
  });
  th.setAttribute("aria-sort", dir);
}
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.addEventListener("click", function () {
        var next = th.getAttribute("aria-sort") === "descending" ? "ascending" : "descending";
        gitsnapSort(table, col, next);
      });
    });
  });
});
"""


def _t(text: object, limit: int | None = NAME_LIMIT) -> str:
    """Text from a checkpoint, pointer or note, safe inside HTML (element or attribute)."""
    return html.escape(escape(str(text), limit), quote=True)


def _page(title: str, body: list[str]) -> str:
    head = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        '<meta name="generator" content="gitsnap">',
        f"<title>{title}</title>",
        f"<style>{_CSS}</style>",
        f"<script>{_JS}</script>",
        "</head><body>",
    ]
    return "\n".join([*head, *body, "</body></html>"]) + "\n"


def _table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    numeric: Sequence[int] = (),
    keys: Sequence[Sequence[float | None]] | None = None,
    row_class: Sequence[str] | None = None,
    sortable: bool = False,
    names: Sequence[int] = (),
) -> str:
    """A table of cells that are already HTML; ``keys[i][j]`` is the sort value of a
    numeric cell (``data-v``)."""
    cls = ' class="sortable"' if sortable else ""
    head = "".join(
        f'<th{" class=num" if i in numeric else ""} scope="col">{h}</th>'
        for i, h in enumerate(headers)
    )
    out = [f"<table{cls}><thead><tr>{head}</tr></thead><tbody>"]
    for r, row in enumerate(rows):
        cells = []
        for i, cell in enumerate(row):
            attrs = ""
            if i in numeric:
                attrs = ' class="num"'
                key = keys[r][i] if keys is not None else None
                if key is not None:
                    attrs += f' data-v="{_sort_key(key)}"'
            elif i in names:
                attrs = ' class="name"'
            cells.append(f"<td{attrs}>{cell}</td>")
        rc = f' class="{row_class[r]}"' if row_class is not None and row_class[r] else ""
        out.append(f"<tr{rc}>{''.join(cells)}</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _sort_key(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "1e308" if x > 0 else "-1e308"
    return repr(float(x))


# ---------------------------------------------------------------- charts (inline SVG)


def _num(x: float) -> str:
    """A coordinate: two decimals are plenty for a screen."""
    return f"{x:.2f}".rstrip("0").rstrip(".")


def bar_chart(items: Sequence[tuple[str, float, str]], title: str) -> str:
    """A horizontal bar chart: ``(label, value, shown)`` per bar, longest bar = largest value.

    Labels are escaped here; each bar carries a ``<title>`` with the whole name.
    """
    items = list(items)[:MAX_BARS]
    label_w, bar_w, value_w, row_h, top = 300, 520, 120, 22, 30
    width = label_w + bar_w + value_w
    height = top + row_h * len(items) + 10
    biggest = max((v for _, v, _ in items if math.isfinite(v)), default=0.0)
    out = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{html.escape(title)}</title>",
        f'<text x="0" y="18" font-weight="600">{html.escape(title)}</text>',
        f'<line class="axis" x1="{label_w}" y1="{top - 4}" x2="{label_w}" '
        f'y2="{height - 6}"></line>',
    ]
    for i, (label, value, shown) in enumerate(items):
        y = top + i * row_h
        name = escape(label, NAME_LIMIT)
        short = name if len(name) <= 44 else "…" + name[-43:]
        length = bar_w * value / biggest if biggest > 0 and math.isfinite(value) else 0.0
        if not math.isfinite(value):
            length = bar_w
        out.append(f"<g><title>{html.escape(name)}: {html.escape(shown)}</title>")
        out.append(
            f'<text x="{label_w - 6}" y="{_num(y + 15)}" text-anchor="end">'
            f"{html.escape(short)}</text>"
        )
        out.append(
            f'<rect class="bar" x="{label_w}" y="{_num(y + 3)}" width="{_num(max(length, 1))}" '
            f'height="{row_h - 6}"></rect>'
        )
        out.append(
            f'<text x="{_num(label_w + max(length, 1) + 6)}" y="{_num(y + 15)}">'
            f"{html.escape(shown)}</text></g>"
        )
    out.append("</svg>")
    return "\n".join(out)


def line_chart(points: Sequence[tuple[str, float]], title: str) -> str:
    """A line chart of ``(x label, value)`` points in order, with the axis range labelled."""
    points = list(points)[-MAX_POINTS:]
    left, plot_w, right, top, plot_h, bottom = 80, 640, 60, 30, 180, 50
    width, height = left + plot_w + right, top + plot_h + bottom
    values = [v for _, v in points]
    lo, hi = min(values), max(values)
    if hi == lo:
        lo, hi = lo - (abs(lo) or 1) * 0.05, hi + (abs(hi) or 1) * 0.05
    n = len(points)

    def x(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h - plot_h * (v - lo) / (hi - lo)

    out = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{html.escape(title)}</title>",
        f'<text x="0" y="18" font-weight="600">{html.escape(title)}</text>',
        f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}"></line>',
        f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" '
        f'y2="{top + plot_h}"></line>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{_g(hi)}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end">{_g(lo)}</text>',
    ]
    path = " ".join(
        f"{'M' if i == 0 else 'L'}{_num(x(i))},{_num(y(v))}" for i, v in enumerate(values)
    )
    out.append(f'<path class="line" d="{path}"></path>')
    # Every x label when they fit, else about ten of them.
    step = max(1, math.ceil(n / 10))
    for i, (label, v) in enumerate(points):
        out.append(
            f'<circle class="dot" cx="{_num(x(i))}" cy="{_num(y(v))}" r="3.5">'
            f"<title>{html.escape(label)}: {_g(v)}</title></circle>"
        )
        if i % step == 0 or i == n - 1:
            out.append(
                f'<text x="{_num(x(i))}" y="{top + plot_h + 18}" text-anchor="middle">'
                f"{html.escape(label)}</text>"
            )
    out.append("</svg>")
    return "\n".join(out)


def _g(v: float) -> str:
    return f"{v:.6g}"


# ---------------------------------------------------------------- diff page


def diff(r: DiffResult, *, top: int = 10) -> str:
    """The whole page for a :class:`gitsnap.diff.DiffResult` (the value
    :func:`gitsnap.render.markdown.diff` takes)."""
    before = side_label(r.before, r.before_commit)
    after = side_label(r.after, r.after_commit)
    title = f"Model changes: {_t(before)} → {_t(after)}"
    body = [f"<h1>{title}</h1>"]
    if r.values:
        body.append('<p class="mute">Tensor values compared (--values): ‖ΔW‖/‖W‖ is measured.</p>')
    else:
        body.append(
            '<p class="mute">From the pointers\' stats: ≥ marks a lower bound of ‖ΔW‖/‖W‖; '
            "<code>git snap diff --values</code> measures it.</p>"
        )
    body += _gate(r)
    if not r.checkpoints:
        body.append("<p>No model snapshots on either side.</p>")
    elif not r.changed:
        body.append("<p>No model changes.</p>")
    for ck in r.checkpoints:
        body += _checkpoint(ck, r.values, before, after, top)
    return _page(title, body)


render_diff_html = diff


def _gate(r: DiffResult) -> list[str]:
    if not r.gate:
        return []
    ok = not r.failed
    out = [
        f'<div class="gate {"ok" if ok else "failed"}">Gate {"passed" if ok else "failed"}</div>'
    ]
    out.append('<ul class="checks">')
    for g in r.gate:
        cls = "failed" if g.failed else ("ok" if g.evaluated else "skipped")
        mark = "✗" if g.failed else ("✓" if g.evaluated else "○")
        out.append(f'<li class="{cls}">{mark} <code>{_t(g.condition)}</code>: {_t(g.message)}</li>')
    out.append("</ul>")
    return out


def _checkpoint(ck: CheckpointDiff, values: bool, before: str, after: str, top: int) -> list[str]:
    ids = ""
    if ck.before and ck.after and ck.status == "modified":
        ids = (
            f' <span class="mute">snapshot <code>{_t(ck.before.snapshot_id[:12])}</code> → '
            f"<code>{_t(ck.after.snapshot_id[:12])}</code></span>"
        )
    if ck.after and ck.after.unsaved:
        ids += ' <span class="mute">(unsaved)</span>'
    out = [
        f"<h2><code>{_t(ck.path)}</code>: {_t(ck.status)}{ids}</h2>",
        f'<p class="summary">{_t(diff_summary_line(ck), None)}</p>',
    ]
    files = diff_files_line(ck)
    if files:
        out.append(f'<p class="files">{_t(files, None)}</p>')
    out += _metrics(ck, before, after)
    out += _state(ck, before, after)
    out += _env(ck, before, after)
    out += _security(ck)
    out += _layers(ck, values, top)
    out += _tensors(ck, values)
    return out


def _metrics(ck: CheckpointDiff, before: str, after: str) -> list[str]:
    changes = [(m, "metric") for m in ck.metrics] + [(m, "param") for m in ck.params]
    if not changes:
        return []
    rows, keys, classes = [], [], []
    for m, kind in changes:
        cells = metric_cells(m, kind)
        rows.append([_t(c, None) for c in cells])
        keys.append([None, None, None, m.abs_change, m.rel_change, None])
        classes.append(m.verdict or "")
    headers = ["metric", _t(before), _t(after), "Δ", "Δ %", "source"]
    out = ["<h3>Metrics and params</h3>"]
    out.append(_table(headers, rows, numeric=(1, 2, 3, 4), keys=keys, row_class=classes))
    if any(m.better for m, _ in changes):
        out.append(
            '<p class="mute"><span class="better">green</span>: better, '
            '<span class="worse">red</span>: worse, by the direction '
            "<code>.gitsnap.yaml</code> declares.</p>"
        )
    return out


def _layers(ck: CheckpointDiff, values: bool, top: int) -> list[str]:
    groups = changed_groups(ck, top)
    if not groups:
        return []
    out = ["<h3>Layers, most changed first</h3>"]
    rows = [[_t(c) for c in group_cells(g, values)] for g in groups]
    out.append(
        _table(
            GROUP_HEADERS,
            rows,
            numeric=(1, 2, 3),
            keys=[[None, g.tensors_changed, g.params_changed, g.movement] for g in groups],
            names=(0,),
        )
    )
    out += _layer_chart([g for g in ck.groups if g.tensors_changed], values)
    return out


def _layer_chart(groups: Sequence[GroupChange], values: bool) -> list[str]:
    bars = [(g.name, g.movement, _moved(g)) for g in groups[:MAX_BARS]]
    if not any(v > 0 for _, v, _ in bars):
        return [
            "<p>No layer moved by its stored mean and std; "
            "<code>git snap diff --values</code> reads the weights and measures ‖ΔW‖/‖W‖.</p>"
        ]
    exact = all(g.rel_change is not None for g in groups[:MAX_BARS])
    what = "‖ΔW‖/‖W‖" if exact else "lower bound of ‖ΔW‖/‖W‖ from the stats"
    more = len(groups) - len(bars)
    title = f"How far each layer moved ({what})" + (
        f", top {len(bars)} of {len(groups)}" if more else ""
    )
    return [bar_chart(bars, title)]


def _moved(g: GroupChange) -> str:
    m = g.movement
    return (
        "new"
        if m == math.inf
        else (fmt_change(m) if g.rel_change is not None else "≥ " + fmt_change(m))
    )


def _tensors(ck: CheckpointDiff, values: bool) -> list[str]:
    changed = ranked(ck.tensors)
    if not changed:
        return []
    same = len(ck.tensors) - len(changed)
    shown = changed[:MAX_ROWS]
    headers = VALUE_HEADERS if values else TENSOR_HEADERS
    out = [
        f"<h3>Changed tensors ({len(changed):,}"
        + (f"; {same:,} unchanged not listed" if same else "")
        + ")</h3>",
        '<p class="mute">Click a column header to sort.</p>',
    ]
    rows = [[_t(c) for c in tensor_cells(t, values)] for t in shown]
    rows = [[f"<code>{c}</code>" if i == 1 else c for i, c in enumerate(row)] for row in rows]
    out.append(
        _table(
            headers,
            rows,
            numeric=(3, 4, 5),
            keys=[_tensor_keys(t, values) for t in shown],
            sortable=True,
            names=(1,),
        )
    )
    if len(changed) > len(shown):
        out.append(
            f'<p class="mute">… {len(changed) - len(shown):,} more changed tensors not shown; '
            "<code>git snap diff --format json</code> has them all.</p>"
        )
    return out


def _tensor_keys(t: TensorChange, values: bool) -> list[float | None]:
    v = t.values
    moved = v.rel_change if v is not None else t.change
    keys: list[float | None] = [
        None,
        None,
        None,
        math.inf if moved is None and t.status != "modified" else moved,
    ]
    if values:
        keys += [v.cosine if v else None, v.changed_fraction if v else None]
    else:
        for key in ("mean", "std"):
            b, a = t.stat(key)
            keys.append(a - b if a is not None and b is not None else None)
    return keys


def _env(ck: CheckpointDiff, before: str, after: str) -> list[str]:
    """What differs between the environments the two sides were saved in (provenance)."""
    if not ck.env:
        return []
    rows = [[_t(c, None) for c in env_cells(e)] for e in ck.env]
    table = _table([ENV_HEADER, _t(before), _t(after)], rows)
    return [f'<section class="env"><h3>Environment</h3>{table}</section>']


# ---------------------------------------------------------------- security


def _state(ck: CheckpointDiff, before: str, after: str) -> list[str]:
    """The training state (epoch, global_step, learning rates, ...) that differs."""
    state = ck.state_changes
    if not state:
        return []
    rows = [[_t(c, None) for c in state_cells(m)] for m in state]
    keys: list[list[float | None]] = [[None, None, None, m.abs_change] for m in state]
    headers = [STATE_HEADERS[0], _t(before), _t(after), STATE_HEADERS[3]]
    table = _table(headers, rows, numeric=(1, 2, 3), keys=keys)
    return [f'<section class="state"><h3>Training state</h3>{table}</section>']


def _security(ck: CheckpointDiff) -> list[str]:
    """What the newer side's pickles would run at ``torch.load``: the reviewer reads it first."""
    if not ck.security:
        return []
    items = "".join(f"<li>⚠ {_t(security_line(f))}</li>" for f in ck.security)
    return [f'<section class="security"><h3>Security</h3><ul>{items}</ul></section>']


# ---------------------------------------------------------------- log page


def render_log_html(entries: Sequence[LogEntry]) -> str:
    """A page for ``git snap log --format html``: per checkpoint, one line chart per
    numeric metric across its snapshots (oldest first), and the snapshots as a table."""
    by_path: dict[str, list[LogEntry]] = {}
    for e in entries:
        by_path.setdefault(e.path, []).append(e)
    title = "Snapshot history" + (f": {_t(entries[0].path)}" if len(by_path) == 1 else "")
    body = [f"<h1>{title}</h1>"]
    if not entries:
        body.append("<p>No snapshots.</p>")
    for path, found in by_path.items():
        history = list(reversed(found))  # api.log is newest first; a chart reads left to right
        body.append(f"<h2><code>{_t(path)}</code>: {len(history)} snapshots</h2>")
        # The values that hold: the pointer's, with a note's on top (marked in the table).
        names = sorted({k for e in history for k, v in e.effective_metrics.items() if _numeric(v)})
        if not names:
            body.append('<p class="mute">No numeric metrics recorded in these snapshots.</p>')
        for name in names:
            points = [
                (_where(e), v)
                for e in history
                if (v := _number(e.effective_metrics.get(name))) is not None
            ]
            body.append(line_chart(points, escape(name, NAME_LIMIT)))
        rows = [
            [
                _t(_where(e)),
                _t(e.snapshot_id[:12]),
                _t(e.message or e.subject),
                _t(_metrics_cell(e), None),
                _t("  ".join([*e.tags, *(f"stage {st}" for st in e.stages)]), None),
            ]
            for e in reversed(history)
        ]
        body.append(
            _table(["commit", "snapshot", "message", "metrics", "registry"], rows, names=(2, 3))
        )
    return _page(title, body)


def _metrics_cell(e: LogEntry) -> str:
    """``name=value`` for each metric that holds; a note's value says so (``eval`` when
    ``git snap eval`` wrote it) and what it replaced."""
    noted = (e.note or {}).get("metrics", {})
    cells = []
    for k, v in sorted(e.effective_metrics.items()):
        was = f", pointer {_fmt(e.metrics[k])}" if k in noted and k in e.metrics else ""
        origin = "eval" if k in e.evaluated else "note"
        cells.append(f"{k}={_fmt(v)}" + (f" ({origin}{was})" if k in noted else ""))
    return ", ".join(cells)


def _number(v: object) -> float | None:
    """``v`` as a float when it is a finite number (not a bool), else None."""
    return float(v) if isinstance(v, (int, float)) and _numeric(v) else None


def _numeric(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _where(e: LogEntry) -> str:
    return e.commit[:8] if e.commit else "uncommitted"


def _fmt(v: Any) -> str:
    return _g(v) if isinstance(v, float) else str(v)


# ---------------------------------------------------------------- compare page


def compare(r: CompareResult) -> str:
    """The page for ``git snap compare --format html``."""
    title = "Snapshots compared: " + " · ".join(_t(x) for x in r.revisions)
    body = [f"<h1>{title}</h1>"]
    if r.metric is not None:
        way = "largest" if r.best == "max" else "smallest"
        where = "--best" if r.best_from == "option" else f"as {r.best_from} declares"
        body.append(
            f'<p class="summary">Best: the {way} <code>{_t(r.metric)}</code> ({_t(where)}).</p>'
        )
    for t in r.registered:
        body.append(
            f'<p class="better">Registered <code>{_t(t.tag)}</code> on commit '
            f"<code>{_t(t.commit[:10])}</code>.</p>"
        )
    if not r.checkpoints:
        body.append("<p>No model snapshots in these revisions.</p>")
    for ck in r.checkpoints:
        body += _comparison(ck, r.metric)
    body.append(f'<p class="mute">{_t(COMPARE_LEGEND, None)}</p>')
    return _page(title, body)


def _comparison(ck: CheckpointComparison, metric: str | None) -> list[str]:
    heads = [compare_header(c, i == ck.best) for i, c in enumerate(ck.columns)]
    rows = []
    for row in compare_rows(ck):
        cells = [_t(row.label, None)]
        for i, (cell, verdict) in enumerate(zip(row.cells, row.verdicts, strict=True)):
            text = _t(cell, None)
            if verdict:
                text = f'<span class="{verdict}">{text}</span>'
            if i == ck.best and row.metric is not None and row.metric == metric:
                text = f"<strong>{text}</strong>"
            cells.append(text)
        rows.append(cells)
    out = [f"<h2><code>{_t(ck.path)}</code>: {len(ck.columns)} snapshots</h2>"]
    out.append(_table(["", *(_t(h) for h in heads)], rows, names=(0,)))
    for m in ck.metrics:
        points = [
            (heads[i], v, _g(v))
            for i, cell in enumerate(m.cells)
            if cell.sources_after and (v := _number(cell.after)) is not None
        ]
        if points and all(v >= 0 for _, v, _ in points):
            what = f" ({m.better} is better)" if m.better else ""
            out.append(bar_chart(points, escape(m.name, NAME_LIMIT) + what))
    moved = [(heads[i], c.drift) for i, c in enumerate(ck.columns) if c.drift is not None]
    if moved:
        bars = [
            (h, d.movement, change_cell(d.rel_change, None if d.exact else d.movement))
            for h, d in moved
        ]
        exact = all(d.exact for _, d in moved)
        what = "‖ΔW‖/‖W‖" if exact else "lower bound of ‖ΔW‖/‖W‖ from the stats"
        out.append(bar_chart(bars, f"How far each snapshot moved from the first ({what})"))
    return out
