"""Metrics and params: read from files (JSON / YAML, as DVC writes them) or ``key=value``.

Nested mappings are flattened to dotted keys (``{"eval": {"acc": 0.9}}`` ->
``eval.acc``) so that every value is a scalar a diff can compare. Notes come
from other people's pushes: reading and flattening are bounded (the limits of
:mod:`gitsnap.pointer.limits`, no YAML aliases).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitsnap.errors import GitsnapError, PathError, UsageError
from gitsnap.pointer import safeyaml
from gitsnap.pointer.limits import MAX_DEPTH, MAX_METRICS, MAX_METRICS_FILE_BYTES, MAX_VALUE_CHARS

Scalar = float | int | str | bool | None


def flatten(
    data: Mapping[Any, Any],
    prefix: str = "",
    *,
    source: str = "metrics",
    error: type[GitsnapError] = UsageError,
    hint: str | None = None,
) -> dict[str, Scalar]:
    """Nested mappings and lists as dotted names -> scalars, bounded (a note comes from
    other people): at most MAX_METRICS names, MAX_DEPTH levels, MAX_VALUE_CHARS per name
    or string value; beyond that ``error``. A walk with its own stack, not recursion.
    """
    flat: dict[str, Scalar] = {}
    stack: list[tuple[str, Iterator[tuple[Any, Any]]]] = [(prefix, iter(data.items()))]
    while stack:
        base, items = stack[-1]
        item = next(items, None)
        if item is None:
            stack.pop()
            continue
        key, value = item
        name = f"{base}{key}"
        if len(name) > MAX_VALUE_CHARS:
            raise error(f"{source}: a name is longer than {MAX_VALUE_CHARS} characters", hint=hint)
        if isinstance(value, Mapping) or (
            isinstance(value, (list, tuple)) and any(isinstance(v, Mapping) for v in value)
        ):
            if len(stack) >= MAX_DEPTH:
                raise error(f"{source}: nested deeper than {MAX_DEPTH} levels", hint=hint)
            pairs = value.items() if isinstance(value, Mapping) else enumerate(value)
            stack.append((name + ".", iter(pairs)))
            continue
        if isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                _put(flat, f"{name}.{i}", v, source=source, error=error, hint=hint)
        else:
            _put(flat, name, value, source=source, error=error, hint=hint)
    return flat


def _put(
    flat: dict[str, Scalar],
    name: str,
    value: Any,
    *,
    source: str,
    error: type[GitsnapError],
    hint: str | None,
) -> None:
    if len(flat) >= MAX_METRICS and name not in flat:
        raise error(f"{source}: more than {MAX_METRICS} metrics/params", hint=hint)
    scalar = _scalar(value)
    if isinstance(scalar, str) and len(scalar) > MAX_VALUE_CHARS:
        raise error(
            f"{source}: the value of {name[:60]!r} is longer than {MAX_VALUE_CHARS} characters",
            hint=hint,
        )
    flat[name] = scalar


def _scalar(value: Any) -> Scalar:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        # A 5,000-digit integer from YAML has no str() (Python's limit): keep it as a float.
        return value if value.bit_length() <= 64 else float(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


def read_file(path: Path) -> dict[str, Scalar]:
    """A JSON or YAML file holding a mapping (nested allowed), within the limits above."""
    hint = 'give a JSON or YAML mapping of names to values, e.g. {"acc": 0.91}'
    try:
        size = path.stat().st_size
        if size > MAX_METRICS_FILE_BYTES:
            raise PathError(
                f"{path}: metrics/params file is larger than {MAX_METRICS_FILE_BYTES} bytes",
                hint=hint,
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PathError(f"{path}: no such metrics/params file", hint="check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PathError(f"{path}: cannot read ({exc})", hint=hint) from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise PathError(f"{path}: cannot parse ({exc})", hint=hint) from None
    else:
        data = safeyaml.load(
            text,
            str(path),
            what="metrics/params YAML",
            error=PathError,
            hint=hint,
            max_bytes=MAX_METRICS_FILE_BYTES,
        )
    if not isinstance(data, Mapping):
        raise PathError(f"{path}: expected a mapping of names to values", hint='e.g. {"acc": 0.91}')
    return flatten(data, source=str(path), error=PathError, hint=hint)


def parse_value(text: str) -> Scalar:
    """``3e-4`` -> 0.0003, ``10`` -> 10, ``true`` -> True, anything else stays a string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "none", "~"):
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) else text


def parse_pairs(pairs: Iterable[str]) -> dict[str, Scalar]:
    out: dict[str, Scalar] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"expected key=value, got {pair!r}", hint="e.g. -M acc=0.91")
        out[key.strip()] = parse_value(value)
    return out


# ------------------------------------------------------------------ comparison and gate (diff)

