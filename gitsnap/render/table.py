"""The terminal view of ``git snap diff``: tables, in colour (by rich) only on a terminal.

For each checkpoint: a summary line, the metrics and params, the most-changed
layers (``--top``), and the changed tensors, most moved first (``--all``:
every tensor). The cells are the Markdown renderer's, so both views say the
same thing.

On a terminal the tables fit its width (rich wraps cells); piped to a file or
a CI log (``width=None``) they are laid out at their full width, no line
wrapped and no name cut, as git does. Names come escaped and bounded
(:mod:`gitsnap.render.escape`), so a hostile megabyte-long name costs a
bounded, linear layout.
"""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING, Any, NamedTuple

from gitsnap.pickle_policy import security_line
from gitsnap.render.escape import escape
from gitsnap.render.markdown import (
    COMPARE_LEGEND,
    ENV_HEADER,
    GROUP_HEADERS,
    TENSOR_HEADERS,
    VALUE_HEADERS,
    VERDICT_STYLE,
    changed_groups,
    compare_header,
    compare_rows,
    env_cells,
    group_cells,
    metric_cells,
    ranked,
    side_label,
    tensor_cells,
)
from gitsnap.render.text import STATE_HEADERS, diff_files_line, diff_summary_line, state_cells

if TYPE_CHECKING:
    from gitsnap.commands.compare import CompareResult
    from gitsnap.diff import DiffResult

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


def width_for(stream: Any) -> int | None:
    """The width to lay the view out in: the terminal's (``COLUMNS`` first), or None.

    None (not a terminal: a file, a pipe, a CI log) means the full width of
    the tables, as git does: a log is read by tools and by people scrolling,
    and a wrapped or cut tensor name is neither greppable nor readable.
    """
    if not stream.isatty():
        return None
    import shutil

    return shutil.get_terminal_size().columns


class _Line(NamedTuple):
    parts: tuple[tuple[str, str], ...]  # (text, rich style)
    soft_wrap: bool = True  # False: wrapped at the console width


class _Table(NamedTuple):
    headers: list[str]
    right_from: int  # columns from this one on are right-aligned
    rows: list[list[str]]
    first_styles: list[str]  # the style of each row's first cell
    min_width: dict[int, int]  # column -> minimum width


def _layout(r: DiffResult, top: int, all_tensors: bool) -> list[_Line | _Table | None]:
    """What the view shows, in order (None: a blank line), for either back end below."""
    before = side_label(r.before, r.before_commit)
    after = side_label(r.after, r.after_commit)
    out: list[_Line | _Table | None] = [
        _Line(((f"diff {before} → {after}" + ("  (with values)" if r.values else ""), "bold"),))
    ]
    if not r.checkpoints:
        out.append(_Line((("no model snapshots on either side", ""),), soft_wrap=False))
    for ck in r.checkpoints:
        out.append(None)
        ids = ""
        if ck.before and ck.after and ck.status == "modified":
            ids = f"  {ck.before.snapshot_id[:12]} → {ck.after.snapshot_id[:12]}"
        if ck.after and ck.after.unsaved:
            ids += " (unsaved)"
        out.append(
            _Line(
                (
                    (escape(ck.path), "bold"),
                    (f"  {ck.status}", STATUS_STYLE.get(ck.status, "")),
                    (ids, ""),
                )
            )
        )
        out.append(_Line(((diff_summary_line(ck), ""),)))
        files = diff_files_line(ck)
        if files:
            out.append(_Line(((files, ""),)))
        for f in ck.security:
            style = "bold red" if f.kind == "unsafe" else "yellow"
            out.append(_Line(((f"⚠ {escape(security_line(f))}", style),)))
        rows = [metric_cells(m) for m in ck.metrics] + [metric_cells(m, "param") for m in ck.params]
        if rows:
            headers = ["metric", before, after, "Δ", "Δ %", "source"]
            styles = [VERDICT_STYLE.get(mc.verdict or "", "") for mc in [*ck.metrics, *ck.params]]
            out.append(_Table(headers, 1, rows, styles, {}))
        if ck.env:
            rows = [env_cells(e) for e in ck.env]
            out.append(_Table([ENV_HEADER, before, after], 1, rows, [""] * len(rows), {}))
        state = ck.state_changes
        if state:
            rows = [state_cells(m) for m in state]
            headers = [STATE_HEADERS[0], before, after, STATE_HEADERS[3]]
            out.append(_Table(headers, 1, rows, [""] * len(rows), {}))
        groups = changed_groups(ck, top)
        if groups:
            rows = [group_cells(g, r.values) for g in groups]
            out.append(_Table(list(GROUP_HEADERS), 1, rows, [""] * len(rows), {}))
        changed = ranked(ck.tensors)
        listed = [*changed] if all_tensors else changed[:LIMIT]
        if all_tensors:
            listed += [c for c in ck.tensors if not c.changed]
        if listed:
            cells = [tensor_cells(c, r.values) for c in listed]
            out.append(
                _Table(
                    VALUE_HEADERS if r.values else TENSOR_HEADERS,
                    3,
                    cells,
                    [STATUS_STYLE.get(c.status, "") for c in listed],
                    {1: min(30, max(len(row[1]) for row in cells))},
                )
            )
        more = len(changed) - sum(c.changed for c in listed)
        same = len(ck.tensors) - len(changed) if not all_tensors else 0
        notes = [
            f"{more} more changed" if more else "",
            f"{same} unchanged tensor{'s' if same != 1 else ''}" if same else "",
        ]
        if more or same:
            text = ", ".join(x for x in notes if x) + " (--all lists them)"
            out.append(_Line(((text, "dim"),), soft_wrap=False))
    return out


