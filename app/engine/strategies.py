"""The four placement strategies. Each fills an Outcome and updates `load` in place."""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Mapping, Sequence
from uuid import UUID

import numpy as np

from app.engine.budget import checkpoint
from app.engine.classes import Classes, class_eligibility
from app.engine.facts import EngineError
from app.engine.fill import water_fill
from app.engine.lookahead import Reservations, grouped_fill, plan_reservations
from app.engine.outcome import Outcome
from app.engine.problem import Problem

NO_ELIGIBLE = ("no_eligible_manager",)
NO_CAPACITY = ("no_capacity",)


def place_class(
    problem: Problem,
    outcome: Outcome,
    load: np.ndarray,
    rows: np.ndarray,
    counts_by_manager: np.ndarray,
    managers: np.ndarray,
    weight: int,
    pref: np.ndarray,
    penalty: float,
    reason: tuple[str, ...],
) -> int:
    """Give consecutive rows to `managers` (ascending) by `counts`; returns how many placed.

    Scores use the utilization right after each customer's move.
    """
    placed = int(counts_by_manager.sum())
    if placed == 0:
        return 0
    to = np.repeat(managers, counts_by_manager)
    block_start = np.repeat(np.cumsum(counts_by_manager) - counts_by_manager, counts_by_manager)
    k = np.arange(placed) - block_start
    util = (load[to] + (k + 1) * weight) / problem.capacity[to]
    score = pref[to] - penalty * util
    chosen = rows[:placed]
    stays = problem.owner[chosen] == to
    outcome.set(chosen[~stays], to[~stays], reason, score[~stays])
    outcome.set(chosen[stays], to[stays], ("kept_current_owner",), score[stays])
    np.add.at(load, managers, counts_by_manager * weight)
    return placed


MAX_LOOKAHEAD_CELLS = 50_000_000
"""Above this many (class × manager) cells the lookahead's eligibility matrix is not built and
`balanced` places greedily without reservations."""


