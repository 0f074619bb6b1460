"""Water-filling: place n interchangeable customers on managers the way a one-by-one greedy would.

The k-th customer (k = 0, 1, ...) given to manager m scores
`pref[m] - penalty * (load[m] + (k + 1) * weight) / capacity[m]`; a greedy that always takes the
best next score gives each manager every unit scoring above some threshold T. We find T from the
piecewise-linear count function in O(M log M), round down, and hand out the few remaining units
by their next score (ties to the lower manager index).
"""

from __future__ import annotations

import numpy as np


def _by_score(score: np.ndarray, take: int, *, best: bool) -> np.ndarray:
    """Indices of the `take` best (or worst) scores, ties to the lower (or higher) index."""
    index = np.arange(len(score))
    order = np.lexsort((index, -score)) if best else np.lexsort((-index, score))
    return order[:take]


def water_fill(
    pref: np.ndarray,
    load: np.ndarray,
    capacity: np.ndarray,
    units: np.ndarray,
    weight: int,
    n: int,
    penalty: float,
) -> np.ndarray:
    """Counts per manager (at most `units[m]` each, summing to min(n, units.sum()))."""
    units = units.astype(np.int64)
    if n <= 0:
        return np.zeros_like(units)
    if units.sum() <= n:
        return units.copy()
    if penalty <= 0:
        order = np.lexsort((np.arange(len(pref)), -pref))
        before = np.cumsum(units[order]) - units[order]
        counts = np.zeros_like(units)
        counts[order] = np.clip(n - before, 0, units[order])
        return counts
    cap = capacity.astype(np.float64)
    slope = cap / (penalty * weight)  # units gained per point the threshold drops
    t0 = pref - penalty * load / cap  # threshold at which the first unit is taken
    t1 = t0 - units / slope  # threshold at which every unit is taken
    counts = _counts_at_threshold(t0, t1, slope, units, n)
    deficit = n - int(counts.sum())
    while deficit > 0:
        room = np.flatnonzero(counts < units)
        nxt = pref[room] - penalty * (load[room] + (counts[room] + 1) * weight) / cap[room]
        pick = room[_by_score(nxt, min(deficit, len(room)), best=True)]
        counts[pick] += 1
        deficit -= len(pick)
    while deficit < 0:
        held = np.flatnonzero(counts > 0)
        last = pref[held] - penalty * (load[held] + counts[held] * weight) / cap[held]
        pick = held[_by_score(last, min(-deficit, len(held)), best=False)]
        counts[pick] -= 1
        deficit += len(pick)
    return counts


def _counts_at_threshold(
    t0: np.ndarray, t1: np.ndarray, slope: np.ndarray, units: np.ndarray, n: int
) -> np.ndarray:
    # f(T) = sum_m clip(slope_m * (t0_m - T), 0, units_m)
    #      = sum_{t0 > T} slope (t0 - T) - sum_{t1 > T} slope (t1 - T)
    def suffix_sums(t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        order = np.argsort(t, kind="stable")
        ts = t[order]
        s_bt = np.concatenate([np.cumsum((slope * t)[order][::-1])[::-1], [0.0]])
        s_b = np.concatenate([np.cumsum(slope[order][::-1])[::-1], [0.0]])
        return ts, s_bt, s_b

    t0s, a0, b0 = suffix_sums(t0)
    t1s, a1, b1 = suffix_sums(t1)

    def f(values: np.ndarray) -> np.ndarray:
        i0 = np.searchsorted(t0s, values, side="right")
        i1 = np.searchsorted(t1s, values, side="right")
        return (a0[i0] - values * b0[i0]) - (a1[i1] - values * b1[i1])

    points = np.unique(np.concatenate([t0, t1]))
    values = f(points)
    j = int(np.flatnonzero(values >= n)[-1])  # f(min t1) = sum(units) > n; f(max t0) = 0
    if j + 1 < len(points) and values[j] > values[j + 1]:
        lo, hi = points[j], points[j + 1]
        threshold = lo + (values[j] - n) * (hi - lo) / (values[j] - values[j + 1])
    else:
        threshold = points[j]
    return np.clip(np.floor(slope * (t0 - threshold) + 1e-9), 0, units).astype(np.int64)