def _render(layout: list[_Line | _Table | None], color: bool, width: int | None) -> str:
    """A layout as text: by hand when it can be (:func:`_plain`), else by rich."""
    text = None if color else _plain(layout, width)
    if text is None:
        text = _rich(layout, color, width if width is not None else _full_width(layout))
    return "\n".join(_TRAILING.sub(r"\1", line) for line in text.splitlines())


def compare(r: CompareResult, *, color: bool = False, width: int | None = 120) -> str:
    """Render a :class:`gitsnap.commands.compare.CompareResult`: per checkpoint, one column
    per snapshot (the best marked), one row per field (the cells of
    :func:`gitsnap.render.markdown.compare_rows`: a metric's change from the first column
    says ``better`` or ``worse`` where ``.gitsnap.yaml`` declares a direction)."""
    out: list[_Line | _Table | None] = [
        _Line(((f"compare {' '.join(escape(x) for x in r.revisions)}", "bold"),))
    ]
    if r.metric is not None:
        way = "largest" if r.best == "max" else "smallest"
        where = "--best" if r.best_from == "option" else r.best_from
        out.append(_Line(((f"best: the {way} {escape(r.metric)} ({where})", ""),)))
    for t in r.registered:
        out.append(_Line(((f"registered {escape(t.tag)} on commit {t.commit[:10]}", "green"),)))
    if not r.checkpoints:
        out.append(_Line((("no model snapshots in these revisions", ""),), soft_wrap=False))
    for ck in r.checkpoints:
        out += [None, _Line(((escape(ck.path), "bold"),))]
        headers = [""] + [compare_header(c, i == ck.best) for i, c in enumerate(ck.columns)]
        cells = [[row.label, *row.cells] for row in compare_rows(ck)]
        out.append(_Table(headers, 1, cells, ["bold"] * len(cells), {}))
    out += [None, _Line(((COMPARE_LEGEND, "dim"),))]
    return _render(out, color, width)


def diff(
    r: DiffResult,
    *,
    top: int = 10,
    all_tensors: bool = False,
    color: bool = False,
    width: int | None = 120,
) -> str:
    """Render a :class:`gitsnap.diff.DiffResult`; ``color`` adds ANSI styles (on a TTY).

    Lists the changed tensors, at most :data:`LIMIT` of them (the most
    changed); ``all_tensors`` lists every tensor, unchanged ones too.
    ``width=None`` lays every table out at its full width (see
    :func:`width_for`). Without colour, a view whose tables fit the width is
    laid out here, character for character as rich would
    (tests/render/test_diff_render.py checks it), without importing rich: that is
    ~70 ms of a structural diff's budget.
    """
    return _render(_layout(r, top, all_tensors), color, width)


