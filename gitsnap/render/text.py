"""Plain-text output for people. No rich here: these run on the fast paths."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: a clean status loads no other command
    from gitsnap.commands.checkout import CheckoutEntry
    from gitsnap.commands.init import InitResult
    from gitsnap.commands.log import LogEntry
    from gitsnap.commands.save import SaveResult
    from gitsnap.commands.saves import SaveEntry
    from gitsnap.commands.show import ShowResult
    from gitsnap.commands.status import StatusResult
    from gitsnap.problems import ItemProblem

from gitsnap.errors import RESAVE
from gitsnap.render.escape import NAME_LIMIT, escape
from gitsnap.working import human_size

# Every string that comes from a checkpoint, a pointer, a note, a commit, a
# config file or a file name goes through escape() (gitsnap.render.escape)
# before it reaches a terminal or a log; numbers and our own words need not.


def fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return escape(v)


def fmt_mapping(m: dict[str, Any]) -> str:
    return "  ".join(f"{escape(k)}={fmt_value(v)}" for k, v in m.items())


def _lines(text: str, indent: str) -> list[str]:
    """A multi-line message, each line indented and escaped (a CR shows as ``\\r``)."""
    return [indent + escape(line) for line in text.rstrip("\n").split("\n")]


def init(r: InitResult) -> str:
    root = escape(r.root)
    lines = [f"{'initialized DVC and ' if r.dvc_initialized else ''}gitsnap ready in {root}"]
    lines.append(f"objects go to {escape(r.cache_dir)}/gitsnap/blake3")
    if r.remote:
        lines.append(f"default remote: {escape(r.remote)}")
    if r.to_commit:
        files = " ".join(escape(x) for x in r.to_commit)
        lines.append(f"next: git add {files} && git commit -m 'set up gitsnap'")
    # ---- hooks: init installs them only when asked (--hooks); otherwise it says how
    missing = r.hooks_missing
    if r.hooks is not None:
        lines.append(install(r.hooks))
    elif r.hook_states and not missing:
        lines.append(f"git hooks installed: {escape(', '.join(r.hook_states))}")
    else:
        which = "" if len(missing) == len(r.hook_states) else f" ({escape(', '.join(missing))})"
        lines.append(
            f"git hooks not installed{which}; "
            "to check commits and push weights with git push: git snap install"
        )
    return "\n".join(lines)


def save(results: Sequence[SaveResult]) -> str:
    lines = []
    for r in results:
        if not r.changed:
            lines.append(f"unchanged {escape(r.path)} (snapshot {r.snapshot_id[:12]})")
            continue
        lines.append(
            f"saved {escape(r.path)} -> {escape(r.pointer)}  snapshot {r.snapshot_id[:12]}, "
            f"{r.tensors} tensor{'s' if r.tensors != 1 else ''}, "
            f"{human_size(r.size)}; stored {r.objects_written} new "
            f"object{'s' if r.objects_written != 1 else ''} "
            f"({human_size(r.bytes_written)}) in {r.seconds:.2f} s"
        )
    return "\n".join(lines)


def problems(items: Sequence[ItemProblem]) -> str:
    """Checkpoints a command could not handle, one ``error:`` line (and ``hint:``) each."""
    lines = []
    for p in items:
        # Most errors already name the file (the pointer, or a file of the folder).
        said = p.message if p.message.startswith(p.path) else f"{p.path}: {p.message}"
        lines.append(f"error: {escape(said)}")
        if p.hint:
            lines.append(f"hint: {escape(p.hint)}")
    return "\n".join(lines)


def status(r: StatusResult) -> str:
    if not r.entries:
        return "no saved checkpoints (git snap save PATH records one)"
    groups: list[tuple[str, str, list[str]]] = [
        ("Pointers in a merge conflict:",
         'use "git snap resolve <path> --ours|--theirs|--base" to choose a side',
         [f"conflicted: {escape(e.path)}" for e in r.entries if e.state == "conflicted"]),
        ("Checkpoints holding another saved snapshot than their pointer names:",
         'use "git snap checkout <path>..." to restore the snapshot the pointer names; '
         "the one on disk is in the store",
         [f"outdated: {escape(e.path)} (is {(e.working_id or '')[:12]})"
          for e in r.entries if e.state == "outdated"]),
        ("Checkpoints changed since their pointer:",
         'use "git snap save <path>..." to record them, '
         'or "git snap checkout --force <path>" to discard',
         [f"modified: {escape(e.path)}" for e in r.entries if e.state == "modified"]),
        ("Pointers whose checkpoint is absent:",
         'use "git snap checkout" to restore them',
         [f"absent:   {escape(e.path)}" for e in r.entries if e.state == "absent"]),
        ("Pointers whose objects are missing from the local store:",
         'use "git snap pull" to fetch them',
         [f"{escape(e.path)} ({e.missing_objects} of {e.total_objects} objects missing)"
          for e in r.entries if e.missing_objects]),
        ("Checkpoint folders holding entries no snapshot has (kept by checkout, never saved):",
         'move them out of the folder to version them elsewhere; '
         '"git snap checkout --force" deletes those a snapshot replaces',
         [f"{escape(e.path)}: {_listed(e.unowned)}" for e in r.entries if e.unowned]),
    ]  # fmt: skip
    lines = []
    for title, hint, items in groups:
        if items:
            lines += [title, f"  ({hint})", *(f"\t{i}" for i in items), ""]
    clean = sum(
        1 for e in r.entries if e.state == "clean" and not e.missing_objects and not e.unowned
    )
    if not lines:
        return f"clean: {clean} checkpoint{'s' if clean != 1 else ''} match their pointers"
    if clean:
        lines.append(f"{clean} other checkpoint{'s' if clean != 1 else ''} clean")
    return "\n".join(lines).rstrip()


def _listed(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(escape(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def checkout(results: Sequence[CheckoutEntry]) -> str:
    lines = []
    for r in results:
        if r.action == "conflicted":
            lines.append(
                f"skipped {escape(r.path)}: its pointer is in a merge conflict "
                f"(git snap resolve {escape(r.path)} --ours|--theirs|--base)"
            )
            continue
        lines.append(
            f"{'restored' if r.action == 'restored' else 'up to date'} {escape(r.target)} "
            f"(snapshot {r.snapshot_id[:12]}, {human_size(r.size)})"
        )
        lines += [f"  dropped (--force): {escape(d)}" for d in r.dropped]
    return "\n".join(lines)


def log(entries: Sequence[LogEntry]) -> str:
    out = []
    for e in entries:
        if e.commit is None:
            where = "uncommitted"
        else:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.commit_time or 0))
            where = f"commit {e.commit[:10]}, {when}"
        out.append(f"snapshot {escape(e.snapshot_id[:12])}  {escape(e.path)}  ({where})")
        if e.message:
            out += _lines(e.message, "    ")
        if e.subject and e.subject != e.message:
            out.append(f"    commit: {escape(e.subject)}")
        out.append(f"    {e.tensors} tensors, {human_size(e.size)}, saved {escape(e.created)}")
        note = e.note or {}
        noted = note.get("metrics") or {}
        for kind, source, values in (
            ("metrics", "pointer", e.metrics),
            ("metrics", "eval", {k: v for k, v in noted.items() if k in e.evaluated}),
            ("metrics", "note", {k: v for k, v in noted.items() if k not in e.evaluated}),
            ("params", "pointer", e.params),
            ("params", "note", note.get("params")),
        ):
            if values:  # each value marked by where it comes from; a note's wins (D6)
                out.append(f"    {f'{kind} ({source}):':<19}{fmt_mapping(values)}")
        if e.tags or e.stages:
            held = f"  stages: {' '.join(escape(s) for s in e.stages)}" if e.stages else ""
            out.append(f"    registry: {'  '.join(escape(t) for t in e.tags) or '-'}{held}")
        out.append("")
    return "\n".join(out).rstrip()


def saves(entries: Sequence[SaveEntry]) -> str:
    """``log --all-saves``."""
    out = []
    for e in entries:
        where = f"committed {e.commit[:10]}" if e.commit else "uncommitted"
        how = "" if e.reason == "save" else f", recorded by {escape(e.reason)}"
        out.append(
            f"snapshot {escape(e.snapshot_id[:12])}  {escape(e.path)}  "
            f"({where}, saved {escape(e.recorded)}{how})"
        )
        if e.message:
            out += _lines(e.message, "    ")
        out.append(f"    {e.tensors} tensors, {human_size(e.size)}")
        if e.metrics:
            out.append(f"    metrics: {fmt_mapping(e.metrics)}")
        if e.params:
            out.append(f"    params:  {fmt_mapping(e.params)}")
        if not e.committed:
            out.append(
                f"    restore: git snap checkout --snapshot {escape(e.snapshot_id[:12])} "
                f"{escape(e.path)}"
            )
        out.append("")
    return "\n".join(out).rstrip()


def show(r: ShowResult) -> str:
    p = r.pointer
    head = [
        f"snapshot {escape(p.id)}",
        f"path:     {escape(r.path)}"
        + (f"  (at {escape(r.rev)}, commit {r.commit[:10]})" if r.commit else "  (work tree)"),
        f"format:   {escape(p.format)}, {len(p.tensors)} tensors, {human_size(p.size)}",
        f"created:  {escape(p.created)}",
    ]
    if p.parent:
        head.append(f"parent:   {escape(p.parent[:12])}")
    if p.message:
        head += _lines(p.message, "message:  ")[:1] + _lines(p.message, " " * 10)[1:]
    if p.metrics:
        head.append(f"metrics:  {fmt_mapping(p.metrics)}")
    if p.params:
        head.append(f"params:   {fmt_mapping(p.params)}")
    if p.env:
        head.append(f"env:      {_env_line(p.env)}")
    cols = ["name", "dtype", "shape", "size", "mean", "std", "min", "max", "l2", "nonfinite"]
    rows = [
        [
            escape(t.name or "", NAME_LIMIT),
            escape(t.dtype or "", NAME_LIMIT),
            "x".join(str(d) for d in t.shape or ()) or "scalar",
            human_size(t.size),
            *(fmt_value(t.stats[k]) if k in t.stats else "-" for k in cols[4:]),
        ]
        for t in p.tensors
    ]
    widths = [
        max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)
    ]
    table = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    table += [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join([*head, "", *table])


def _env_line(env: Mapping[str, Any]) -> str:
    """``python 3.11.7, torch 2.13.0, … (185 installed, digest 1a2b3c4d5e6f)``: the saving env."""
    parts = [f"python {escape(str(env['python']), NAME_LIMIT)}"] if env.get("python") else []
    packages = env.get("packages")
    if isinstance(packages, Mapping):
        parts += [
            f"{escape(str(k), NAME_LIMIT)} {escape(str(v), NAME_LIMIT)}"
            for k, v in sorted(packages.items())
        ]
    installed, digest = env.get("installed"), env.get("digest")
    if installed is not None or digest:
        whole = [f"{installed} installed"] if installed is not None else []
        whole += [f"digest {escape(str(digest)[:12])}"] if digest else []
        parts.append(f"({', '.join(whole)})")
    return ", ".join(parts) if parts else "-"


# ---------------------------------------------------------------- remotes (push / fetch / pull)


def transfer(r: Any) -> str:
    """A ``TransferResult`` (gitsnap.transfer) as a few lines."""
    verb = "pushed" if r.direction == "push" else "fetched"
    to_from = "to" if r.direction == "push" else "from"
    where = f" {to_from} {escape(r.remote)} ({escape(r.url)})" if r.remote else ""
    lines = [
        f"{verb} {r.objects_transferred} object{'s' if r.objects_transferred != 1 else ''} "
        f"({human_size(r.bytes_transferred)}){where} in {r.seconds:.2f} s; "
        f"{r.objects_skipped} already {'there' if r.direction == 'push' else 'local'} "
        f"({human_size(r.bytes_skipped)}), "
        f"{r.snapshots} snapshot{'s' if r.snapshots != 1 else ''}"
    ]
    if r.objects_failed:
        lines.append(
            f"{r.objects_failed} object{'s' if r.objects_failed != 1 else ''} failed "
            f"({human_size(r.bytes_failed)})"
        )
    if r.notes.startswith("failed"):
        lines.append(f"warning: git notes {escape(r.notes)}")
    elif r.notes in ("pushed", "fetched", "merged"):
        lines.append(f"git notes (refs/notes/gitsnap) {r.notes}")
    return "\n".join(lines)


def pull(r: Any) -> str:
    return "\n".join(x for x in (transfer(r.fetch), checkout(r.checkout)) if x)


def remote_status(r: Any) -> str:
    if not r.entries:
        return "no saved checkpoints (git snap save PATH records one)"
    missing = [e for e in r.entries if e.missing_objects]
    if not missing:
        n = len(r.entries)
        return (
            f"remote {escape(r.remote)} ({escape(r.url)}) has every object of "
            f"{n} snapshot{'s' if n != 1 else ''}"
        )
    lines = [
        f"Snapshots not (fully) on remote {escape(r.remote)} ({escape(r.url)}):",
        '  (use "git snap push" to upload them)',
    ]
    for e in missing:
        where = f"commit {e.commit[:10]}" if e.commit else "work tree"
        lines.append(
            f"\t{escape(e.path)} ({where}, snapshot {e.snapshot_id[:12]}): "
            f"{e.missing_objects} of {e.total_objects} objects missing, "
            f"{human_size(e.missing_bytes)}"
        )
    return "\n".join(lines)


class TransferProgress:
    """A one-line progress display (objects and bytes) for a terminal.

    The CLI uses it only on a TTY.
    """

    def __init__(self, stream: Any, label: str, interval: float = 0.1) -> None:
        import threading

        self.stream = stream
        self.label = label
        self.interval = interval
        self.lock = threading.Lock()
        self.objects = self.nbytes = self.done_objects = self.done_bytes = 0
        self.started = self.last = 0.0
        self.active = False

    def start(self, objects: int, nbytes: int) -> None:
        self.objects, self.nbytes = objects, nbytes
        self.started = time.monotonic()
        self.active = objects > 0
        self._draw(force=True)

    def advance(self, nbytes: int) -> None:
        with self.lock:
            self.done_bytes += nbytes
        self._draw()

    def object_done(self) -> None:
        with self.lock:
            self.done_objects += 1
        self._draw()

    def close(self) -> None:
        if self.active:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()
            self.active = False

    def _draw(self, force: bool = False) -> None:
        if not self.active:
            return
        now = time.monotonic()
        with self.lock:
            if not force and now - self.last < self.interval:
                return
            self.last = now
            rate = self.done_bytes / max(now - self.started, 1e-6)
            pct = 100.0 * self.done_bytes / self.nbytes if self.nbytes else 100.0
            width = 24
            filled = int(width * pct / 100)
            line = (
                f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {pct:5.1f}%  "
                f"{self.done_objects}/{self.objects} objects  "
                f"{human_size(self.done_bytes)}/{human_size(self.nbytes)}  {human_size(rate)}/s"
            )
            self.stream.write(line + "\x1b[K")
            self.stream.flush()


# ---------------------------------------------------------------- review (diff, metrics, textconv)


def fmt_num(v: float | int | None, digits: int = 4) -> str:
    """A number for a table cell: ``-`` for none, ints with separators, else ``digits`` digits."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:.{digits}g}"