# Which way is good, per metric: ``.gitsnap.yaml``'s ``metrics:`` mapping.
BETTER = ("higher", "lower")
CONFIG_FILE = ".gitsnap.yaml"


def parse_directions(data: Any, source: str = CONFIG_FILE) -> dict[str, str]:
    """``{"accuracy": "higher", "loss": "lower"}`` from ``.gitsnap.yaml``'s parsed mapping.

    The schema (docs/pull-requests.md)::

        metrics:
          accuracy: {better: higher}
          loss: {better: lower}

    Other top-level keys belong to other parts of gitsnap and are ignored.
    """
    hint = f"fix {CONFIG_FILE}: metrics: {{accuracy: {{better: higher}}, loss: {{better: lower}}}}"
    if not isinstance(data, Mapping):
        return {}
    raw = data.get("metrics")
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise PathError(f"{source}: 'metrics' must map metric names to {{better: ...}}", hint=hint)
    if len(raw) > MAX_METRICS:
        raise PathError(f"{source}: more than {MAX_METRICS} metrics", hint=hint)
    out: dict[str, str] = {}
    for name, spec in raw.items():
        better = spec.get("better") if isinstance(spec, Mapping) else None
        if not isinstance(name, str) or len(name) > MAX_VALUE_CHARS or better not in BETTER:
            raise PathError(
                f"{source}: metrics.{str(name)[:60]}: expected {{better: higher}} "
                "or {better: lower}",
                hint=hint,
            )
        out[name] = better
    return out


def read_directions(root: Path, commit: str | None) -> dict[str, str]:
    """The directions declared in ``.gitsnap.yaml`` at ``commit`` (None: the work tree's).

    A diff takes them from its *before* side (the base of a pull request), so
    a pull request cannot turn around the direction its own gate judges it by.
    """
    from gitsnap import gitio

    if commit is None:
        try:
            raw: bytes | None = (root / CONFIG_FILE).read_bytes()
        except FileNotFoundError:
            raw = None
        return directions_of(raw, CONFIG_FILE)
    return directions_of(gitio.show_blob(root, commit, CONFIG_FILE), f"{commit[:10]}:{CONFIG_FILE}")


def directions_of(raw: bytes | None, source: str) -> dict[str, str]:
    """The directions declared in the bytes of a ``.gitsnap.yaml`` (None: no such file)."""
    hint = f"fix {CONFIG_FILE} (see docs/pull-requests.md)"
    if raw is None:
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PathError(f"{source}: not UTF-8", hint=hint) from None
    data = safeyaml.load(
        text,
        source,
        what="config YAML",
        error=PathError,
        hint=hint,
        max_bytes=MAX_METRICS_FILE_BYTES,
    )
    return parse_directions(data, source)


@dataclass(frozen=True)
class MetricChange:
    """One metric (or param) on two sides of a diff.

    ``sources_before`` / ``sources_after`` map ``"pointer"`` and ``"note"``
    to the value each source holds (empty: absent on that side). The
    effective value is the note's when there is one (DESIGN D6). ``better``
    is the direction ``.gitsnap.yaml`` declares (``"higher"``/``"lower"``).
    ``evaluated_before`` / ``evaluated_after``: the note's value on that side
    was written by ``git snap eval`` for that side's snapshot (the note's
    eval record lists it, :func:`gitsnap.notes.evaluated`); its
    ``origin_*`` then reads ``eval``.
    """

    name: str
    sources_before: dict[str, Scalar]
    sources_after: dict[str, Scalar]
    better: str | None = None
    evaluated_before: bool = False
    evaluated_after: bool = False

    @staticmethod
    def _pick(sources: Mapping[str, Scalar]) -> tuple[Scalar, str | None]:
        for src in ("note", "pointer"):
            if src in sources:
                return sources[src], src
        return None, None

    @property
    def before(self) -> Scalar:
        return self._pick(self.sources_before)[0]

    @property
    def after(self) -> Scalar:
        return self._pick(self.sources_after)[0]

    @property
    def source_before(self) -> str | None:
        return self._pick(self.sources_before)[1]

    @property
    def source_after(self) -> str | None:
        return self._pick(self.sources_after)[1]

    @property
    def origin_before(self) -> str | None:
        """Where the effective value comes from, as shown: ``eval`` (a note's value that
        ``git snap eval`` wrote), ``note``, ``pointer``, or None when absent."""
        return _origin(self.source_before, self.evaluated_before)

    @property
    def origin_after(self) -> str | None:
        return _origin(self.source_after, self.evaluated_after)

    @property
    def status(self) -> str:
        """``added``, ``removed``, ``changed`` or ``unchanged``."""
        if not self.sources_before:
            return "added"
        if not self.sources_after:
            return "removed"
        return "unchanged" if _same(self.before, self.after) else "changed"

    @property
    def abs_change(self) -> float | None:
        """``after - before`` when both are numbers (bools are not), else None."""
        b, a = self.before, self.after
        if _is_number(b) and _is_number(a) and self.sources_before and self.sources_after:
            return float(a) - float(b)  # type: ignore[arg-type]
        return None

    @property
    def rel_change(self) -> float | None:
        """``(after - before) / |before|``; None when before is 0 or not a number."""
        d = self.abs_change
        if d is None or not self.before:
            return None
        return d / abs(float(self.before))  # type: ignore[arg-type,unused-ignore]

    @property
    def verdict(self) -> str | None:
        """``"better"`` or ``"worse"`` by the declared direction; None when no direction is
        declared, the value did not move, or it is not a number."""
        d = self.abs_change
        if self.better is None or not d:
            return None
        return "better" if (d > 0) == (self.better == "higher") else "worse"