def run_balanced(
    problem: Problem,
    classes: Classes,
    outcome: Outcome,
    load: np.ndarray,
    penalty: float,
    *,
    limit: np.ndarray | None = None,
    ceiling: float = 1.0,
    reason: tuple[str, ...] = ("balanced",),
) -> Reservations | None:
    """Heaviest, most important classes first; each customer to the best score, water-filled.

    Each class may only use what the lookahead does not keep for classes still to come (see
    `lookahead`), so a class with few eligible managers still finds them with room. `limit`
    caps each manager's load (default: capacity). Returns the reservations (None when placed
    without lookahead).
    """
    limit = problem.capacity if limit is None else limit
    reservations = None
    if penalty > 0 and 0 < len(classes) * len(problem.managers) <= MAX_LOOKAHEAD_CELLS:
        ok = np.zeros((len(classes), len(problem.managers)), bool)
        for c in range(len(classes)):
            ok[c] = class_eligibility(problem, classes, c)[0]
        sizes = np.diff(classes.starts)
        reservations = plan_reservations(
            ok, sizes, classes.weight, classes.order, load, problem.capacity, limit, ceiling
        )
        del ok
    for c in classes.order:
        checkpoint()
        c = int(c)
        rows = classes.members(c)
        weight = int(classes.weight[c])
        ok, pref = class_eligibility(problem, classes, c)
        if not ok.any():
            outcome.set(rows, -1, NO_ELIGIBLE)
            continue
        room = np.where(ok, np.maximum(limit - load, 0) // weight, 0)
        counts = np.zeros(len(load), np.int64)
        wanted = len(rows)
        if reservations is not None:
            wanted = int(reservations.admitted[c])
            inside = np.flatnonzero((room > 0) & (reservations.bucket_of >= 0))
            budget = np.floor(reservations.budget(c) / weight + 1e-9).astype(np.int64)
            counts[inside] = grouped_fill(
                pref[inside],
                load[inside],
                problem.capacity[inside],
                room[inside],
                reservations.bucket_of[inside],
                budget,
                weight,
                wanted,
                penalty,
            )
            reservations.placed(c, inside, counts[inside] * weight)
        short = wanted - int(counts.sum())
        if short > 0:
            # Without lookahead, or what the reservations' rounding left: plain water-filling.
            candidates = np.flatnonzero(room > counts)
            counts[candidates] += water_fill(
                pref[candidates],
                load[candidates] + counts[candidates] * weight,
                problem.capacity[candidates],
                room[candidates] - counts[candidates],
                weight,
                short,
                penalty,
            )
        managers = np.flatnonzero(counts)
        placed = place_class(
            problem, outcome, load, rows, counts[managers], managers, weight, pref, penalty, reason
        )
        if placed < len(rows):
            outcome.set(rows[placed:], -1, NO_CAPACITY)
    return reservations


def run_successor(
    problem: Problem,
    classes: Classes,
    outcome: Outcome,
    load: np.ndarray,
    penalty: float,
    successor_id: UUID | None,
    force: bool,
) -> None:
    """Everyone to one named manager, still checked against every hard rule."""
    if successor_id is None:
        raise EngineError("the successor strategy needs successor_id")
    if successor_id not in problem.index_of:
        raise EngineError(f"successor {successor_id} is not among the given managers")
    s = problem.index_of[successor_id]
    manager = problem.managers[s]
    cap = int(problem.capacity[s])
    for c in classes.order:
        checkpoint()
        rows = classes.members(c)
        weight = int(classes.weight[c])
        if not problem.not_excluded[s]:
            outcome.set(rows, -1, ("excluded_successor",))
            continue
        rep = int(classes.rep[c])
        current, former = problem.relations(rep)
        violations = []
        if manager.level < classes.min_level[c]:
            violations.append("tier_min_level")
        if manager.status != "active":
            violations.append("manager_active")
        if not manager.accepting_new:
            violations.append("manager_accepting")
        if manager.absent:
            violations.append("absent")
        if manager.off_hours:
            violations.append("outside_hours")
        if not (problem.intake_room[s] > 0 and problem.tier_room_of(rep)[s] > 0):
            violations.append("intake_cap")
        for rule in problem.rules.eligibility:
            applies, holds = problem.evaluator.rule_outcome(rule, rep, current, former)
            if applies[s] and not holds[s]:
                violations.append(rule.id)
        pref = problem.evaluator.row(rep, current, former)[1]
        if violations:
            codes = tuple(f"violates:{v}" for v in violations)
            outcome.set(rows, -1, ("successor_ineligible", *codes))
            continue
        fit = max(0, min(len(rows), (cap - int(load[s])) // weight)) if cap > 0 else 0
        taken = fit if not force else len(rows)
        if taken:
            k = np.arange(taken)
            util = (load[s] + (k + 1) * weight) / cap if cap > 0 else np.full(taken, np.inf)
            score = pref[s] - penalty * util if cap > 0 else np.full(taken, pref[s])
            outcome.set(rows[:fit], s, ("successor",), score[:fit])
            if taken > fit:
                over = rows[fit:taken]
                outcome.set(over, s, ("successor", "violates:capacity"), score[fit:taken])
                outcome.forced[over] = True
            load[s] += taken * weight
        if taken < len(rows):
            outcome.set(rows[taken:], -1, ("no_capacity", "violates:capacity"))


_CHUNK = 65_536


def _round_robin_chunk(
    rows: list[int],
    class_of: list[int],
    eligible: list[list[int]],
    had_eligible: list[bool],
    pool_of: list[str],
    weights: list[int],
    capacity: list[int],
    loads: list[int],
    chosen: np.ndarray,
    no_room: np.ndarray,
    pointers: dict[str, int],
    last: dict[str, int],
    m: int,
) -> None:
    """Place one chunk of customers, each pool taking its own turn."""
    for row, c in zip(rows, class_of, strict=True):
        if c < 0:
            continue
        candidates = eligible[c]
        w = weights[c]
        if not candidates:
            no_room[row] = had_eligible[c]
            continue
        pool = pool_of[c]
        j = bisect.bisect_left(candidates, pointers.get(pool, 0))
        while candidates:
            if j >= len(candidates):
                j = 0
            mgr = candidates[j]
            if loads[mgr] + w <= capacity[mgr]:
                break
            del candidates[j]  # full for this class's weight from now on
        else:
            no_room[row] = True
            continue
        chosen[row] = mgr
        loads[mgr] += w
        pointers[pool] = (mgr + 1) % m
        last[pool] = mgr


def rotation_pool(manager_ids: Sequence[UUID]) -> str:
    """The key of an eligibility pool: the managers a class may go to (capacity aside)."""
    digest = hashlib.sha256(b"".join(i.bytes for i in manager_ids)).hexdigest()
    return f"rr:{digest[:24]}"


def run_round_robin(
    problem: Problem,
    classes: Classes,
    outcome: Outcome,
    load: np.ndarray,
    order: np.ndarray,
    rotation: Mapping[str, UUID],
) -> dict[str, UUID]:
    """In customer-id order, each customer to the next eligible manager (by id) with room.

    Each eligibility pool (the managers a class may go to, capacity aside) takes its own turn
    and continues after ``rotation[pool]``, the last manager it gave a customer to in an
    earlier plan; returns the last manager of every pool this plan used."""
    class_of = np.full(len(problem.cols), -1, np.int32)
    eligible: list[list[int]] = []
    pool_of: list[str] = []
    prefs: list[np.ndarray] = []
    ids = [mgr.id for mgr in problem.managers]  # sorted by id
    for c in range(len(classes)):
        checkpoint()
        class_of[classes.members(c)] = c
        ok, pref = class_eligibility(problem, classes, c)
        eligible.append(np.flatnonzero(ok).tolist())
        pool_of.append(rotation_pool([ids[j] for j in eligible[-1]]))
        prefs.append(pref)
    had_eligible = [bool(e) for e in eligible]
    m = len(problem.managers)
    pointers = {
        pool: bisect.bisect_right(ids, rotation[pool]) % max(m, 1)
        for pool in set(pool_of)
        if pool in rotation
    }
    last: dict[str, int] = {}
    capacity = problem.capacity.tolist()
    loads = load.tolist()
    weights = classes.weight.tolist()
    chosen = np.full(len(problem.cols), -1, np.int32)
    no_room = np.zeros(len(problem.cols), bool)
    # The turn passes from customer to customer, so they go one by one; in chunks, so that no
    # million-entry Python list is ever built.
    for start in range(0, len(order), _CHUNK):
        checkpoint()
        rows = order[start : start + _CHUNK]
        _round_robin_chunk(
            rows.tolist(),
            class_of[rows].tolist(),
            eligible,
            had_eligible,
            pool_of,
            weights,
            capacity,
            loads,
            chosen,
            no_room,
            pointers,
            last,
            m,
        )
    load[:] = loads
    _record_turns(problem, classes, outcome, chosen, prefs, no_room, "round_robin")
    return {pool: ids[mgr] for pool, mgr in last.items()}


def jain_index(received: np.ndarray, weights: np.ndarray) -> float | None:
    """Jain's fairness index of received counts against target shares (the weights):
    ``(Σx)² / (n·Σx²)`` over ``x = received / weight``; 1.0 is a split exactly by weight,
    ``1/n`` everything to one manager. None without managers."""
    if not len(received):
        return None
    x = received / weights
    square = float((x * x).sum())
    return 1.0 if square == 0 else float(x.sum()) ** 2 / (len(x) * square)


def run_weighted_round_robin(
    problem: Problem,
    classes: Classes,
    outcome: Outcome,
    load: np.ndarray,
    order: np.ndarray,
    counts: Mapping[str, Mapping[UUID, int]],
) -> tuple[dict[str, dict[UUID, int]], float | None]:
    """In customer-id order, each customer to the manager of its pool furthest below its
    target share (``rotation_weight`` over the pool's weights) of what the pool has given out.

    A pool is the managers the rules and the tier's level allow (availability, intake caps
    and capacity aside), so it keeps its identity while someone is away or capped; those are
    skipped at their turn. ``counts[pool][manager]`` is what each received earlier in the
    period (the memory); returns the counts after this plan and Jain's fairness index of
    received count per weight over the pools' managers.
    """
    ids = [mgr.id for mgr in problem.managers]
    tier_col = problem.cols.tier
    class_of = np.full(len(problem.cols), -1, np.int32)
    pool_of: list[str] = []
    members_of: list[np.ndarray] = []
    eligible: list[np.ndarray] = []
    prefs: list[np.ndarray] = []
    base = problem.active & (problem.capacity > 0)
    for c in range(len(classes)):
        checkpoint()
        class_of[classes.members(c)] = c
        rep = int(classes.rep[c])
        current, former = problem.relations(rep)
        rules_ok, _ = problem.evaluator.row(rep, current, former)
        members = np.flatnonzero(rules_ok & base & (problem.level >= classes.min_level[c]))
        ok, pref = class_eligibility(problem, classes, c)
        members_of.append(members)
        pool_of.append(rotation_pool([ids[j] for j in members]).replace("rr:", "wrr:", 1))
        eligible.append(np.flatnonzero(ok))
        prefs.append(pref)
    received: dict[str, dict[int, int]] = {}
    for pool, members in zip(pool_of, members_of, strict=True):
        if pool not in received:
            earlier = counts.get(pool, {})
            received[pool] = {int(j): int(earlier.get(ids[j], 0)) for j in members}
    weights = problem.rotation_weight
    intake = problem.intake_room.copy()
    tier_room = problem.tier_room.copy()
    capacity = problem.capacity
    chosen = np.full(len(problem.cols), -1, np.int32)
    no_room = np.zeros(len(problem.cols), bool)
    for start in range(0, len(order), _CHUNK):
        checkpoint()
        for row in order[start : start + _CHUNK].tolist():
            c = int(class_of[row])
            if c < 0:
                continue
            candidates = eligible[c]
            if not len(candidates):
                continue
            w = int(classes.weight[c])
            t = int(tier_col[row])
            got = received[pool_of[c]]
            total_weight = int(weights[members_of[c]].sum())
            given = sum(got.values()) + 1
            best, best_gap = -1, None
            for j in candidates.tolist():
                if load[j] + w > capacity[j] or intake[j] <= 0 or tier_room[j, t] <= 0:
                    continue
                gap = int(weights[j]) * given - got[j] * total_weight
                if best_gap is None or gap > best_gap:
                    best, best_gap = j, gap
            if best < 0:
                no_room[row] = True
                continue
            chosen[row] = best
            load[best] += w
            if problem.owner[row] != best:  # keeping one's own customer is no turn
                got[best] += 1
                intake[best] -= 1
                tier_room[best, t] -= 1
    _record_turns(problem, classes, outcome, chosen, prefs, no_room, "weighted_round_robin")
    per_manager: dict[int, int] = {}
    for got in received.values():
        for j, n in got.items():
            per_manager[j] = per_manager.get(j, 0) + n
    managers = np.array(sorted(per_manager), np.int64)
    fairness = jain_index(
        np.array([per_manager[j] for j in managers.tolist()], float),
        weights[managers].astype(float) if len(managers) else np.zeros(0),
    )
    after = {pool: {ids[j]: n for j, n in got.items() if n > 0} for pool, got in received.items()}
    return after, fairness


def _record_turns(
    problem: Problem,
    classes: Classes,
    outcome: Outcome,
    chosen: np.ndarray,
    prefs: Sequence[np.ndarray],
    no_room: np.ndarray,
    reason: str,
) -> None:
    """Record a rotation's choices (``chosen``: engine manager index, or -1 for none): moves
    with ``reason``, customers their own owner keeps, preference scores, and why the others
    wait (no room, or nobody eligible)."""
    placeable = classes.rows
    picked = placeable[chosen[placeable] >= 0]
    to = chosen[picked]
    stays = problem.owner[picked] == to
    outcome.set(picked[~stays], to[~stays], (reason,))
    outcome.set(picked[stays], to[stays], ("kept_current_owner",))
    for c in range(len(classes)):
        rows = classes.members(c)
        rows = rows[chosen[rows] >= 0]
        outcome.score[rows] = prefs[c][chosen[rows]]
    unplaced = placeable[chosen[placeable] < 0]
    outcome.set(unplaced[no_room[unplaced]], -1, NO_CAPACITY)
    outcome.set(unplaced[~no_room[unplaced]], -1, NO_ELIGIBLE)