def fmt_signed(v: float | None, digits: int = 4) -> str:
    return "-" if v is None else f"{v:+.{digits}g}"


def fmt_pct(frac: float | None, *, signed: bool = False, digits: int = 3) -> str:
    """``0.1234`` -> ``12.3%`` (``+12.3%`` when signed)."""
    if frac is None:
        return "-"
    if frac == float("inf"):
        return "new"
    return f"{frac * 100:{'+' if signed else ''}.{digits}g}%"


def fmt_shape(shape: Sequence[int] | None) -> str:
    return "x".join(str(d) for d in shape) if shape else "scalar"


def fmt_scalar(v: Any) -> str:
    """A metric or param value: floats to 6 significant digits, ``-`` when absent."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v).lower()
    return f"{v:.6g}" if isinstance(v, float) else escape(v)


def diff_summary_line(ck: Any) -> str:
    """One line of counts for a checkpoint diff.

    ``3 of 12 tensors changed (2 modified, 1 added) · 1,290 of 10,538 params
    (12.2%) · 1.2 KiB new (12.4% of 9.8 KiB)``; with optimizer state, ``model: 16 of
    104 tensors changed · optimizer state: 208 tensors changed · ...`` (``N of M`` when
    not all of the optimizer's tensors changed), the params being the model's.
    """
    s = ck.summary
    total = max(s.tensors_after, s.tensors_before)
    parts = [f"{n} {status}" for status, n in s.counts.items() if n and status != "unchanged"]
    head = f"{s.tensors_changed} of {total} tensors changed" + (
        f" ({', '.join(parts)})" if parts else ""
    )
    params = max(s.params_after, s.params_before)
    new = f"{fmt_pct(s.bytes_new_fraction)} of {human_size(s.bytes_after)}"
    opt = getattr(ck, "optimizer", None)
    if opt is not None:
        # Optimizer moments are not model parameters: counted apart, never in "params".
        # A training step moves every moment: "208 tensors changed" then says it all.
        o_total = max(opt.tensors_after, opt.tensors_before)
        o_changed = opt.tensors_changed
        count = f"{o_changed}" if o_changed == o_total else f"{o_changed} of {o_total}"
        head = f"model: {head} · optimizer state: {count} tensors changed"
    return (
        f"{head} · {s.params_changed:,} of {params:,} params ({fmt_pct(s.params_changed_fraction)})"
        f" · {human_size(s.bytes_new)} new ({new})"
    )


STATE_HEADERS = ("training state", "before", "after", "Δ")


def state_cells(m: Any) -> list[str]:
    """A training-state row (``epoch``, ``optimizer.pt:param_groups.0.lr``): name, both sides, Δ."""
    delta = m.abs_change
    return [
        escape(m.name, NAME_LIMIT),
        fmt_scalar(m.before) if m.sources_before else "-",
        fmt_scalar(m.after) if m.sources_after else "-",
        "" if delta is None else f"{delta:+.6g}",
    ]


def diff_files_line(ck: Any) -> str | None:
    """What happened to a folder checkpoint's files; None when none was added, removed or changed.

    ``files: 10 → 3 (3 added, 10 removed; tensors unchanged) · added: model-00001-of-00003…``
    """
    moved = ck.files_changed
    if not moved:
        return None
    before = sum(f.size_before is not None for f in ck.files)
    after = sum(f.size_after is not None for f in ck.files)
    counts: dict[str, list[str]] = {"added": [], "removed": [], "modified": []}
    for f in moved:
        counts[f.status].append(f.path)
    parts = [f"{len(names)} {status}" for status, names in counts.items() if names]
    if not ck.summary.tensors_changed and ck.tensors:
        parts[-1] += "; tensors unchanged"
    head = f"files: {before} → {after}" if before != after else f"files: {after}"
    listed = [f"{status}: {_listed(names, 3)}" for status, names in counts.items() if names]
    return " · ".join([f"{head} ({', '.join(parts)})", *listed])


def metrics_add(r: Any) -> str:
    added = ", ".join(escape(x) for x in r.added)
    lines = [f"noted on {escape(r.rev)} ({r.commit[:10]}) under refs/notes/gitsnap: {added}"]
    if r.metrics:
        lines.append(f"  metrics: {fmt_mapping(r.metrics)}")
    if r.params:
        lines.append(f"  params:  {fmt_mapping(r.params)}")
    return "\n".join(lines)


def metrics_show(r: Any) -> str:
    lines = [f"{escape(r.rev)} ({r.commit[:10]})"]
    if not r.checkpoints:
        lines.append("  no snapshots at this commit")
    for ck in r.checkpoints:
        lines.append(f"{escape(ck.path)}  snapshot {escape(ck.snapshot_id[:12])}")
        for kind, items in (("metrics", ck.metrics), ("params", ck.params)):
            for mc in items:
                other = (
                    mc.sources_after.get("pointer")
                    if mc.source_after == "note" and "pointer" in mc.sources_after
                    else None
                )
                origin = escape(mc.origin_after)  # note, eval (a note git snap eval wrote), pointer
                note = (
                    f"  ({origin}; pointer had {fmt_scalar(other)})"
                    if other is not None
                    else f"  ({origin})"
                )
                name = escape(mc.name, NAME_LIMIT)
                lines.append(f"  {kind[:-1]:<6} {name} = {fmt_scalar(mc.after)}{note}")
        if not ck.metrics and not ck.params:
            lines.append("  no metrics or params")
    return "\n".join(lines)


def textconv(p: Any) -> str:
    """A pointer as ``git diff`` shows it: a short header, then one stable line per tensor.

    Offsets and full object ids are left out (they shift with every change
    before them); stats keep 4 significant digits, enough to see a tensor
    move without noise.
    """
    from gitsnap.diff import is_optimizer_state

    # Optimizer moments are counted apart from the model's tensors, as in the diff's summary.
    n_opt = sum(is_optimizer_state(t.name or "", t.file or p.path) for t in p.tensors)
    count = f"{len(p.tensors)} tensors"
    if n_opt:
        count = f"{len(p.tensors) - n_opt} tensors + {n_opt} optimizer state"
    head = [
        f"gitsnap snapshot {escape(p.id[:12])} ({escape(p.format)}, {count}, {human_size(p.size)})",
        f"path: {escape(p.path)}",
    ]
    if p.parent:
        head.append(f"parent: {escape(p.parent[:12])}")
    if p.created:
        head.append(f"created: {escape(p.created)}")
    if p.message:
        head += _lines(p.message, "message: ")
    for key in sorted(p.metrics):
        head.append(f"metric {escape(key)} = {fmt_scalar(p.metrics[key])}")
    for key in sorted(p.params):
        head.append(f"param {escape(key)} = {fmt_scalar(p.params[key])}")
    for key in sorted(p.metadata):
        value = p.metadata[key]
        if value is None or isinstance(value, (str, int, float, bool)):
            head.append(f"state {escape(key, NAME_LIMIT)} = {fmt_scalar(value)}")
    # A folder's files, one line each: an added, removed or re-sharded file is a line of the diff.
    for f in sorted(p.files, key=lambda f: f.path):
        kind = f"  {escape(f.format)}" if f.format else ""
        kind += "  executable" if f.executable else ""
        head.append(f"file {escape(f.path, NAME_LIMIT)}  {human_size(f.size)}{kind}")
    lines = [*head, ""]
    from gitsnap.pointer import colliding_names, qualified_name

    clash = colliding_names(p.tensors)
    for t in p.tensors:
        stats = "  ".join(f"{k}={t.stats[k]:.4g}" for k in ("mean", "std", "l2") if k in t.stats)
        bad = t.stats.get("nonfinite")
        if bad:
            stats += f"  nonfinite={bad}"
        name = t.name if t.name not in clash else qualified_name(t.file, t.name)
        name, dtype = escape(name, NAME_LIMIT), escape(t.dtype, NAME_LIMIT)
        oid = escape(t.oid[:12])
        lines.append(f"{name}  {dtype}[{fmt_shape(t.shape)}]  {oid}  {stats}".rstrip())
    return "\n".join(lines)


# ------------------------------------------------ registry and storage (tag / ls / gc / du / fsck)


def _when(ts: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def tag(r: Any) -> str:
    """A ``registry.TagResult``."""
    name, tag_, path = escape(r.name), escape(r.tag), escape(r.path)
    if r.action == "register":
        line = f"registered {name} {escape(r.version)}: tag {tag_} on commit {r.commit[:10]}"
    else:
        what = escape(r.version) if r.version else f"commit {r.commit[:10]}"
        line = f"assigned stage {escape(r.stage)} to {name} {what}: tag {tag_}"
    lines = [f"{line} (snapshot {r.snapshot_id[:12]} of {path})"]
    if r.worktree_differs:
        lines.append(
            f"note: {path}.snap in the work tree differs from HEAD's; the tag names HEAD's snapshot"
        )
    lines.append(
        f"pushed to {escape(r.pushed_to)}" if r.pushed_to else f"share it: git push origin {tag_}"
    )
    return "\n".join(lines)


def _stages(stages: Sequence[Any]) -> str:
    return " ".join(f"{escape(s.stage)}={escape(s.version or s.commit[:10])}" for s in stages) or (
        "-"
    )


def ls(models: Sequence[Any]) -> str:
    """``registry.ModelSummary`` rows as a table."""
    if not models:
        return "no models (git snap save PATH records a checkpoint; .gitsnap.yaml can name it)"
    rows = [("MODEL", "VERSION", "STAGES", "COMMIT", "METRICS", "PATH")]
    for m in models:
        metrics = "  ".join(f"{escape(k)}={fmt_value(v)}" for k, v in list(m.metrics.items())[:3])
        if len(m.metrics) > 3:
            metrics += "  …"
        name = escape(m.name, NAME_LIMIT) + (" (deprecated)" if m.deprecated else "")
        commit = m.commit[:10] if m.commit else "-"
        version, path = escape(m.version or "-"), escape(m.path or "-")
        row = (name, version, _stages(m.stages), commit, metrics or "-", path)
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        for r in rows
    )


def ls_history(h: Any) -> str:
    """A ``registry.ModelHistory``: one line per tag, newest first."""
    s = h.summary
    lines = [f"model {escape(h.name)}  ({escape(h.path or 'path unknown')})",
             f"latest {escape(s.version or '-')}  stages {_stages(s.stages)}", ""]  # fmt: skip
    if not h.events:
        lines.append("no registry tags yet (git snap tag NAME v1.0.0)")
    for e in h.events:
        what = {
            "register": f"registered {escape(e.version)}",
            "deregister": f"deregistered {escape(e.version)}",
            "assign": f"stage {escape(e.stage)} assigned",
            "unassign": f"stage {escape(e.stage)} unassigned",
            "deprecate": "deprecated",
        }.get(e.action, escape(e.action))
        snap = f"  snapshot {e.snapshot_id[:12]}" if e.snapshot_id else ""
        lines.append(
            f"{_when(e.time)}  {escape(e.tag):<28} {what:<24} commit {e.commit[:10]}{snap}"
            f"  {escape(e.tagger)}"
        )
        if e.message:
            lines += _lines(e.message, "    ")[:1]
    return "\n".join(lines)


def _grace(seconds: int) -> str:
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= n and seconds % n == 0:
            return f"{seconds // n}{unit}"
    return f"{seconds}s"


def gc(r: Any) -> str:
    """A ``gc.GcResult``."""
    location = escape(r.location)
    where = f"remote {escape(r.remote)} ({location})" if r.target == "remote" else location
    lines = []
    if r.dry_run:
        for o in r.deleted:
            lines.append(f"would delete {escape(o.oid)}  {human_size(o.size)}")
    verb = "would delete" if r.dry_run else "deleted"
    lines.append(
        f"{verb} {r.objects_deleted} object{'s' if r.objects_deleted != 1 else ''} "
        f"({human_size(r.bytes_deleted)}) from {where}; kept {r.objects_kept} "
        f"({human_size(r.bytes_kept)}) needed by {r.snapshots} "
        f"live snapshot{'s' if r.snapshots != 1 else ''}"
    )
    if r.objects_recent:
        why = (
            f"younger than {_grace(r.grace_seconds)}, or delta bases of kept objects"
            if r.target == "remote" and r.packed_unreferenced
            else f"younger than {_grace(r.grace_seconds)} (--grace now drops them)"
        )
        lines.append(
            f"kept {r.objects_recent} unreferenced object{'s' if r.objects_recent != 1 else ''} "
            f"({human_size(r.bytes_recent)}) {why}"
        )
    if r.target == "local" and (r.packs_kept or r.packs_rewritten):
        verb = "would rewrite" if r.dry_run else "rewrote"
        rewrote = (
            f"; {verb} {r.packs_rewritten} without the objects dropped" if r.packs_rewritten else ""
        )
        lines.append(
            f"packs: {r.packed_objects} objects, {human_size(r.packed_bytes)} stored{rewrote}"
        )
    elif r.packs_kept or r.packs_rewritten:
        if r.packs_rewritten:
            verb = "would rewrite" if r.dry_run else "rewrote"
            lines.append(
                f"{verb} {r.packs_rewritten} pack{'s' if r.packs_rewritten != 1 else ''} "
                f"into {r.packs_written} without {r.packed_deleted} dead object"
                f"{'s' if r.packed_deleted != 1 else ''}, freeing "
                f"{human_size(max(0, r.packed_bytes_freed))}"
            )
        lines.append(
            f"packs: {r.packs_kept} left ({r.packed_objects} objects, "
            f"{human_size(r.packed_bytes)} stored; {r.packed_unreferenced} of them kept "
            "unreferenced: young, or delta bases)"
        )
    if r.tmp_deleted:
        lines.append(
            f"{'would remove' if r.dry_run else 'removed'} {r.tmp_deleted} stale temp file"
            f"{'s' if r.tmp_deleted != 1 else ''} ({human_size(r.tmp_bytes)})"
        )
    if r.journal_dropped:
        n = len(r.journal_dropped)
        verb = "would drop" if r.dry_run else "dropped"
        lines.append(
            f"{verb} {n} uncommitted save{'s' if n != 1 else ''}"
            f" from the snapshot journal by retention; kept {r.journal_kept}"
        )
    for p in r.unreadable_pointers:
        lines.append(f"warning: cannot parse pointer {escape(p)}; kept every object id it names")
    return "\n".join(lines)


def du(r: Any) -> str:
    """A ``gc.DuResult`` as a table: one row per checkpoint, then the total."""
    rows = [("MODEL", "SNAPSHOTS", "LOGICAL", "STORED", "LOCAL", "DEDUP", "PATH")]
    for e in [*r.models, r.total]:
        rows.append((
            "total" if e is r.total else escape(e.name or "-", NAME_LIMIT), str(e.snapshots),
            human_size(e.logical_bytes), human_size(e.stored_bytes), human_size(e.local_bytes),
            f"{e.dedup_ratio:.2f}x", escape(e.path),
        ))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    # every row has the same cells; widths covers all but the last (PATH, left unpadded)
    lines = [
        "  ".join(
            c.rjust(w) if i > 0 else c.ljust(w)
            for i, (c, w) in enumerate(zip(row[:-1], widths, strict=True))
        )
        + "  "
        + row[-1]
        for row in rows
    ]
    packed = (
        f" ({r.packed_objects} in {r.store_packs} pack{'s' if r.store_packs != 1 else ''})"
        if r.store_packs
        else ""
    )
    lines.append(
        f"local store: {r.store_objects} objects{packed}, {human_size(r.store_bytes)}; "
        f"{r.unreferenced_objects} unreferenced "
        f"({human_size(r.unreferenced_bytes)}, git snap gc frees them)"
    )
    return "\n".join(line.rstrip() for line in lines)


def du_remote(r: Any) -> str:
    """A ``du.RemoteDuResult``: a table per checkpoint, the stored forms, the remote's files."""
    rows = [("MODEL", "SNAPSHOTS", "LOGICAL", "DEDUP", "STORED", "STORED/DEDUP", "PATH")]
    for e in [*r.models, r.total]:
        rows.append((
            "total" if e is r.total else escape(e.name or "-", NAME_LIMIT), str(e.snapshots),
            human_size(e.logical_bytes), human_size(e.dedup_bytes), human_size(e.stored_bytes),
            f"{e.stored_ratio:.2f}", escape(e.path),
        ))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(
            c.rjust(w) if i > 0 else c.ljust(w)
            for i, (c, w) in enumerate(zip(row[:-1], widths, strict=True))
        )
        + "  "
        + row[-1]
        for row in rows
    ]
    if r.total.missing_objects:
        lines.append(
            f"{r.total.missing_objects} object{'s' if r.total.missing_objects != 1 else ''} "
            "not on the remote (git snap push sends them)"
        )
    if r.forms:
        lines.append(
            "stored as: "
            + ", ".join(
                f"{escape(f.form)} {f.share:.0%} ({f.objects}, {human_size(f.stored_bytes)})"
                for f in r.forms
            )
        )
    lines.append(
        f"remote {escape(r.remote)} ({escape(r.location)}): {human_size(r.remote_bytes)} in "
        f"{r.packs} pack{'s' if r.packs != 1 else ''} ({r.packed_objects} objects) and "
        f"{r.loose_objects} loose object{'s' if r.loose_objects != 1 else ''}; "
        f"{r.garbage_objects} unreferenced ({human_size(r.garbage_bytes)}, "
        "git snap gc --remote frees them)"
    )
    if r.base_objects:
        lines.append(
            f"kept as delta bases only: {r.base_objects} object"
            f"{'s' if r.base_objects != 1 else ''} ({human_size(r.base_bytes)})"
        )
    return "\n".join(line.rstrip() for line in lines)


