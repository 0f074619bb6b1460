"""Placement use cases: load facts, ask the engine, write its plan through the ledger."""

from __future__ import annotations

import dataclasses
import functools
import secrets
import statistics
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app import engine
from app.assignments import columnar, guard, loading, placement_repository, repository
from app.assignments.budget import engine_deadline, run_engine
from app.assignments.repository import move_customers
from app.assignments.schemas import (
    ApplyRequest,
    AssignOut,
    AssignRequest,
    CustomerSelection,
    DecisionOut,
    GroupWorkload,
    ManagerWorkload,
    MetricsOut,
    PlanOut,
    PlanRequest,
    RebalanceRequest,
    TierCount,
    WorkloadReport,
)
from app.audit import service as audit
from app.db.reads import Reader
from app.engine import single
from app.errors import Conflict, InvalidInput, NotFound, RuleViolation
from app.managers import hours
from app.rules.service import current_rules, parse_stored
from app.vocabulary import Strategy

# Automated placements (apply, rebalance, handover execution, assign through the whole
# engine) run one at a time: each reads workloads and writes moves that must not interleave
# with another's. A single-customer assign locks just the manager it chose (see
# ``assign_customer``).
_PLACEMENT_LOCK = 0x6261_746F_6E01


class StalePlan(Conflict):
    code = "stale_plan"
    title = "The plan is stale"


async def lock_placements(session: AsyncSession) -> None:
    """Serialise automated placements for the rest of the transaction."""
    await repository.advisory_lock(session, _PLACEMENT_LOCK)


async def _run_engine(
    customers: Sequence[engine.Customer],
    managers: Sequence[engine.Manager],
    tiers: Sequence[engine.Tier],
    rules: engine.RuleSet,
    options: engine.PlanOptions,
) -> engine.Plan:
    """The engine's plan, computed in a worker thread within the time budget."""
    deadline = engine_deadline()
    options = dataclasses.replace(options, deadline=deadline)
    compute = functools.partial(engine.plan_assignments, customers, managers, tiers, rules, options)
    return await run_engine("plan_assignments", compute, deadline=deadline)


async def propose(
    session: AsyncSession,
    *,
    customer_ids: Sequence[uuid.UUID],
    strategy: str = "balanced",
    exclude_manager_ids: frozenset[uuid.UUID] = frozenset(),
    successor_id: uuid.UUID | None = None,
    force: bool = False,
    explain: str = "basic",
    lock: bool = False,
) -> engine.Plan:
    """The engine's plan for placing these customers under the rule set in force.

    Nothing is written. With ``lock`` the customers' and managers' rows are locked first, so
    the plan stays valid until the transaction ends.
    """
    plan, _, _ = await _propose(
        session,
        customer_ids=customer_ids,
        strategy=strategy,
        exclude_manager_ids=exclude_manager_ids,
        successor_id=successor_id,
        force=force,
        explain=explain,
        lock=lock,
    )
    return plan


async def _propose(
    session: AsyncSession,
    *,
    customer_ids: Sequence[uuid.UUID],
    strategy: str,
    exclude_manager_ids: frozenset[uuid.UUID],
    successor_id: uuid.UUID | None,
    force: bool,
    explain: str,
    lock: bool,
    available_now: bool = False,
) -> tuple[engine.Plan, dict[str, str], int]:
    customers = await loading.load_customers(session, customer_ids, lock=lock)
    include = [c.manager_id for c in customers if c.manager_id is not None]
    rules = await current_rules(session)
    placement = rules.rules.placement
    managers = await loading.load_managers(
        session,
        include=include,
        lock=lock,
        rules=rules.rules,
        for_tiers={c.tier for c in customers},
    )
    tiers = await loading.load_tiers(session)
    if successor_id is not None and all(m.id != successor_id for m in managers):
        raise InvalidInput(f"Successor {successor_id} does not exist or has departed.")
    now = datetime.now(UTC)
    if available_now and placement.available_now:
        away = await hours.off_hours(session, at=now)
        managers = [dataclasses.replace(m, off_hours=True) if m.id in away else m for m in managers]
    counts: tuple[tuple[str, uuid.UUID, int], ...] = ()
    if strategy == "weighted_round_robin":
        start = rotation_period_start(now, placement.rotation_period)
        counts = await repository.rotation_counts(session, period_start=start)
    options = engine.PlanOptions(
        strategy=Strategy(strategy),
        now=now,
        exclude_manager_ids=frozenset(exclude_manager_ids),
        successor_id=successor_id,
        force=force,
        explain=explain,  # type: ignore[arg-type]
        rotation=await repository.rotation(session) if strategy == "round_robin" else (),
        rotation_counts=counts,
    )
    plan = await _run_engine(customers, managers, tiers, rules.rules, options)
    digests = input_digests(customers, managers, tiers, rules.version, options)
    return plan, digests, rules.version


