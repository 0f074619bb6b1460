"""Lookahead for the greedy strategies: how much of each group of managers to keep for whom.

A greedy that places the heaviest classes first cannot see that a later class (say, customers
speaking Italian) can only go to a few managers, and fills those managers up first. Here the
whole demand is first routed at once, at the level of

- **buckets**: managers with the same eligibility for every class (interchangeable), and
- **flow classes**: classes with the same eligible buckets (merged),

as a fractional transport problem small enough to solve with a max-flow (SciPy's
``maximum_flow``) in well under a millisecond. Levels are *progressively filled*: the smallest
peak utilization at which everything fits is found (discrete Newton over min cuts), the
bottleneck (the classes that need exactly that level and the buckets they use) is fixed, and the
rest is solved again for a lower level, and so on. The result is the lexicographically most
even fractional split (its first level is the LP lower bound on the peak), kept as
**reservations**: each class, when its turn comes, may use a bucket only as far as the
reservations of the classes still to come allow, but is otherwise free to follow its scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_flow

from app.engine.budget import checkpoint

_INT_LIMIT = 2**30  # maximum_flow works on int32 capacities
_BISECTION_STEPS = 64
_SINKHORN_STEPS = 200
_SETTLE = 1  # units left between bisection bounds for the hand-out by score


@dataclass(eq=False)
class Reservations:
    """Per-bucket room and per-class reservations, updated as classes are placed."""

    bucket_of: np.ndarray  # per manager: bucket index, -1 outside every bucket
    level: np.ndarray  # per bucket: the utilization it is filled to
    room: np.ndarray  # per bucket: weight it may still take (at its level)
    reserved: np.ndarray  # (class × bucket) weight kept for classes not placed yet
    pending: np.ndarray  # per bucket: sum of `reserved` over classes not placed yet
    admitted: np.ndarray  # per class: customers the flow could route (all unless overloaded)
    lower_bound: float  # smallest fractional peak utilization (the LP bound)

    def budget(self, c: int) -> np.ndarray:
        """Weight class c may put in each bucket without eating others' reservations."""
        return np.maximum(self.room - (self.pending - self.reserved[c]), 0.0)

    def placed(self, c: int, managers: np.ndarray, weight_added: np.ndarray) -> None:
        """Record class c's placement (weight per manager) and release its reservations."""
        buckets = self.bucket_of[managers]
        inside = buckets >= 0
        self.room -= np.bincount(
            buckets[inside], weights=weight_added[inside], minlength=len(self.room)
        )
        self.pending -= self.reserved[c]
        self.reserved[c] = 0.0


def _room_at(level: float, load: np.ndarray, cap: np.ndarray, hard: np.ndarray) -> np.ndarray:
    """Weight each manager can take before reaching `level` (never above its hard room)."""
    return np.clip(level * cap - load, 0.0, hard)


def _level_for(
    demand: float, load: np.ndarray, cap: np.ndarray, hard: np.ndarray, top: float
) -> float:
    """Smallest level at which these managers have `demand` room in total (capped at top)."""
    if demand <= 0 or len(load) == 0:
        return 0.0
    if _room_at(top, load, cap, hard).sum() <= demand:
        return top
    lo, hi = 0.0, top
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        if _room_at(mid, load, cap, hard).sum() >= demand:
            hi = mid
        else:
            lo = mid
        if hi - lo <= 1e-13:
            break
    return hi


def _max_flow(
    demand: np.ndarray, edges: np.ndarray, room: np.ndarray
) -> tuple[int, np.ndarray, np.ndarray]:
    """Max flow source → class j → bucket b → sink; returns (value, source flows, j×b flows)."""
    j_count, b_count = edges.shape
    n = j_count + b_count + 2
    jj, bb = np.nonzero(edges)
    big = int(demand.sum()) + 1
    rows = np.concatenate([np.zeros(j_count, np.int64), 1 + jj, 1 + j_count + np.arange(b_count)])
    cols = np.concatenate([1 + np.arange(j_count), 1 + j_count + bb, np.full(b_count, n - 1)])
    caps = np.concatenate([demand, np.full(len(jj), big), room]).astype(np.int32)
    graph = csr_matrix((caps, (rows, cols)), shape=(n, n))
    result = maximum_flow(graph, 0, n - 1)
    flow = result.flow.toarray() if hasattr(result.flow, "toarray") else np.asarray(result.flow)
    source = flow[0, 1 : 1 + j_count]
    between = np.maximum(flow[1 : 1 + j_count, 1 + j_count : n - 1], 0)
    return int(result.flow_value), source, between


