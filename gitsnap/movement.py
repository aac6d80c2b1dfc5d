"""How far a tensor moved, estimated from the pointer stats alone (no weights read).

A pointer keeps each tensor's mean, population std and L2 norm
(:mod:`gitsnap.stats`). For ``W`` with ``n`` elements, ``‖W‖² = n (mean² + std²)``;
the change ``ΔW = W_after - W_before`` splits into its mean (a constant
vector) and a centred part, which are orthogonal, and the centred part is at
least as long as the change of the centred norms. Hence

    ‖ΔW‖² = n Δmean² + ‖Δ(W - mean)‖²  >=  n (Δmean² + Δstd²)

and the **stats bound** ``sqrt(Δmean² + Δstd²) / sqrt(mean² + std²)`` is a
lower bound of ``‖ΔW‖ / ‖W_before‖`` that needs no weights, and never less
than the change of the norm ``|Δ‖W‖| / ‖W‖`` (the triangle inequality on the
2-vector (mean, std)). It is exact for a shift or a rescaling of the whole
tensor, the moves a norm change alone misses or hides. For a dense fine-tune,
whose update is mostly noise-like, it sees a fraction of the change (the
part that moved the mean and the spread), the same fraction in every layer of
a similar size, so layers still rank in the order their updates grew; with
``--values`` the exact ``‖ΔW‖ / ‖W‖`` replaces it.

The bound holds over the finite elements, on which the stats are taken. The
functions are pure and import nothing heavy: the structural diff runs them
on a pull-request check without numpy (DESIGN D10).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["best", "delta_sq_bound", "relative"]

Stats = Mapping[str, float | int]


def _f(stats: Stats | None, key: str) -> float | None:
    if stats is None:
        return None
    v = stats.get(key)
    return None if v is None else float(v)


def delta_sq_bound(
    status: str, before: Stats | None, after: Stats | None, elements: int = 0
) -> float | None:
    """A lower bound of ``‖ΔW‖²`` from the stats of both sides; None when unknown.

    Unchanged and renamed tensors moved by 0; an added (removed) one by its
    whole norm; a reshaped one is replaced, so it counts as added. None when
    the stats needed are missing (an empty or all-NaN tensor). ``elements``
    (the shape's product) stands in for the finite count where the stats
    have none.

    >>> delta_sq_bound("modified", {"mean": 0.0, "std": 1.0, "count": 4},
    ...                {"mean": 0.5, "std": 1.0, "count": 4})
    1.0
    """
    if status in ("unchanged", "renamed"):
        return 0.0
    if status in ("added", "reshaped"):  # a reshaped tensor is replaced: all of it is new
        a = _f(after, "l2")
        return None if a is None else a * a
    if status == "removed":
        b = _f(before, "l2")
        return None if b is None else b * b
    mb, ma, sb, sa = _f(before, "mean"), _f(after, "mean"), _f(before, "std"), _f(after, "std")
    if mb is None or ma is None or sb is None or sa is None:
        return None
    count = _f(before, "count")
    n = (float(elements) if count is None else count) - (_f(before, "nonfinite") or 0.0)
    if n <= 0:
        return None
    return n * ((ma - mb) ** 2 + (sa - sb) ** 2)


def relative(delta_sq: float | None, l2_before: float | None) -> float | None:
    """``sqrt(delta_sq) / l2_before``: inf for growth from zero, None when unknown.

    >>> relative(1.0, 2.0)
    0.5
    """
    if delta_sq is None or l2_before is None:
        return None
    if l2_before <= 0:
        return 0.0 if delta_sq <= 0 else math.inf
    return math.sqrt(delta_sq) / l2_before


def best(bound: float | None, norm_change: float | None) -> float | None:
    """The larger of two lower bounds of ``‖ΔW‖/‖W‖``: the stats bound and ``|Δ‖W‖|/‖W‖``.

    The norm's change is the one left when the stats lack a mean or a std.

    >>> best(0.02, -0.05), best(None, None)
    (0.05, None)
    """
    known = [abs(x) for x in (bound, norm_change) if x is not None]
    return max(known) if known else None
