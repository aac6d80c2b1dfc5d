"""Diff benchmarks (issue 5): ``git snap diff``, structural and with ``--values``.

- ``diff``: a structural diff (pointers only) of two snapshots of a
  ~2,000-tensor model (167 layers, 2,008 tensors, half of the tensor bytes
  changed), including interpreter start-up: target <= 0.4 s for the default
  (terminal table) output; JSON and Markdown are reported too, with
  ``git diff`` of the same two pointer files (raw YAML) as the baseline. Also
  checks that it imports no numpy, torch or dvc, and (canonical pointers, a
  table on a pipe) neither yaml nor rich.
- ``diff-values``: ``git snap diff --values`` of two 1 GiB checkpoints
  (``--size-gib``) whose tensors **all** changed (every tensor perturbed, so
  every object is read and compared): target <= 3 s wall and <= 400 MiB peak
  RSS. The floor to compare with is reading the two files once
  (``raw.read.*`` of the ``raw`` scenario, times two).

Both run against commits, objects in the local store, page cache warm.

Run alone::

    .venv/bin/python bench/diff.py --only diff,diff-values --data-dir bench/data
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import data, util
from bench.util import MiB, fmt_bytes

CKPT = "model.safetensors"
LAYERS = 167  # 12 * 167 + 4 = 2,008 tensors


def _snapshots(ctx: object, name: str, v1: Path, v2: Path) -> Path:
    """A repository whose last two commits hold snapshots of ``v1`` then ``v2``."""
    repo: Path = ctx.repo(name, gitsnap=True)  # type: ignore[attr-defined]
    for version in (v1, v2):
        util.place(version, repo / CKPT)
        ctx.run(["git", "snap", "save", CKPT], repo)  # type: ignore[attr-defined]
        util.commit_all(repo, ctx.env, f"snapshot of {version.name}")  # type: ignore[attr-defined]
    return repo


def structural(ctx: object) -> list[object]:
    from bench.run import Target, _import_check, log, timing

    folder: Path = ctx.data_dir  # type: ignore[attr-defined]
    folder.mkdir(parents=True, exist_ok=True)
    spec = data.model_spec(16 * MiB, layers=LAYERS)
    v1 = folder / f"diff-{len(spec)}t-g{data.FORMAT_VERSION}-v1.safetensors"
    v2 = folder / f"diff-{len(spec)}t-g{data.FORMAT_VERSION}-v2.safetensors"
    if not (v1.exists() and v2.exists()):
        data.write_versions(v1, v2, spec, changed_fraction=0.5)  # small: 2 x 36 MiB
    repo = _snapshots(ctx, "diff-structural", v1, v2)
    argv = ["git", "snap", "diff", "HEAD~1", "HEAD"]
    warm = ctx.run(argv, repo)  # type: ignore[attr-defined]
    if "tensors changed" not in warm.stdout:
        raise util.CommandFailed(f"unexpected diff output:\n{warm.stdout}{warm.stderr}")
    repeats = ctx.fast_repeats  # type: ignore[attr-defined]
    runs: dict[str, list[util.Proc]] = {"table": [], "json": [], "markdown": [], "git": []}
    for k in range(repeats):
        for fmt in ("table", "json", "markdown"):
            runs[fmt].append(
                ctx.timed([*argv, "--format", fmt], repo, settle=k % 5 == 0 and fmt == "table")
            )  # type: ignore[attr-defined]
        runs["git"].append(
            ctx.timed(
                ["git", "diff", "HEAD~1", "HEAD", "--no-ext-diff", "--no-textconv"],
                repo,
                settle=False,
            )
        )  # type: ignore[attr-defined]
    label = f"{len(spec):,} tensors, half of the bytes changed"
    log(
        "  diff: "
        + ", ".join(f"{k} {util.median([p.wall for p in v]):.3f} s" for k, v in runs.items())
    )
    rows = [
        timing(
            "diff.structural",
            f"structural diff incl. start-up ({label})",
            runs["table"],
            "git diff (raw YAML)",
            runs["git"],
            Target("max", 0.4),
        ),
        timing(
            "diff.structural.json",
            "  same, --format json",
            runs["json"],
            "git diff (raw YAML)",
            runs["git"],
        ),
        timing(
            "diff.structural.markdown",
            "  same, --format markdown",
            runs["markdown"],
            "git diff (raw YAML)",
            runs["git"],
        ),
        _import_check(
            ctx,
            "diff.imports",
            "  structural diff imports no numpy / torch / dvc / yaml / rich",  # type: ignore[arg-type]
            ["-m", "gitsnap", "diff", "HEAD~1", "HEAD"],
            repo,
        ),
    ]
    imports = rows[-1]
    heavy = set(imports.info.get("heavy_imported", []))  # type: ignore[attr-defined]
    # yaml (~30 ms) and rich (~70 ms with its layout) are budget, not just weight.
    imports.ok = imports.ok and not heavy & {"numpy", "yaml", "rich"}  # type: ignore[attr-defined]
    ctx.discard(repo)  # type: ignore[attr-defined]
    return rows


def _all_changed(ctx: object) -> tuple[Path, Path, int]:
    """v1, and a v2 with every tensor perturbed (``data.write_versions`` spares the embeddings).

    Written by a child process: a child's peak RSS as ``wait4`` reports it
    starts from its parent's RSS at fork, so 2 GiB of arrays left in this
    process would be charged to every command timed after.
    """
    size: int = ctx.size  # type: ignore[attr-defined]
    folder: Path = ctx.data_dir  # type: ignore[attr-defined]
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"diff-all-{size // MiB}MiB-s{data.SEED}-g{data.FORMAT_VERSION}"
    v1, v2 = folder / f"{stem}-v1.safetensors", folder / f"{stem}-v2.safetensors"
    if not (v1.exists() and v2.exists()):
        code = (
            "from bench.diff import write_all_changed; "
            f"write_all_changed({size}, {str(v1)!r}, {str(v2)!r})"
        )
        ctx.run([sys.executable, "-c", code], util.ROOT)  # type: ignore[attr-defined]
    return v1, v2, v1.stat().st_size


def write_all_changed(size: int, v1: str, v2: str) -> None:
    spec = data.model_spec(size)
    tensors = {t.name: data._values(t, i, data.SEED) for i, t in enumerate(spec)}
    data._save(tensors, Path(v1))
    for i, t in enumerate(spec):
        data._perturb(tensors[t.name], i, data.SEED)
    data._save(tensors, Path(v2))


def values(ctx: object) -> list[object]:
    from bench.run import Measurement, Target, log, timing

    v1, v2, size = _all_changed(ctx)
    repo = _snapshots(ctx, "diff-values", v1, v2)
    store = repo / ".dvc" / "cache" / "gitsnap"
    argv = ["git", "snap", "diff", "HEAD~1", "HEAD", "--values", "--format", "json"]
    first = ctx.run(argv, repo)  # type: ignore[attr-defined]
    if '"values_computed"' not in first.stdout:
        raise util.CommandFailed(f"unexpected diff output:\n{first.stderr}")
    runs = []
    for k in range(ctx.repeats):  # type: ignore[attr-defined]
        for f in sorted(p for p in store.rglob("*") if p.is_file()):
            util.warm(f)
        runs.append(ctx.timed(argv, repo, settle=True))  # type: ignore[attr-defined]
        log(f"  diff --values #{k}: {runs[-1].wall:.2f} s, peak {fmt_bytes(runs[-1].maxrss)}")
    label = f"2 x {fmt_bytes(size)}, every tensor changed"
    rows = [
        timing("diff.values", f"--values diff ({label})", runs, target=Target("max", 3.0)),
        Measurement(
            "diff.values.memory",
            "  peak RSS of that diff",
            "B",
            [p.maxrss for p in runs],
            target=Target("max", 400 * MiB),
            aggregate="max",
        ),
    ]
    ctx.discard(repo)  # type: ignore[attr-defined]
    return rows


SCENARIOS: list[tuple[str, str, Callable[..., list[object]]]] = [
    ("diff", "9. structural diff of two ~2,000-tensor snapshots", structural),
    ("diff-values", "10. --values diff of two 1 GiB checkpoints, every tensor changed", values),
]


def register(scenario: Callable[..., Callable[[Callable[..., list[object]]], object]]) -> None:
    """Add these scenarios to a runner's registry (``bench.run.scenario``)."""
    for name, title, fn in SCENARIOS:
        scenario(name, title)(fn)


if __name__ == "__main__":
    from bench import run as runner

    register(runner.scenario)
    sys.exit(runner.main())