def repack(r: Any) -> str:
    """A ``repack.RepackResult``: what moved, and the store's files before and after."""
    if not r.loose_packed and not r.packs_merged:
        return (
            f"nothing to repack: {r.loose_before} loose file{'s' if r.loose_before != 1 else ''},"
            f" {r.packs_before} pack{'s' if r.packs_before != 1 else ''}"
        )
    verb = "would pack" if r.dry_run else "packed"
    lines = [
        f"{verb} {r.loose_packed} loose object{'s' if r.loose_packed != 1 else ''} and "
        f"{r.packs_merged} small pack{'s' if r.packs_merged != 1 else ''}"
        + ("" if r.dry_run else f" into {r.packs_written} in {r.seconds:.2f} s")
    ]
    if not r.dry_run:
        lines.append(
            f"local store: {r.loose_before} → {r.loose_after} loose files, "
            f"{r.packs_before} → {r.packs_after} packs ({human_size(r.bytes_stored)})"
        )
    for oid in r.corrupt:
        lines.append(
            f"warning: object {oid[:12]}… does not match its id; left in place (git snap fsck)"
        )
    return "\n".join(lines)


def fsck(r: Any) -> str:
    """A ``gc.FsckResult``: problems grouped by snapshot, then a summary line."""
    where = (
        f"remote {escape(r.remote)} ({escape(r.location)})"
        if r.target == "remote"
        else "the local store"
    )
    lines: list[str] = []
    by_snapshot: dict[str, list[str]] = {}
    orphans = []
    for p in r.problems:
        if not p.uses:
            orphans.append(
                f"{p.problem}: object {escape(p.oid[:12])}… ({human_size(p.size)}), "
                "used by no live snapshot"
            )
        for u in p.uses:
            by_snapshot.setdefault(u.snapshot, []).append(
                f"{p.problem}: {escape(u.segment, NAME_LIMIT)} (object {escape(p.oid[:12])}…)"
            )
    for snap, items in sorted(by_snapshot.items()):
        lines.append(escape(snap))
        lines += [f"\t{i}" for i in sorted(set(items))]
    lines += orphans
    lines += [f"damaged: {escape(d)}" for d in r.damaged_packs]
    summary = (
        f"checked {r.objects_checked} object{'s' if r.objects_checked != 1 else ''} "
        f"({human_size(r.bytes_checked)}) in {where} in {r.seconds:.2f} s; "
        f"{r.snapshots} snapshot{'s' if r.snapshots != 1 else ''} in scope ({r.scope})"
    )
    if r.ok:
        return f"{summary}: ok"
    lines.append(f"{summary}: {r.corrupt} corrupt, {r.missing} missing")
    if r.damaged_packs and r.target == "local":
        lines.append(
            "hint: delete each damaged pack named above (its .idx and .pack files), then "
            "git snap fetch downloads what it held (or re-save the checkpoints)"
        )
    elif r.corrupt:
        hint = (
            "push a good copy again (git snap push) after deleting the damaged one"
            if r.target == "remote"
            else (f"delete the damaged objects and fetch them again (git snap fetch), or {RESAVE}")
        )
        lines.append(f"hint: {hint}")
    elif r.missing:
        lines.append(
            "hint: "
            + (
                "git snap push uploads them"
                if r.target == "remote"
                else "git snap fetch downloads them"
            )
        )
    return "\n".join(lines)


