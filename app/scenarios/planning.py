"""The re-division of a book in memory: a scenario's changes applied to frozen facts, and the
plan with the fewest moves that makes every owner compliant under them.

Pure (numpy and the engine, no database): the service loads the live book, this module
decides, the service stores the preview or writes the moves.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import numpy as np

from app import engine
from app.engine.columns import uuids_to_s16
from app.vocabulary import Strategy

SAMPLE = 100
"""Violations left listed in a preview."""
MANAGERS_LISTED = 1000
"""Managers whose load changes listed in a preview."""


@dataclass(frozen=True, eq=False)
class Book:
    """The live facts a preview reads: every active owned customer (sorted by id), the
    managers who may own them (not departed, or departed but still owning), tiers, rules."""

    customers: engine.CustomerColumns
    managers: list[engine.Manager]
    tiers: list[engine.Tier]
    rules: engine.RuleSet
    rules_version: int


@dataclass(frozen=True, eq=False)
class Changed:
    """The book with a scenario's changes applied (managers: the live ones in the same order,
    then the added ones; customer owner codes index this list)."""

    customers: engine.CustomerColumns
    managers: list[engine.Manager]
    tiers: list[engine.Tier]
    rules: engine.RuleSet
    customers_changed: int
    managers_changed: int
    managers_added: int


@dataclass(frozen=True, eq=False)
class Redivision:
    """A preview's result: the report and the moves to write."""

    report: dict[str, Any]
    customer_ids: np.ndarray  # S16
    manager_ids: np.ndarray  # S16, zero bytes for the pool
    violators: np.ndarray  # S16: customers whose owner breaks a rule after the moves


def digests(book: Book, changes: dict[str, Any], options: dict[str, Any]) -> dict[str, str]:
    """Digests of everything a preview reads, by part (so a stale preview says what changed):
    the whole book's columns, whole manager and tier facts (``engine.digest`` walks every
    field), the rule set version, the scenario's changes and the preview options."""
    return {
        "customers": engine.digest(book.customers),
        "managers": engine.digest(tuple(dataclasses.replace(m, workload=0) for m in book.managers)),
        "tiers": engine.digest(tuple(book.tiers)),
        "rules": str(book.rules_version),
        "scenario": engine.digest(json.dumps(changes, sort_keys=True, default=str)),
        "options": engine.digest(json.dumps(options, sort_keys=True)),
    }


def _category(values: tuple[str, ...], value: str | None) -> tuple[tuple[str, ...], int]:
    """The code of ``value`` (-1 for None), adding it to the categories if new."""
    if value is None:
        return values, -1
    if value in values:
        return values, values.index(value)
    return (*values, value), len(values)


def _selected(book: Book, change: dict[str, Any]) -> np.ndarray:
    """Rows a customer change selects, matched on live values."""
    c = book.customers
    if change.get("customer_ids") is not None:
        wanted = uuids_to_s16([UUID(str(i)) for i in change["customer_ids"]])
        return np.isin(c.ids, wanted)
    found = change.get("filter") or {}
    mask = np.ones(len(c), bool)
    if "region" in found:
        code = c.regions.index(found["region"]) if found["region"] in c.regions else -2
        mask &= c.region == (-1 if found["region"] is None else code)
    if "tier" in found:
        code = c.tier_codes.index(found["tier"]) if found["tier"] in c.tier_codes else -2
        mask &= c.tier == code
    if "manager_id" in found:
        owner = None if found["manager_id"] is None else UUID(str(found["manager_id"]))
        code = c.owner_ids.index(owner) if owner in c.owner_ids else -2
        mask &= c.owner == (-1 if owner is None else code)
    if "team" in found:
        team_of = np.array([m.team == found["team"] for m in book.managers] + [False], bool)
        mask &= team_of[c.owner]
    return mask


