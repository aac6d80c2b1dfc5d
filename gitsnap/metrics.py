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
from collections.abc import Iterable, Iterator, Mapping, Sequence
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


@dataclass(frozen=True)
class MetricChange:
    """One metric (or param) on two sides of a diff.

    ``sources_before`` / ``sources_after`` map ``"pointer"`` and ``"note"``
    to the value each source holds (empty: absent on that side). The
    effective value is the note's when there is one (DESIGN D6).
    """

    name: str
    sources_before: dict[str, Scalar]
    sources_after: dict[str, Scalar]

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
) -> list[MetricChange]:
    """Every name on either side, sorted, with each side's values by source."""
    names = sorted({*pointer_before, *note_before, *pointer_after, *note_after})

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
            n, sources(pointer_before, note_before, n), sources(pointer_after, note_after, n)
        )
        for n in names
    ]


_CONDITION_RE = re.compile(
    r"\s*(?P<name>[^\s<>=]+)\s*(?P<op><=|>=|<|>)\s*"
    r"(?P<num>[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)\s*(?P<pct>%)?\s*"
)


@dataclass(frozen=True)
class Condition:
    """A ``--fail-on`` rule: ``NAME OP NUMBER[%]`` on a metric's change between the two sides.

    ``accuracy < -0.01`` fails when accuracy dropped by more than 0.01
    (``after - before < -0.01``); ``loss > 5%`` fails when loss grew by more
    than 5 % of its old value. OP is one of ``<``, ``<=``, ``>``, ``>=``.
    """

    text: str
    name: str
    op: str
    threshold: float
    relative: bool

    @classmethod
    def parse(cls, text: str) -> Condition:
        m = _CONDITION_RE.fullmatch(text)
        if m is None:
            raise UsageError(
                f"cannot read the condition {text!r}",
                hint='write NAME OP NUMBER, e.g. --fail-on "accuracy < -0.01" '
                'or --fail-on "loss > 5%"',
            )
        pct = m["pct"] is not None
        value = float(m["num"]) / (100 if pct else 1)
        return cls(text.strip(), m["name"], m["op"], value, pct)

    def violated_by(self, change: float) -> bool:
        # 0.90 - 0.91 is -0.010000000000000009 in binary: compare at 12 digits
        # so that "accuracy < -0.01" does not fire on a drop of exactly 0.01.
        c, t = float(f"{change:.12g}"), self.threshold
        return {"<": c < t, "<=": c <= t, ">": c > t, ">=": c >= t}[self.op]


@dataclass(frozen=True)
class GateCheck:
    """One condition checked against one checkpoint's metric."""

    condition: str
    path: str | None  # None: the name was found in no checkpoint
    name: str
    before: Scalar
    after: Scalar
    change: float | None  # absolute, or relative for a "%" condition
    evaluated: bool  # False: absent on a side, or not a number
    failed: bool
    message: str


def evaluate(
    conditions: Sequence[Condition], checkpoints: Sequence[tuple[str, Sequence[MetricChange]]]
) -> list[GateCheck]:
    """Check each condition against every checkpoint that has the name (metrics, then params).

    A name absent on one side cannot be judged: the check is reported as not
    evaluated and does not fail (a base commit without metrics must not
    block every pull request); a name found nowhere is reported the same way.
    """
    checks: list[GateCheck] = []
    for cond in conditions:
        found = False
        for path, changes in checkpoints:
            mc = next((c for c in changes if c.name == cond.name), None)
            if mc is None:
                continue
            found = True
            checks.append(_check(cond, path, mc))
        if not found:
            why = f"{cond.name}: no metric or param of that name on either side; not checked"
            checks.append(
                GateCheck(cond.text, None, cond.name, None, None, None, False, False, why)
            )
    return checks


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