def _origin(source: str | None, evaluated: bool) -> str | None:
    return "eval" if source == "note" and evaluated else source


def _is_number(v: Scalar) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _same(a: Scalar, b: Scalar) -> bool:
    if _is_number(a) and _is_number(b):
        return float(a) == float(b)  # type: ignore[arg-type]
    return type(a) is type(b) and a == b


def compare(
    pointer_before: Mapping[str, Scalar],
    note_before: Mapping[str, Scalar],
    pointer_after: Mapping[str, Scalar],
    note_after: Mapping[str, Scalar],
    better: Mapping[str, str] | None = None,
    *,
    evaluated_before: Collection[str] = (),
    evaluated_after: Collection[str] = (),
) -> list[MetricChange]:
    """Every name on either side, sorted, with each side's values by source and the
    direction ``better`` declares for it (:func:`read_directions`).

    ``evaluated_*``: the names of that side's note that ``git snap eval`` wrote
    for its snapshot (:func:`gitsnap.notes.evaluated`).
    """
    names = sorted({*pointer_before, *note_before, *pointer_after, *note_after})
    directions = better or {}

    def sources(
        pointer: Mapping[str, Scalar], note: Mapping[str, Scalar], name: str
    ) -> dict[str, Scalar]:
        out: dict[str, Scalar] = {}
        if name in pointer:
            out["pointer"] = pointer[name]
        if name in note:
            out["note"] = note[name]
        return out

    return [
        MetricChange(
            n,
            sources(pointer_before, note_before, n),
            sources(pointer_after, note_after, n),
            directions.get(n),
            evaluated_before=n in note_before and n in evaluated_before,
            evaluated_after=n in note_after and n in evaluated_after,
        )
        for n in names
    ]


_NUMBER = r"(?P<num>[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)\s*(?P<pct>%)?"
_CONDITION_RE = re.compile(rf"\s*(?P<name>[^\s<>=]+)\s*(?P<op><=|>=|<|>)\s*{_NUMBER}\s*")
_REGRESSES_RE = re.compile(rf"\s*(?P<name>[^\s<>=]+)\s+regresses(?:\s+by\s+{_NUMBER})?\s*")
_CONDITION_HINT = (
    'write NAME OP NUMBER[%] or NAME regresses [by NUMBER[%]], e.g. --fail-on "accuracy < -0.01", '
    '--fail-on "loss > 5%" or --fail-on "accuracy regresses by 0.5%"'
)


@dataclass(frozen=True)
class Condition:
    """A ``--fail-on`` rule on a metric's change between the two sides.

    ``NAME OP NUMBER[%]``: ``accuracy < -0.01`` fails when accuracy dropped
    by more than 0.01 (``after - before < -0.01``); ``loss > 5%`` fails when
    loss grew by more than 5 % of its old value. OP is one of ``<``, ``<=``,
    ``>``, ``>=``.

    ``NAME regresses [by NUMBER[%]]`` (``regresses=True``): fails when the
    metric moved the wrong way (by the direction ``.gitsnap.yaml`` declares),
    by more than NUMBER (0 when left out), or NUMBER % of its old value.
    """

    text: str
    name: str
    op: str
    threshold: float
    relative: bool
    regresses: bool = False

    @classmethod
    def parse(cls, text: str) -> Condition:
        m = _CONDITION_RE.fullmatch(text)
        r = None if m else _REGRESSES_RE.fullmatch(text)
        if m is None and r is None:
            raise UsageError(f"cannot read the condition {text!r}", hint=_CONDITION_HINT)
        found = m or r
        assert found is not None
        pct = found["pct"] is not None
        value = float(found["num"] or 0) / (100 if pct else 1)
        if r is not None:
            if value < 0:
                raise UsageError(
                    f"{text!r}: a regression is measured as a positive amount",
                    hint=f'e.g. --fail-on "{r["name"]} regresses by 0.01"',
                )
            return cls(text.strip(), r["name"], ">", value, pct, regresses=True)
        return cls(text.strip(), found["name"], found["op"], value, pct)

    def violated_by(self, change: float) -> bool:
        # 0.90 - 0.91 is -0.010000000000000009 in binary: compare at 12 digits
        # so that "accuracy < -0.01" does not fire on a drop of exactly 0.01.
        c, t = float(f"{change:.12g}"), self.threshold
        return {"<": c < t, "<=": c <= t, ">": c > t, ">=": c >= t}[self.op]