def apply_changes(book: Book, changes: dict[str, Any], rules: engine.RuleSet | None) -> Changed:
    """The book as it would be with the scenario's changes (nothing live is touched)."""
    c = book.customers
    tier_codes, regions = c.tier_codes, c.regions
    tier = c.tier.copy()
    region = c.region.copy()
    pinned = c.pinned.copy()
    changed = np.zeros(len(c), bool)
    for change in changes.get("customers", []):
        rows = _selected(book, change)
        values = change["set"]
        if "tier" in values:
            if values["tier"] not in tier_codes:
                tier_codes = (*tier_codes, values["tier"])
            tier[rows] = tier_codes.index(values["tier"])
        if "region" in values:
            regions, code = _category(regions, values["region"])
            region[rows] = code
        if "pinned" in values:
            pinned[rows] = values["pinned"]
        changed |= rows
    changed &= (tier != c.tier) | (region != c.region) | (pinned != c.pinned)
    customers = dataclasses.replace(
        c, tier=tier, tier_codes=tier_codes, region=region, regions=regions, pinned=pinned
    )
    by_id = {UUID(str(m["manager_id"])): m for m in changes.get("managers", [])}
    managers = []
    for m in book.managers:
        values = by_id.get(m.id)
        if values is not None:
            fields = {k: v for k, v in values.items() if k != "manager_id"}
            for k in ("languages", "industries"):
                if k in fields:
                    fields[k] = tuple(fields[k])
            m = dataclasses.replace(m, **fields)
        managers.append(m)
    for new in changes.get("new_managers", []):
        managers.append(
            engine.Manager(
                id=UUID(str(new["id"])),
                level=new["level"],
                capacity=new["capacity"],
                workload=0,
                status=new.get("status", "active"),
                accepting_new=new.get("accepting_new", True),
                region=new.get("region"),
                languages=tuple(new.get("languages", ())),
                industries=tuple(new.get("industries", ())),
                team=new.get("team"),
            )
        )
    tier_changes = {t["code"]: t for t in changes.get("tiers", [])}
    tiers = [
        dataclasses.replace(
            t, **{k: v for k, v in tier_changes.get(t.code, {}).items() if k != "code"}
        )
        for t in book.tiers
    ]
    customers = dataclasses.replace(customers, owner_ids=tuple(m.id for m in managers))
    return Changed(
        customers=customers,
        managers=_with_workloads(managers, customers, tiers),
        tiers=tiers,
        rules=rules if rules is not None else book.rules,
        customers_changed=int(changed.sum()),
        managers_changed=len(by_id),
        managers_added=len(changes.get("new_managers", [])),
    )


def _loads(
    managers: Sequence[engine.Manager],
    customers: engine.CustomerColumns,
    tiers: Sequence[engine.Tier],
) -> np.ndarray:
    weight = {t.code: t.weight for t in tiers}
    tier_weight = np.array([weight[code] for code in customers.tier_codes], np.int64)
    owned = customers.owner >= 0
    return np.bincount(
        customers.owner[owned], weights=tier_weight[customers.tier[owned]], minlength=len(managers)
    ).astype(np.int64)


def _with_workloads(
    managers: Sequence[engine.Manager],
    customers: engine.CustomerColumns,
    tiers: Sequence[engine.Tier],
) -> list[engine.Manager]:
    load = _loads(managers, customers, tiers)
    return [dataclasses.replace(m, workload=int(load[i])) for i, m in enumerate(managers)]


def _balance(managers: Sequence[engine.Manager], load: np.ndarray) -> dict[str, float | None]:
    cap = np.array([m.capacity for m in managers], np.float64)
    counted = np.array([m.status == "active" for m in managers], bool) & (cap > 0)
    if not counted.any():
        return {"peak_utilization": None, "utilization_spread": None}
    util = load[counted] / cap[counted]
    return {
        "peak_utilization": round(float(util.max()), 4),
        "utilization_spread": round(float(util.max() - util.min()), 4),
    }


def _ratio(workload: int, capacity: int) -> float | None:
    return round(workload / capacity, 4) if capacity else None


class _Reasons:
    """Interned reason names and one code per customer row (-1: none)."""

    def __init__(self, n: int, names: Sequence[str] = ()) -> None:
        self.names: list[str] = list(names)
        self.code = np.full(n, -1, np.int32)

    def set(self, rows: np.ndarray, name: str) -> None:
        if name not in self.names:
            self.names.append(name)
        self.code[rows] = self.names.index(name)

    def count(self, rows: np.ndarray) -> dict[str, int]:
        codes = self.code[rows]
        counts = np.bincount(codes[codes >= 0], minlength=len(self.names))
        return {self.names[c]: int(k) for c, k in sorted(enumerate(counts.tolist())) if k} | (
            {"no_eligible_manager": int((codes < 0).sum())} if (codes < 0).any() else {}
        )

    def name(self, row: int) -> str:
        code = int(self.code[row])
        return self.names[code] if code >= 0 else "no_eligible_manager"