def _mix(flow: np.ndarray, support: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The most mixed split with the same totals (Sinkhorn scaling on the flow's support).

    A max-flow routes each class to few buckets; heavy classes alone in a bucket leave no light
    customers to even out their granularity. Scaling a uniform matrix on the same support to the
    class demands and bucket rooms spreads every class over all the buckets it may use.
    """
    if not support.any():
        return flow
    x = support.astype(np.float64)
    rows = rows.astype(np.float64)
    cols = np.asarray(cols, np.float64)
    for _ in range(_SINKHORN_STEPS):
        x *= (rows / np.maximum(x.sum(axis=1), 1e-300))[:, None]
        col = x.sum(axis=0)
        x *= np.where(col > cols, cols / np.maximum(col, 1e-300), 1.0)[None, :]
    # Columns hold; route what the rows still miss through the rooms left (a max-flow).
    x = np.floor(x)
    short = np.maximum(rows - x.sum(axis=1), 0).astype(np.int64)
    left = np.maximum(np.floor(cols - x.sum(axis=0)), 0).astype(np.int64)
    if short.any():
        x = _augment(x.astype(np.int64), short, support, left).astype(np.float64)
    return x


def _augment(x: np.ndarray, short: np.ndarray, support: np.ndarray, left: np.ndarray) -> np.ndarray:
    """Route `short` more per class on top of flow `x`, re-routing parts of `x` if needed."""
    j_count, b_count = support.shape
    n = j_count + b_count + 2
    jj, bb = np.nonzero(support)
    back = x[jj, bb] > 0
    big = int(short.sum() + x.sum()) + 1
    rows = np.concatenate(
        [
            np.zeros(j_count, np.int64),
            1 + jj,
            1 + j_count + bb[back],
            1 + j_count + np.arange(b_count),
        ]
    )
    cols = np.concatenate(
        [1 + np.arange(j_count), 1 + j_count + bb, 1 + jj[back], np.full(b_count, n - 1)]
    )
    caps = np.concatenate([short, np.full(len(jj), big), x[jj, bb][back], left]).astype(np.int32)
    graph = csr_matrix((caps, (rows, cols)), shape=(n, n))
    flow = maximum_flow(graph, 0, n - 1).flow
    flow = flow.toarray() if hasattr(flow, "toarray") else np.asarray(flow)
    forward = flow[1 : 1 + j_count, 1 + j_count : n - 1]
    backward = flow[1 + j_count : n - 1, 1 : 1 + j_count].T
    return x + np.maximum(forward, 0) - np.maximum(backward, 0)


def plan_reservations(
    ok: np.ndarray,
    counts: np.ndarray,
    weights: np.ndarray,
    order: np.ndarray,
    load: np.ndarray,
    capacity: np.ndarray,
    limit: np.ndarray,
    ceiling: float,
) -> Reservations | None:
    """Reservations for classes (rows of `ok`, class × manager eligibility) placed in `order`.

    No manager's load may pass `limit` (its capacity, or a rebalance's target), and no level
    passes `ceiling`. Returns None when the flow cannot be set up (no class, or sizes beyond
    int32).
    """
    k_count, m_count = ok.shape
    demand_k = counts.astype(np.int64) * weights.astype(np.int64)
    cap = capacity.astype(np.float64)
    hard = np.maximum(limit - load, 0).astype(np.float64)
    useful = ok.any(axis=0) & (hard > 0)
    if k_count == 0 or not useful.any() or demand_k.sum() >= _INT_LIMIT:
        return None
    # Buckets: managers with the same column of `ok`.
    managers = np.flatnonzero(useful)
    packed = np.packbits(ok[:, managers], axis=0).T.copy()  # managers × ceil(K/8) bytes
    keys = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
    _, first, bucket = np.unique(keys, return_index=True, return_inverse=True)
    bucket = bucket.reshape(-1)
    b_count = len(first)
    bucket_of = np.full(m_count, -1, np.int64)
    bucket_of[managers] = bucket
    class_bucket = ok[:, managers[first]]  # K × B
    # Flow classes: classes with the same eligible buckets.
    kpacked = np.ascontiguousarray(np.packbits(class_bucket, axis=1))
    kkeys = kpacked.view(np.dtype((np.void, kpacked.shape[1]))).ravel()
    _, kfirst, flow_class = np.unique(kkeys, return_index=True, return_inverse=True)
    flow_class = flow_class.reshape(-1)
    edges = class_bucket[kfirst]  # J × B
    demand_j = np.bincount(flow_class, weights=demand_k, minlength=len(kfirst)).astype(np.int64)
    m_load = load[managers].astype(np.float64)
    m_cap = cap[managers]
    m_hard = hard[managers]
    bucket_hard = np.bincount(bucket, weights=m_hard, minlength=b_count)

    # Overloaded: route what fits; within a flow class, admit classes in placement order.
    value, source, _ = _max_flow(demand_j, edges, np.floor(bucket_hard).astype(np.int64))
    admitted = counts.astype(np.int64).copy()
    if value < int(demand_j.sum()):
        left = source.astype(np.int64).copy()
        for k in order:
            j = flow_class[k]
            take = min(int(counts[k]), int(left[j] // int(weights[k])))
            admitted[k] = take
            left[j] -= take * int(weights[k])
        demand_k = admitted * weights.astype(np.int64)
        demand_j = np.bincount(flow_class, weights=demand_k, minlength=len(kfirst)).astype(np.int64)

    level = np.zeros(b_count)
    flow_jb = np.zeros(edges.shape)
    active_j = demand_j > 0
    active_b: np.ndarray = np.asarray(edges[active_j].any(axis=0))
    lower_bound = 0.0
    rounds = 0
    round_j = np.zeros(len(kfirst), np.int64)
    round_b = np.zeros(b_count, np.int64)
    while active_j.any() and rounds <= len(kfirst):
        checkpoint()
        rounds += 1
        in_b = active_b[bucket]
        t = _level_for(
            float(demand_j[active_j].sum()), m_load[in_b], m_cap[in_b], m_hard[in_b], ceiling
        )
        cut_j, cut_b = active_j.copy(), active_b.copy()
        for _ in range(4 * len(kfirst) + 8):
            checkpoint()
            room_b = np.bincount(
                bucket, weights=_room_at(t, m_load, m_cap, m_hard), minlength=b_count
            )
            room_b = np.where(active_b, np.ceil(room_b - 1e-9), 0).astype(np.int64)
            want = np.where(active_j, demand_j, 0)
            value, source, between = _max_flow(want, edges & active_b, room_b)
            if value >= int(want.sum()):
                break
            # Classes still reachable from the source in the residual graph form the cut.
            reach_j = active_j & (source < want)
            reach_b = np.zeros(b_count, bool)
            while True:
                reach_b = np.asarray(edges[reach_j].any(axis=0)) & active_b
                grown = reach_j | ((between[:, reach_b] > 0).any(axis=1) & active_j)
                if (grown == reach_j).all():
                    break
                reach_j = grown
            cut_j, cut_b = reach_j, reach_b
            in_cut = cut_b[bucket]
            t_new = _level_for(
                float(demand_j[cut_j].sum()), m_load[in_cut], m_cap[in_cut], m_hard[in_cut], ceiling
            )
            t = t_new if t_new > t else min(ceiling, t + 1e-9)
        lower_bound = max(lower_bound, t)
        level[cut_b] = t
        flow_jb[cut_j] = between[cut_j]
        round_j[cut_j] = rounds
        round_b[cut_b] = rounds
        active_j &= ~cut_j
        active_b &= ~cut_b
        active_b &= edges[active_j].any(axis=0) if active_j.any() else False
    room = np.bincount(
        bucket, weights=np.clip(level[bucket] * m_cap - m_load, 0.0, m_hard), minlength=b_count
    )
    flow_jb = _mix(
        flow_jb,
        edges & (round_j[:, None] == round_b[None, :]) & (round_j[:, None] > 0),
        demand_j,
        room,
    )
    # Split each flow class's routes over its classes in proportion to their weight.
    share = np.where(demand_j[flow_class] > 0, demand_k / np.maximum(demand_j[flow_class], 1), 0)
    reserved = flow_jb[flow_class] * share[:, None]
    room = np.maximum(room, reserved.sum(axis=0))
    return Reservations(
        bucket_of=bucket_of,
        level=level,
        room=room,
        reserved=reserved,
        pending=reserved.sum(axis=0),
        admitted=admitted,
        lower_bound=float(lower_bound),
    )


def grouped_fill(
    pref: np.ndarray,
    load: np.ndarray,
    capacity: np.ndarray,
    units: np.ndarray,
    group: np.ndarray,
    group_units: np.ndarray,
    weight: int,
    n: int,
    penalty: float,
) -> np.ndarray:
    """Counts per manager, like `water_fill`, with at most `group_units[g]` in each group g.

    The k-th unit given to manager m scores `pref[m] - penalty * (load[m] + k * weight) /
    capacity[m]`; the best-scoring units are taken (ties to the lower index) subject to each
    manager's `units` and each group's limit. Found by bisection on score thresholds: one per
    saturated group, then a common one.
    """
    units = units.astype(np.int64)
    if n <= 0 or len(units) == 0:
        return np.zeros_like(units)
    g_count = len(group_units)
    group_units = group_units.astype(np.int64)
    cap = capacity.astype(np.float64)
    slope = cap / (penalty * weight)
    t0 = pref - penalty * load / cap  # score of a manager's unit 0 ... (scores fall by 1/slope)
    lo0 = float((t0 - (units + 1) / slope).min()) - 1.0
    hi0 = float(t0.max()) + 1.0

    def count(threshold: np.ndarray | float) -> np.ndarray:
        raw = np.floor(slope * (t0 - threshold) + 1e-9)
        return np.minimum(np.maximum(raw, 0), units).astype(np.int64)

    # Per-group thresholds where the group holds at most its limit. Bisection stops once a
    # few units separate the bounds; the hand-out below settles those by score.
    total_g = np.bincount(group, weights=units, minlength=g_count)
    capped = total_g > group_units
    tau = np.full(g_count, -np.inf)
    if capped.any():
        lo = np.full(g_count, lo0)
        hi = np.full(g_count, hi0)
        held_lo = total_g.copy()
        held_hi = np.zeros(g_count)
        for _ in range(_BISECTION_STEPS):
            open_ = capped & (held_lo - held_hi > _SETTLE)
            if not open_.any():
                break
            mid = np.where(open_, 0.5 * (lo + hi), hi)
            held = np.bincount(group, weights=count(mid[group]), minlength=g_count)
            fits = held <= group_units
            hi = np.where(open_ & fits, mid, hi)
            held_hi = np.where(open_ & fits, held, held_hi)
            lo = np.where(open_ & ~fits, mid, lo)
            held_lo = np.where(open_ & ~fits, held, held_lo)
        tau = np.where(capped, hi, -np.inf)
    floor_t = tau[group]
    counts = count(floor_t)
    if int(counts.sum()) > n:
        low, high = lo0, hi0
        at_lo, at_hi = int(counts.sum()), 0
        counts = np.zeros_like(units)
        for _ in range(_BISECTION_STEPS):
            if at_lo - at_hi <= _SETTLE:
                break
            middle = 0.5 * (low + high)
            trial = count(np.maximum(middle, floor_t))
            taken = int(trial.sum())
            if taken <= n:
                high, at_hi, counts = middle, taken, trial
            else:
                low, at_lo = middle, taken
    # Hand out what the thresholds left by the next unit's score, within every limit.
    deficit = n - int(counts.sum())
    index = np.arange(len(units))
    while deficit > 0:
        held = np.bincount(group, weights=counts, minlength=g_count).astype(np.int64)
        room = np.flatnonzero((counts < units) & (held[group] < group_units[group]))
        if not len(room):
            break
        nxt = t0[room] - (counts[room] + 1) / slope[room]
        order = np.lexsort((index[room], -nxt))
        score = nxt[order]
        after = np.where(counts[room] + 1 < units[room], nxt - 1.0 / slope[room], -np.inf)[order]
        # Greedy by unit: a unit is taken in this pass only if no manager already taken in
        # this pass has a better second unit.
        best_after = np.maximum.accumulate(np.r_[-np.inf, after[:-1]])
        order = room[order[score >= best_after - 1e-12]]
        g = group[order]
        # rank of each candidate among its group's candidates, in score order
        by_group = np.lexsort((np.arange(len(order)), g))
        starts = np.searchsorted(g[by_group], g[by_group], side="left")
        rank = np.empty(len(order), np.int64)
        rank[by_group] = np.arange(len(order)) - starts
        allowed = order[rank < (group_units[g] - held[g])][:deficit]
        if not len(allowed):
            break  # only with scores that do not compare (NaN); the caller water-fills the rest
        counts[allowed] += 1
        deficit -= len(allowed)
    return counts