@dataclass(frozen=True)
class GateCheck:
    """One condition checked against one checkpoint's metric."""

    condition: str
    path: str | None  # None: the name was found in no checkpoint (--allow-missing)
    name: str
    before: Scalar
    after: Scalar
    change: float | None  # absolute, or relative for a "%" condition
    evaluated: bool  # False: absent on a side, or not a number
    failed: bool
    message: str


# Known names an error lists at most: a hostile note may carry 10,000.
_LIST_NAMES = 40


def evaluate(
    conditions: Sequence[Condition],
    checkpoints: Sequence[tuple[str, Sequence[MetricChange]]],
    *,
    allow_missing: bool = False,
) -> list[GateCheck]:
    """Check each condition against every checkpoint that has the name (metrics, then params).

    A name found on neither side of any checkpoint is a typo until shown
    otherwise: :class:`UsageError` listing the known names (exit 2), unless
    ``allow_missing``, which reports it as not checked. A name absent on
    one side only cannot be judged: the check is reported as not evaluated
    and does not fail (a base commit without metrics must not block every
    pull request). ``regresses`` needs a declared direction: without one it
    is a :class:`UsageError` too.
    """
    checks: list[GateCheck] = []
    known = sorted({c.name for _, changes in checkpoints for c in changes})
    for cond in conditions:
        found = [(p, mc) for p, changes in checkpoints for mc in changes if mc.name == cond.name]
        if not found:
            if not allow_missing:
                raise UsageError(
                    f"--fail-on {cond.text!r}: {unknown_name(cond.name, known)}",
                    hint="check the spelling, or add --allow-missing to pass over a metric "
                    "that is not recorded yet",
                )
            why = f"{cond.name}: no metric or param of that name on either side; not checked"
            checks.append(
                GateCheck(cond.text, None, cond.name, None, None, None, False, False, why)
            )
            continue
        for path, mc in found:
            if cond.regresses and mc.better is None:
                raise UsageError(
                    f"--fail-on {cond.text!r}: {CONFIG_FILE} declares no direction for "
                    f"{cond.name!r}",
                    hint=f"add to {CONFIG_FILE}: metrics: {{{cond.name}: {{better: higher}}}} "
                    "(or lower), or write the condition as NAME OP NUMBER",
                )
            checks.append(_check(cond, path, mc))
    return checks


def unknown_name(
    name: str,
    known: Sequence[str],
    *,
    what: str = "metric or param",
    where: str = "on either side",
    nothing: str = "neither side records any",
) -> str:
    """Why ``name`` is unknown, listing (at most 40 of) the ``known`` names."""
    if not known:
        return f"no {what} {name!r}: {nothing}"
    shown = ", ".join(known[:_LIST_NAMES])
    more = f" and {len(known) - _LIST_NAMES} more" if len(known) > _LIST_NAMES else ""
    return f"no {what} {name!r} {where}; known names: {shown}{more}"


def _check(cond: Condition, path: str, mc: MetricChange) -> GateCheck:
    def make(change: float | None, evaluated: bool, failed: bool, message: str) -> GateCheck:
        return GateCheck(
            cond.text, path, cond.name, mc.before, mc.after, change, evaluated, failed, message
        )

    where = f"{path}: {cond.name}"
    if not mc.sources_before or not mc.sources_after:
        side = "before" if not mc.sources_before else "after"
        return make(None, False, False, f"{where} is absent on the {side} side; not checked")
    change = mc.rel_change if cond.relative else mc.abs_change
    if change is None:
        why = (
            "its old value is 0"
            if cond.relative and mc.abs_change is not None
            else "it is not a number"
        )
        return make(None, False, False, f"{where}: cannot compute a change ({why}); not checked")
    shown = f"{change * 100:+.4g}%" if cond.relative else f"{change:+.6g}"
    if cond.regresses:
        # How much worse it got: the change against the declared direction.
        worse = -change if mc.better == "higher" else change
        failed = cond.violated_by(worse)
        shown += f", {mc.better} is better"
    else:
        failed = cond.violated_by(change)
    verdict = f"fails {cond.text!r}" if failed else f"passes {cond.text!r}"
    return make(
        change,
        True,
        failed,
        f"{where} {_fmt(mc.before)} -> {_fmt(mc.after)} (change {shown}) {verdict}",
    )


def _fmt(v: Scalar) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)