async def outlook(
    session: AsyncSession, customer_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, engine.Decision]:
    """What a placement now would do with each of these customers: one engine call for all
    of them, the facts the single-customer ``assign`` reads (``balanced``, every hard rule,
    working hours when the rule set asks for available managers). Nothing is written or
    locked. The customers are placed together in order, so an earlier one can take the last
    room a later one would have had."""
    if not customer_ids:
        return {}
    plan, _, _ = await _propose(
        session,
        customer_ids=customer_ids,
        strategy=Strategy.BALANCED,
        exclude_manager_ids=frozenset(),
        successor_id=None,
        force=False,
        explain="none",
        lock=False,
        available_now=True,
    )
    return {d.customer_id: d for d in plan.decisions}


def rotation_period_start(now: datetime, period: str) -> datetime:
    """The start of the rotation period ``now`` falls in (UTC day, ISO week, month; ``none``:
    one period since the epoch)."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    match period:
        case "day":
            return day
        case "week":
            return day - timedelta(days=day.weekday())
        case "month":
            return day.replace(day=1)
    return datetime(1970, 1, 1, tzinfo=UTC)


def input_digests(
    customers: Sequence[engine.Customer],
    managers: Sequence[engine.Manager],
    tiers: Sequence[engine.Tier],
    rules_version: int,
    options: engine.PlanOptions,
) -> dict[str, str]:
    """Digests of every input a plan's decisions read, by part, so a stale plan says what
    changed. Each part is derived from whole frozen dataclasses (``engine.digest``): every
    field counts, including ones added later (only the clock, the explanation level and the
    time budget are left out)."""
    neutral = dataclasses.replace(
        options, now=datetime.min.replace(tzinfo=UTC), explain="none", deadline=None
    )
    return {
        "customers": engine.digest(tuple(customers)),
        "managers": engine.digest(tuple(dataclasses.replace(m, workload=0) for m in managers)),
        "workloads": engine.digest(tuple((m.id, m.workload) for m in managers)),
        "tiers": engine.digest(tuple(tiers)),
        "rules": str(rules_version),
        "options": engine.digest(neutral),
    }


def _violations(decision: engine.Decision) -> list[dict[str, str]]:
    explanation = decision.explanation or {}
    failed = [r for r in explanation.get("rules", []) if not r.get("passed", True)]
    if failed:
        return [{"rule": r["id"], "message": str(r.get("detail", r["id"]))} for r in failed]
    return [{"rule": reason, "message": reason.replace("_", " ")} for reason in decision.reasons]


async def select_customers(session: AsyncSession, selection: CustomerSelection) -> list[uuid.UUID]:
    """Resolve a selection to active customer ids: explicit ids, a filter, or the pool; in
    ``repair`` mode, the customers with an open violation (narrowed by the filters)."""
    if getattr(selection, "mode", "place") == "repair":
        return await repository.violating_customers(
            session,
            customer_ids=selection.customer_ids,
            tier=selection.tier,
            region=selection.region,
            manager_id=selection.manager_id,
        )
    if selection.customer_ids is not None:
        ids = list(dict.fromkeys(selection.customer_ids))
        found = await repository.active_among(session, ids)
        missing = [str(i) for i in ids if i not in found]
        if missing:
            raise InvalidInput(
                f"{len(missing)} customer(s) do not exist or are not active: "
                + ", ".join(missing[:5]),
                missing=missing[:100],
            )
        return ids
    filtered = any(v is not None for v in (selection.tier, selection.region, selection.manager_id))
    unassigned = selection.unassigned
    if unassigned is None and not filtered:
        unassigned = True  # no filter at all: the pool
    return await repository.active_customer_ids(
        session,
        tier=selection.tier,
        region=selection.region,
        manager_id=selection.manager_id,
        unassigned=unassigned,
    )


def _plan_out(
    plan: engine.Plan, *, token: str, rules_version: int, limit: int, applied: bool, moved: int
) -> PlanOut:
    data: dict[str, Any] = plan.to_dict(limit=limit)
    return PlanOut.model_validate(
        {
            **data,
            "customers_total": len(plan),
            "plan_token": token,
            "rules_version": rules_version,
            "applied": applied,
            "moved": moved,
        }
    )


async def plan_placement(session: AsyncSession, *, request: PlanRequest, actor: str) -> PlanOut:
    """A dry run: what the engine would do with the selected customers. The plan's request
    and input digests are kept under its token, so the reviewed plan can be applied as is."""
    ids = await select_customers(session, request)
    plan, digests, version = await _propose(
        session,
        customer_ids=ids,
        strategy=request.strategy,
        exclude_manager_ids=frozenset(request.exclude_manager_ids),
        successor_id=request.successor_id,
        force=request.force,
        explain=request.explain,
        lock=False,
    )
    token = "pl_" + secrets.token_urlsafe(18)
    await repository.save_plan(
        session,
        token=token,
        request=PlanRequest.model_validate(request.model_dump()).model_dump(mode="json"),
        digests=digests,
        rules_version=version,
        actor=actor,
    )
    return _plan_out(
        plan,
        token=token,
        rules_version=version,
        limit=request.decisions_limit,
        applied=False,
        moved=0,
    )


_REVIEWED_FIELDS = frozenset(PlanRequest.model_fields) - {"explain", "decisions_limit"}


def _reviewed_request(stored: repository.StoredPlan | None, request: ApplyRequest) -> PlanRequest:
    """The request of the reviewed plan behind ``request.plan_token``: the token carries the
    selection and options; a field the client repeats must agree with it."""
    if stored is None:
        raise InvalidInput(
            "Unknown plan token (plans are kept 7 days and applied once); plan again.",
            errors=[{"loc": ["body", "plan_token"], "msg": "unknown plan token"}],
        )
    reviewed = PlanRequest.model_validate(stored.request)
    repeated = request.model_fields_set & _REVIEWED_FIELDS
    differ = sorted(f for f in repeated if getattr(request, f) != getattr(reviewed, f))
    if differ:
        raise InvalidInput(
            "The plan token applies the reviewed plan's own selection and options; these "
            "fields differ from it: " + ", ".join(differ) + ". Leave them out, or plan again.",
            errors=[{"loc": ["body", f], "msg": "differs from the reviewed plan"} for f in differ],
        )
    return reviewed.model_copy(
        update={"explain": request.explain, "decisions_limit": request.decisions_limit}
    )


async def apply_plan(session: AsyncSession, *, request: ApplyRequest, actor: str) -> PlanOut:
    """Write a reviewed plan's moves in this transaction (ledger reason ``auto``, or
    ``repair`` for a repair plan).

    Placements are serialised and the rows involved locked before the facts are read, so
    what is written is exactly the plan recomputed from the same inputs; if any input the
    reviewed plan read changed since, 409 ``stale_plan`` names the parts that changed (and
    carries no new token: the client plans and reviews again). Without a token the client
    must say ``review: skip``, which the audit trail records.
    """
    stored_digests: dict[str, str] | None = None
    if request.plan_token is not None:
        stored = await repository.get_plan(session, request.plan_token)
        plan_request = _reviewed_request(stored, request)
        stored_digests = dict(stored.digests) if stored is not None else None
    elif request.review == "skip":
        plan_request = PlanRequest.model_validate(
            request.model_dump(exclude={"plan_token", "review", "note"})
        )
        audit.details(session)["review"] = "skipped"
    else:
        raise InvalidInput(
            "Apply a reviewed plan: send the plan_token of a dry run (POST "
            "/v1/assignments/plan), or review: skip to apply a fresh plan nobody reviewed.",
            errors=[{"loc": ["body", "plan_token"], "msg": "required unless review is skip"}],
        )
    await lock_placements(session)
    ids = await select_customers(session, plan_request)
    plan, digests, version = await _propose(
        session,
        customer_ids=ids,
        strategy=plan_request.strategy,
        exclude_manager_ids=frozenset(plan_request.exclude_manager_ids),
        successor_id=plan_request.successor_id,
        force=plan_request.force,
        explain=plan_request.explain,
        lock=True,
    )
    if stored_digests is not None:
        changed = sorted(k for k, v in digests.items() if stored_digests.get(k) != v)
        if changed:
            raise StalePlan(
                "The plan's inputs changed since it was computed ("
                + ", ".join(changed)
                + "); plan again and review it.",
                changed=changed,
            )
        await repository.delete_plan(session, request.plan_token or "")
    reason = "repair" if plan_request.mode == "repair" else "auto"
    moved = await _write_moves(session, plan, reason=reason, actor=actor, note=request.note)
    return _plan_out(
        plan,
        token=request.plan_token or "",
        rules_version=version,
        limit=plan_request.decisions_limit,
        applied=True,
        moved=moved,
    )


async def _write_moves(
    session: AsyncSession, plan: engine.Plan, *, reason: str, actor: str, note: str | None = None
) -> int:
    customer_ids, manager_ids = plan.moves().as_uuids()
    await repository.save_rotation(session, plan.rotation)
    if plan.rotation_counts:
        # Only the rotation's own placements are counted: manual moves, forced moves and
        # handovers never reach here with counts.
        period = (await current_rules(session)).rules.placement.rotation_period
        await repository.save_rotation_counts(
            session,
            plan.rotation_counts,
            period_start=rotation_period_start(datetime.now(UTC), period),
        )
    return await move_customers(
        session,
        customer_ids=customer_ids,
        manager_ids=manager_ids,
        reason=reason,
        actor=actor,
        at=datetime.now(UTC),
        note=note,
    )


def _decision_out(decision: engine.Decision) -> DecisionOut:
    """The decision as the API shows it, built without validating again what the engine
    made (``Decision.to_dict`` leaves ``forced`` out: it is listed empty, as in plans)."""
    return DecisionOut.model_construct(
        customer_id=decision.customer_id,
        from_manager_id=decision.from_manager_id,
        manager_id=decision.manager_id,
        score=decision.score,
        reasons=list(decision.reasons),
        explanation=decision.explanation,
        forced=[],
    )


async def assign_customer(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    request: AssignRequest,
    actor: str,
    reads: Reader | None = None,
) -> AssignOut:
    """Place one customer now with the engine (or check a named manager against every rule).

    ``balanced`` and a named manager take the single-customer placement over the candidate
    managers only (``engine.single``, the engine's decision computed for one customer); a
    customer it leaves in the pool, a pinned one, other strategies and ``full`` explanations
    go through the whole engine over every manager. A real single-customer placement locks
    the customer, then only the manager it gives the customer to (through the placement
    guard, which checks capacity and every hard rule on that manager's facts read after the
    lock), and writes the move in one statement; when that manager's row changed since the
    candidates were read, every candidate is read again under that lock and the choice made
    again; it stands if it falls on that manager again, otherwise the placement gives the lock
    back and goes on from those rows (after a few such tries, the whole engine places the
    customer with every active manager locked).
    It takes the placement lock in shared mode, so placements of different customers run
    side by side (every write to an owner goes through the owner's row lock, which is all
    they contend for) while the automated placements that read workloads without those
    locks still exclude them. Other strategies (rotations keep counters) and ``full``
    explanations take the placement lock alone, as those placements do.

    A dry run changes nothing; with ``reads`` (the service's read pool) the single-customer
    placement's two statements run there, outside the request's transaction.
    """
    strategy = "successor" if request.manager_id is not None else request.strategy
    if not request.dry_run and (strategy not in _SINGLE_STRATEGIES or request.explain == "full"):
        await placement_repository.lock_placements(session, _PLACEMENT_LOCK)
    if not request.dry_run or reads is None:
        reads = await placement_repository.in_transaction(session)
    placed = await _place_one(
        session, reads, customer_id=customer_id, request=request, strategy=strategy
    )
    if placed is not None:
        decision, version = placed
    else:
        plan, _, version = await _propose(
            session,
            customer_ids=[customer_id],
            strategy=strategy,
            exclude_manager_ids=frozenset(),
            successor_id=request.manager_id,
            force=request.force,
            explain=request.explain,
            lock=not request.dry_run,
            available_now=True,
        )
        decision = plan.decision(0)
    if request.manager_id is not None and decision.manager_id != request.manager_id:
        if not request.force:
            # The placement guard names the rules, as for a manual move of the same pair.
            await guard.check_move(session, customer_id=customer_id, manager_id=request.manager_id)
        violations = _violations(decision)
        raise RuleViolation(
            "The manager cannot take this customer: " + "; ".join(v["message"] for v in violations),
            violations=violations,
        )
    applied = False
    if not request.dry_run:
        if placed is None:
            applied = await _write_moves(session, plan, reason="auto", actor=actor) > 0
        elif decision.manager_id != decision.from_manager_id:
            # The customer's row is locked (``_place_one``); the request's audit event is
            # written with the move, in its statement.
            moved, audit_id = await repository.move_one_customer(
                session,
                customer_id=customer_id,
                manager_id=decision.manager_id,
                reason="auto",
                actor=actor,
                at=datetime.now(UTC),
                audit_event=audit.take_expected(session),
            )
            if audit_id is not None:
                audit.written_with(session, audit_id)
            applied = moved is not None
    return AssignOut.model_construct(
        decision=_decision_out(decision), applied=applied, rules_version=version
    )


_SINGLE_STRATEGIES = frozenset({Strategy.BALANCED, Strategy.SUCCESSOR})
_INLINE_CANDIDATES = 1_000
"""Up to this many candidates the single-customer placement (well under a millisecond per
hundred) runs on the event loop; beyond, in a worker thread like the engine."""
_ATTEMPTS = 3
"""Times a real single-customer placement starts over (its choice, made again on every
candidate read under the lock of the manager it chose, fell on another manager) before the
whole engine decides."""


async def _place_one(
    session: AsyncSession,
    reads: Reader,
    *,
    customer_id: uuid.UUID,
    request: AssignRequest,
    strategy: str,
) -> tuple[engine.Decision, int] | None:
    """The single-customer placement over the candidate managers: two statements (when it
    writes, a row lock on the customer before them; after, the placement guard on the chosen
    manager, which locks it and reads its row, compared with the row the choice was made from;
    if it changed, every candidate read again under the lock and the choice made again). None
    when the whole engine must decide (see ``assign_customer``), or when the choice moved off
    the manager it had locked ``_ATTEMPTS`` times in a row; raises for a missing or inactive
    customer."""
    lock = not request.dry_run
    single_placement = strategy in _SINGLE_STRATEGIES and request.explain != "full"
    if lock:
        # Single placements run side by side (the shared placement lock): each locks only
        # its customer and the manager it chooses. Writers that read managers' workloads
        # without their row locks (handover refusals and re-placements, the pool's sweeps)
        # take the placement lock alone, so they never overlap one.
        await placement_repository.lock_customer(
            session, customer_id, share_placements=_PLACEMENT_LOCK if single_placement else None
        )
    facts = await placement_repository.customer_facts(reads, customer_id)
    if facts is None:
        raise NotFound(f"Customer {customer_id} does not exist.")
    if facts.status != "active":
        raise Conflict(
            f"Customer {customer_id} is {facts.status}; only active customers are placed."
        )
    customer = facts.customer
    if not single_placement or customer.pinned or (lock and request.force):
        # A forced placement may break hard rules: the guard on one manager would refuse it.
        return None
    rules = parse_stored(facts.rules_json)
    placement = rules.placement
    tier = facts.tier
    fallback = placement.fallback_for(customer.tier)
    include = [m for m in (customer.manager_id, request.manager_id, fallback) if m is not None]
    now = datetime.now(UTC)
    read = functools.partial(
        _candidate_rows,
        reads,
        min_level=tier.min_manager_level,
        weight=tier.weight,
        reasons=loading.intake_reasons(rules),
        capped_tier=tier.code if tier.code in placement.tier_caps else None,
        hours=placement.available_now,
        owner=customer.manager_id,
        former=[f.manager_id for f in customer.former_owners],
        successor=request.manager_id,
        fallback=fallback,
        now=now,
    )
    options = engine.PlanOptions(
        strategy=Strategy(strategy),
        now=now,
        successor_id=request.manager_id,
        force=request.force,
        explain=request.explain,
    )
    only_include = request.manager_id is not None
    fresh: tuple[list[single.Row], dict[int, int]] | None = None
    for _ in range(_ATTEMPTS):
        rows, marks = fresh or await read(include=include, only_include=only_include)
        fresh = None
        if request.manager_id is not None:
            named = next((i for i, bits in marks.items() if bits & single.SUCCESSOR), None)
            if named is None or (
                rows[named][_STATUS] == "departed" and not marks[named] & single.CURRENT
            ):
                raise InvalidInput(
                    f"Successor {request.manager_id} does not exist or has departed."
                )
        decision = await _decide(customer, tier, rules, options, rows, marks)
        if decision is None or (decision.manager_id is None and strategy != Strategy.SUCCESSOR):
            # Left in the pool: its explanation counts over every manager, and the candidates
            # are not all of them.
            return None
        chosen = decision.manager_id
        if not lock or chosen is None or chosen == customer.manager_id:
            return decision, facts.rules_version
        # Only the manager who takes the customer is locked, by the placement guard (every
        # hard rule on facts read after the lock): a change to any other manager committed
        # after the read is ordered after this placement; this one's must not have happened.
        # The guard's facts are that manager's row as it stands under the lock; with working
        # hours in the rules (which the guard does not read) the row is read again instead.
        chosen_row = next(row for row in rows if row[0] == chosen)
        unchanged: bool | None
        try:
            _, under_lock = await guard.check_move_reading(
                session, customer_id=customer_id, manager_id=chosen
            )
            if placement.available_now:
                again, _ = await read(include=[chosen], only_include=True)
                unchanged = again == [chosen_row]
            else:
                unchanged = single.as_row(under_lock) == chosen_row
        except Conflict:  # a hard rule the manager breaks now, or departed
            unchanged = None
        if unchanged:
            return decision, facts.rules_version
        if unchanged is not None:
            # It did change (placements side by side tend to choose the same lightest
            # manager, and wait for each other on its lock): every candidate is read again,
            # that manager's row as it stands under the lock, and the choice made again, as a
            # first try would make it now. If it falls on that manager, the placement stands;
            # otherwise the lock is given back (holding it while locking another manager could
            # deadlock) and the next try starts from these rows.
            fresh = await read(include=include, only_include=only_include)
            again_decision = await _decide(customer, tier, rules, options, *fresh)
            if again_decision is not None and again_decision.manager_id == chosen:
                return again_decision, facts.rules_version
        await placement_repository.undo_lock(session)
    # Still contended: the whole engine decides, with every lock taken in order.
    return None


async def _decide(
    customer: engine.Customer,
    tier: engine.Tier,
    rules: engine.RuleSet,
    options: engine.PlanOptions,
    rows: list[single.Row],
    marks: dict[int, int],
) -> engine.Decision | None:
    """``single.place_among`` on the event loop, or for thousands of candidates in a worker
    thread within the engine's budget; an engine error is the caller's invalid input."""
    compute = functools.partial(single.place_among, customer, tier, rules, options, rows, marks)
    if len(rows) > _INLINE_CANDIDATES:
        return await run_engine("place_customer", compute, deadline=engine_deadline())
    try:
        return compute()
    except engine.EngineError as exc:
        raise InvalidInput(str(exc)) from exc


_STATUS = single.ROW_FIELDS.index("status")
_OFF_HOURS = single.ROW_FIELDS.index("off_hours")


async def _candidate_rows(
    reads: Reader, *, now: datetime, **read: Any
) -> tuple[list[single.Row], dict[int, int]]:
    """The candidate rows and their marks (``placement_repository.candidates``), with the
    managers outside their working hours at ``now`` marked so."""
    found = await placement_repository.candidates(reads, **read)
    rows = found.rows
    for i, windows, zone in found.hours:
        if not hours.at_work(windows, zone, now):
            rows[i] = (*rows[i][:_OFF_HOURS], True, *rows[i][_OFF_HOURS + 1 :])
    return rows, found.marks


async def rebalance(session: AsyncSession, *, request: RebalanceRequest, actor: str) -> PlanOut:
    """Even out workloads, moving as few customers as needed (stability-guarded).

    Customers are read with one binary COPY into the engine's columns, so a rebalance of a
    whole book (a million customers) stays within seconds and a bounded memory.
    """
    locked = None
    if not request.dry_run:
        await lock_placements(session)
        # The customers first, then their managers: the order every writer locks in (see
        # app.assignments.loading), so a manual assignment waits instead of deadlocking.
        locked = await loading.lock_portfolios(session, team=request.team, region=request.region)
    managers = await loading.load_managers(session, workloads=False)
    managers = [
        m
        for m in managers
        if m.status == "active"
        and (request.team is None or m.team == request.team)
        and (request.region is None or m.region == request.region)
        and (locked is None or m.id in locked)
    ]
    tiers = await loading.load_tiers(session)
    customers = await columnar.load_owned_customer_columns(session, tiers=tiers, managers=managers)
    rules = await current_rules(session)
    deadline = engine_deadline()
    options = engine.RebalanceOptions(
        now=datetime.now(UTC),
        target_utilization=request.target_utilization,
        max_spread=request.max_spread,
        min_days_since_move=request.min_days_since_move,
        explain=request.explain,
        deadline=deadline,
    )

    def compute() -> tuple[engine.Plan, str]:
        # Everything proportional to the book runs here, off the event loop: workloads from
        # the columns, the plan, its moves (100k moves are 200k UUID objects), the token.
        loaded = columnar.with_workloads(managers, customers, tiers)
        plan = engine.rebalance(customers, loaded, tiers, rules.rules, options)
        plan.moves().as_uuids()
        neutral = dataclasses.replace(
            options, now=datetime.min.replace(tzinfo=UTC), explain="none", deadline=None
        )
        token = engine.digest(customers, loaded, tiers, rules.version, neutral, size=32)
        return plan, token

    plan, token = await run_engine("rebalance", compute, deadline=deadline)
    moved = 0
    if not request.dry_run:
        moved = await _write_moves(session, plan, reason="rebalance", actor=actor)
    return _plan_out(
        plan,
        token=token,
        rules_version=rules.version,
        limit=request.decisions_limit,
        applied=not request.dry_run,
        moved=moved,
    )


def _ratio(workload: int, capacity: int) -> float | None:
    return round(workload / capacity, 4) if capacity else None


async def workload_report(
    session: AsyncSession,
    *,
    team: str | None = None,
    region: str | None = None,
    level: int | None = None,
    status: str | None = None,
) -> WorkloadReport:
    """Per manager workload by tier; totals per team and region; balance over active managers.
    The filters select the managers (and so the totals and metrics); the pool is company-wide."""
    per_manager: dict[uuid.UUID, ManagerWorkload] = {}
    filters = {"team": team, "region": region, "level": level, "status": status}
    for r in await repository.workload_rows(session, filters):
        m = per_manager.get(r["id"])
        if m is None:
            m = per_manager[r["id"]] = ManagerWorkload(
                manager_id=r["id"],
                name=r["name"],
                team=r["team"],
                region=r["region"],
                status=r["status"],
                level=r["level"],
                capacity=r["capacity"],
                workload=0,
                utilization=None,
                customer_count=0,
                by_tier=[],
            )
        if r["tier_code"] is not None:
            m.by_tier.append(
                TierCount(tier=r["tier_code"], customers=r["customers"], workload=r["workload"])
            )
            m.workload += int(r["workload"])
            m.customer_count += int(r["customers"])
    managers = list(per_manager.values())
    for m in managers:
        m.utilization = _ratio(m.workload, m.capacity)

    def group(key: str) -> list[GroupWorkload]:
        groups: dict[str | None, list[ManagerWorkload]] = defaultdict(list)
        for m in managers:
            groups[getattr(m, key)].append(m)
        return [
            GroupWorkload(
                key=k,
                managers=len(ms),
                capacity=sum(m.capacity for m in ms),
                workload=sum(m.workload for m in ms),
                utilization=_ratio(sum(m.workload for m in ms), sum(m.capacity for m in ms)),
                customer_count=sum(m.customer_count for m in ms),
            )
            for k, ms in sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
        ]

    active = [m.utilization for m in managers if m.status == "active" and m.utilization is not None]
    metrics = MetricsOut(
        peak_utilization=max(active) if active else None,
        utilization_spread=round(max(active) - min(active), 4) if active else None,
        utilization_stddev=round(statistics.pstdev(active), 4) if active else None,
        moved=0,
        pooled=await repository.pool_size(session),
    )
    return WorkloadReport(
        managers=managers,
        teams=group("team"),
        regions=group("region"),
        pool=metrics.pooled,
        metrics=metrics,
    )