def redivide(
    book: Book,
    changed: Changed,
    *,
    options: dict[str, Any],
    now: datetime,
) -> Redivision:
    """The fewest moves that make every owner compliant under the changed facts (only owners
    breaking a hard rule lose customers, most important customers first, within
    ``max_moves``); unless ``fix_only``, then a rebalance to ``rebalance_to`` (stability
    guarded, never moving a customer twice). Violators nobody can take stay with their owner
    and are reported, except that a departed owner's go to the pool."""
    cols = changed.customers
    managers = changed.managers
    tiers = changed.tiers
    rules = changed.rules
    explain = options.get("explain", "basic")
    limit = options.get("decisions_limit", 50)
    max_moves = options.get("max_moves")
    n = len(cols)
    broken = engine.owners_violating(cols, managers, tiers, rules)
    violating = broken.violating
    rank = {t.code: t.rank for t in tiers}
    tier_rank = np.array([rank[code] for code in cols.tier_codes], np.int64)
    owner = cols.owner.astype(np.int64)
    new_owner = owner.copy()
    moved_for = _Reasons(n, broken.rules)  # why a customer moves
    moved_for.code[:] = broken.first
    left_for = _Reasons(n)  # why a violator stays
    decisions: list[dict[str, Any]] = []

    left_for.set(np.flatnonzero(violating & cols.pinned), "pinned")
    candidates = np.flatnonzero(violating & ~cols.pinned)
    # most important first, then by id (rows are in id order)
    candidates = candidates[np.argsort(tier_rank[cols.tier[candidates]], kind="stable")]
    if max_moves is not None and len(candidates) > max_moves:
        left_for.set(candidates[max_moves:], "max_moves")
        candidates = candidates[:max_moves]
    candidates = np.sort(candidates)
    position = {m.id: i for i, m in enumerate(managers)}
    departed = np.array([m.status == "departed" for m in managers] + [False], bool)
    fixed = np.zeros(n, bool)
    if len(candidates):
        plan = engine.plan_assignments(
            cols.take(candidates),
            managers,
            tiers,
            rules,
            engine.PlanOptions(strategy=Strategy.BALANCED, now=now, explain=explain),
        )
        mine = np.array([position[m.id] for m in plan.problem.managers] + [-1], np.int64)
        to = plan.outcome.to.astype(np.int64)
        target = mine[np.where(to >= 0, to, -1)]
        placed = target >= 0
        pooled = ~placed & departed[owner[candidates]]
        new_owner[candidates[placed]] = target[placed]
        new_owner[candidates[pooled]] = -1
        moved_for.set(candidates[pooled], "to_pool")
        fixed[candidates[placed | pooled]] = True
        stay = np.flatnonzero(~placed & ~pooled)
        for code in np.unique(plan.outcome.reason[stay]).tolist():
            reasons = plan.outcome.reasons[code]
            left_for.set(
                candidates[stay[plan.outcome.reason[stay] == code]],
                reasons[0] if reasons else "no_eligible_manager",
            )
        for i in np.flatnonzero(placed | pooled)[:limit].tolist():
            decisions.append(plan.decision(i).to_dict())

    rebalanced = np.zeros(n, bool)
    if not options.get("fix_only", True):
        budget = None if max_moves is None else max(0, max_moves - int(fixed.sum()))
        last_moved = np.where(fixed, int(now.timestamp()), cols.last_moved_at)
        current = dataclasses.replace(
            cols, owner=new_owner.astype(np.int32), last_moved_at=last_moved
        )
        plan = engine.rebalance(
            current,
            _with_workloads(managers, current, tiers),
            tiers,
            rules,
            engine.RebalanceOptions(
                now=now,
                target_utilization=options.get("rebalance_to") or 1.0,
                min_days_since_move=options.get("min_days_since_move", 90),
                explain=explain,
            ),
        )
        mine = np.array([position[m.id] for m in plan.problem.managers] + [-1], np.int64)
        raw = plan.outcome.to.astype(np.int64)
        to = np.where(raw >= 0, mine[np.maximum(raw, 0)], -1)  # KEEP and the pool: no move
        moved = np.flatnonzero((to >= 0) & (to != new_owner))
        if budget is not None:
            moved = moved[:budget]
        new_owner[moved] = to[moved]
        moved_for.set(moved, "rebalance_over_target")
        rebalanced[moved] = True
        room = max(0, limit - len(decisions))
        decisions.extend(plan.decision(row).to_dict() for row in moved[:room].tolist())

    # Every engine placement passes the guard (a property test holds it to that), so the
    # violators left are exactly those that kept their owner.
    left_rows = np.flatnonzero(violating & (new_owner == owner))
    moved_rows = np.flatnonzero(new_owner != owner)
    final = dataclasses.replace(cols, owner=new_owner.astype(np.int32))
    manager_s16 = np.concatenate([uuids_to_s16([m.id for m in managers]), np.zeros(1, "S16")])
    report = _report(
        book,
        changed,
        final,
        left_rows,
        left_for,
        moved_rows,
        moved_for,
        violations_found=int(violating.sum()),
        decisions=decisions,
    )
    return Redivision(
        report=report,
        customer_ids=cols.ids[moved_rows],
        manager_ids=manager_s16[new_owner[moved_rows]],
        violators=cols.ids[left_rows],
    )