# ---------------------------------------------------------------- hooks (install / uninstall)


def install(r: Any) -> str:
    """An install.InstallResult: one line per hook, saying what happened to it and why."""
    lines = [f"hooks in {escape(r.hooks_dir)}:"]
    for a in r.actions:
        detail = f"  ({escape(a.detail)})" if a.detail else ""
        lines.append(f"  {a.action:<9} {escape(a.hook)}{detail}")
    lines += [f"configured {escape(c)}" for c in getattr(r, "configured", ())]
    return "\n".join(lines)


def doctor(r: Any) -> str:
    """A doctor.DoctorResult: one line per check, and the fix under each one that failed."""
    lines = []
    for c in r.checks:
        mark = "ok" if c.ok else "MISSING"
        lines.append(f"{mark:<7} {escape(c.name)}: {escape(c.detail)}")
        if not c.ok and c.fix:
            lines.append(f"{'':<7} fix: {escape(c.fix)}")
    lines.append(
        "everything this clone needs is set up"
        if r.ok
        else f"{len(r.missing)} thing(s) missing; run the fixes above"
    )
    return "\n".join(lines)


def eval_(r: Any) -> str:
    """``EvalResult``: one row per revision, a column per metric (the first eight)."""
    names: list[str] = []
    for run in r.runs:
        names += [n for n in run.metrics if n not in names]
    shown = names[:8]
    rows = [("REV", "COMMIT", "SNAPSHOT", *(escape(n, 24) for n in shown))]
    for run in r.runs:
        cells = [fmt_value(run.metrics[n]) if n in run.metrics else "" for n in shown]
        if not run.ok:
            cells = ["failed", *[""] * (len(shown) - 1)] if shown else []
        rows.append((escape(run.rev, 40), (run.commit or "-")[:10], (run.snapshot or "-")[:12],
                     *cells))  # fmt: skip
    if not shown and any(not run.ok for run in r.runs):
        rows = [(*row, "RESULT" if i == 0 else "failed") for i, row in enumerate(rows)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    if len(names) > len(shown):
        lines.append(f"(+{len(names) - len(shown)} more metrics: git snap eval ... --json)")
    noted = sum(1 for run in r.runs if run.ok and run.noted)
    if noted:
        lines.append(f"metrics attached to {noted} commit{'s' if noted != 1 else ''} "
                     "(git notes, refs/notes/gitsnap; git snap push shares them)")  # fmt: skip
    return "\n".join(lines)


def eval_failures(r: Any) -> str:
    """The revisions whose evaluation failed: ``error:``/``hint:`` lines."""
    lines = []
    for run in r.failed:
        lines.append(f"error: {escape(run.error)}")
        if run.hint:
            lines.append(f"hint: {escape(run.hint)}")
    return "\n".join(lines)