def _rich(layout: list[_Line | _Table | None], color: bool, width: int) -> str:
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
    for item in layout:
        if item is None:
            console.print()
        elif isinstance(item, _Line):
            line = Text()
            for part, style in item.parts:
                line.append(part, style=style)
            console.print(line, soft_wrap=item.soft_wrap)
        else:
            t = Table(
                box=box.SIMPLE_HEAD,
                show_edge=False,
                pad_edge=False,
                header_style="bold" if color else "",
            )
            for i, h in enumerate(item.headers):
                t.add_column(
                    h, justify="right" if i >= item.right_from else "left", overflow="fold"
                )
            for i, w in item.min_width.items():
                t.columns[i].min_width = w
            for row, style in zip(item.rows, item.first_styles, strict=True):
                cells = [Text(c) for c in row]
                cells[0].stylize(style)
                t.add_row(*cells)
            console.print(t)
    return buf.getvalue()


def _full_width(layout: list[_Line | _Table | None]) -> int:
    """A width at which rich wraps nothing: the widest line or table, in terminal cells."""
    from rich.cells import cell_len

    widest = 80
    for item in layout:
        if isinstance(item, _Line):
            widest = max(widest, cell_len("".join(part for part, _ in item.parts)))
        elif isinstance(item, _Table):
            widths = [0] * len(item.headers)
            for row in (item.headers, *item.rows):
                for i, cell in enumerate(row):
                    widths[i] = max(widths[i], cell_len(cell), item.min_width.get(i, 0))
            widest = max(widest, sum(widths) + 3 * (len(widths) - 1))
    return widest + 1


# Characters outside ASCII that the cells use; each is one terminal column,
# as for rich. Any other character (a CJK or combining one in a tensor name,
# a control character) sends the view to rich, which knows its width.
_NARROW = frozenset("‖Δ→·…≥")


def _narrow(text: str) -> bool:
    if text.isascii():
        return text.isprintable()
    return all((ch.isascii() and ch.isprintable()) or ch in _NARROW for ch in text)


def _plain(layout: list[_Line | _Table | None], width: int | None) -> str | None:
    """The colourless view as rich lays it out, or None when only rich can say.

    rich's SIMPLE_HEAD table without edges: each column as wide as its widest
    cell (header included), columns three blanks apart (one blank of padding
    each side and a blank rule), a rule of ``─`` under the header; cells
    padded left or right, a right-aligned cell stripped of trailing blanks
    first. That holds while the table fits ``width``; past it rich wraps
    cells, and past the width a line that is not soft-wrapped is wrapped too.
    ``width=None``: no width to fit, nothing wraps.
    """
    limit = width if width is not None else float("inf")
    out: list[str] = []
    for item in layout:
        if item is None:
            out.append("")
        elif isinstance(item, _Line):
            text = "".join(part for part, _ in item.parts)
            if not _narrow(text) or (not item.soft_wrap and len(text) > limit):
                return None
            out.append(text)
        else:
            cols = len(item.headers)
            widths = [item.min_width.get(i, 0) for i in range(cols)]
            for row in (item.headers, *item.rows):
                for i, cell in enumerate(row):
                    if not _narrow(cell):
                        return None
                    widths[i] = max(widths[i], len(cell))
            if sum(widths) + 3 * (cols - 1) > limit:
                return None
            right = item.right_from
            for row in (item.headers, *item.rows):
                out.append(
                    "   ".join(
                        cell.rstrip().rjust(widths[i]) if i >= right else cell.ljust(widths[i])
                        for i, cell in enumerate(row)
                    )
                )
                if row is item.headers:
                    out.append("─" * (sum(widths) + 3 * (cols - 1)))
    return "\n".join(out) + "\n"


# Trailing blanks, also those followed only by colour codes.
_TRAILING = re.compile(r"[ ]+((?:\x1b\[[0-9;]*m)*)$")