def _report(
    book: Book,
    changed: Changed,
    final: engine.CustomerColumns,
    left_rows: np.ndarray,
    left_for: _Reasons,
    moved_rows: np.ndarray,
    moved_for: _Reasons,
    *,
    violations_found: int,
    decisions: list[dict[str, Any]],
) -> dict[str, Any]:
    managers = changed.managers
    live = book.managers
    load_before = np.array([m.workload for m in live], np.int64)
    load_after = _loads(managers, final, changed.tiers)
    tier_of = {t.code: t for t in changed.tiers}
    by_id = {m.id: m for m in managers}
    sample = []
    for row in left_rows[:SAMPLE].tolist():
        customer = final.customer(row)
        assert customer.manager_id is not None
        owner = by_id[customer.manager_id]
        rules = engine.placement_violations(
            customer, owner, tier_of[customer.tier], changed.rules, mode="ownership"
        )
        sample.append(
            {
                "customer_id": str(customer.id),
                "manager_id": str(owner.id),
                "rules": [v.to_dict() for v in rules],
                "reason": left_for.name(row),
            }
        )
    listed: list[dict[str, Any]] = []
    for i, m in enumerate(managers):
        before = live[i] if i < len(live) else None
        w_before = int(load_before[i]) if before else 0
        cap_before = before.capacity if before else 0
        team_before = before.team if before else None
        if (
            before is not None
            and w_before == int(load_after[i])
            and cap_before == m.capacity
            and team_before == m.team
        ):
            continue
        if len(listed) < MANAGERS_LISTED:
            listed.append(
                {
                    "manager_id": str(m.id),
                    "team_before": team_before,
                    "team_after": m.team,
                    "new": before is None,
                    "capacity_before": cap_before,
                    "capacity_after": m.capacity,
                    "workload_before": w_before,
                    "workload_after": int(load_after[i]),
                    "utilization_before": _ratio(w_before, cap_before),
                    "utilization_after": _ratio(int(load_after[i]), m.capacity),
                }
            )
    teams: dict[str | None, dict[str, int]] = defaultdict(Counter)
    for i, m in enumerate(live):
        t = teams[m.team]
        t["managers_before"] += 1
        t["capacity_before"] += m.capacity
        t["workload_before"] += int(load_before[i])
    for i, m in enumerate(managers):
        t = teams[m.team]
        t["managers_after"] += 1
        t["capacity_after"] += m.capacity
        t["workload_after"] += int(load_after[i])
    team_list = [
        {
            "team": team,
            **{
                k: t.get(k, 0)
                for k in (
                    "managers_before",
                    "managers_after",
                    "capacity_before",
                    "capacity_after",
                    "workload_before",
                    "workload_after",
                )
            },
            "utilization_before": _ratio(t.get("workload_before", 0), t.get("capacity_before", 0)),
            "utilization_after": _ratio(t.get("workload_after", 0), t.get("capacity_after", 0)),
        }
        for team, t in sorted(teams.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
    ]
    total = len(final)
    return {
        "customers_total": total,
        "customers_changed": changed.customers_changed,
        "managers_changed": changed.managers_changed,
        "managers_added": changed.managers_added,
        "violations_found": violations_found,
        "moves": len(moved_rows),
        "moves_by_reason": dict(sorted(moved_for.count(moved_rows).items())),
        "continuity": round(1 - len(moved_rows) / total, 6) if total else 1.0,
        "violations_left": len(left_rows),
        "violations_left_by_reason": dict(sorted(left_for.count(left_rows).items())),
        "violations_left_sample": sample,
        "before": _balance(live, load_before),
        "after": _balance(managers, load_after),
        "managers": listed,
        "teams": team_list,
        "decisions": decisions,
    }


def pack_moves(result: Redivision) -> bytes:
    """The moves and the violators left, as stored with a preview."""
    n, v = len(result.customer_ids), len(result.violators)
    return (
        np.array([n, v], ">u8").tobytes()
        + result.customer_ids.astype("S16").tobytes()
        + result.manager_ids.astype("S16").tobytes()
        + result.violators.astype("S16").tobytes()
    )


def unpack_moves(data: bytes) -> tuple[list[UUID], list[UUID | None], list[UUID]]:
    """(customer ids, new owners with None for the pool, violators left) of a stored preview."""
    n, v = (int(x) for x in np.frombuffer(data[:16], ">u8"))
    body = data[16:]

    def ids(start: int, count: int) -> list[bytes]:
        return [body[start + 16 * i : start + 16 * (i + 1)] for i in range(count)]

    customers = [UUID(bytes=b) for b in ids(0, n)]
    owners = [None if b == bytes(16) else UUID(bytes=b) for b in ids(16 * n, n)]
    violators = [UUID(bytes=b) for b in ids(32 * n, v)]
    return customers, owners, violators
