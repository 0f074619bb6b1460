"""The public pool: reclaim policies, the reclaim sweep and its dry run, claims.

An owned customer without follow-up for its tier's ``inactive_days`` returns to the pool,
after a ``customer.reclaim_warning`` event ``warning_days`` before. The sweep takes its clock
as an argument (the worker passes the time, tests a chosen instant). Pinned customers and
customers in an open handover are never reclaimed. A claim takes a pool customer for a
manager: the placement guard, the tier's daily claim cap and the former owner's cooldown
decide.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.assignments import guard
from app.assignments import service as assignments
from app.assignments.repository import move_customers
from app.core.pagination import (
    Page,
    cursor_value,
    keyset_page,
)
from app.db.models import ReclaimPolicy
from app.errors import BatonError, Conflict, NotFound
from app.events import outbox
from app.pool import repository
from app.pool.schemas import (
    BatchClaimOut,
    ClaimResult,
    PoolCustomer,
    ReclaimCandidate,
    ReclaimPolicyIn,
    ReclaimPolicyList,
    ReclaimPolicyOut,
    ReclaimPreview,
)
from app.rules.service import current_rules

RECLAIM_ACTOR = "scheduler"
DRAIN_BATCH = 1000
"""Pool customers one drain looks at (the next sweep takes the next ones if they move)."""


class NotInPool(Conflict):
    """Only a customer in the pool can be claimed."""

    code = "not_in_pool"


class ClaimCapReached(Conflict):
    """The manager has claimed as many customers as the tier's daily cap allows."""

    code = "claim_cap_reached"


class ClaimCooldown(Conflict):
    """The former owner claims back too soon after the customer was reclaimed from them."""

    code = "claim_cooldown"


async def put_policy(
    session: AsyncSession, *, tier: str, data: ReclaimPolicyIn
) -> ReclaimPolicyOut:
    """Create or replace the tier's pool rules."""
    if not await repository.tier_exists(session, tier):
        raise NotFound(f"Tier {tier!r} does not exist.")
    await repository.upsert_policy(session, tier, data.model_dump())
    return await get_policy(session, tier=tier)


async def get_policy(session: AsyncSession, *, tier: str) -> ReclaimPolicyOut:
    """The tier's pool rules, or NotFound."""
    row = await repository.get_policy(session, tier)
    if row is None:
        raise NotFound(f"Tier {tier!r} has no reclaim policy.")
    return ReclaimPolicyOut.model_validate(row)


async def list_policies(session: AsyncSession) -> ReclaimPolicyList:
    """Every tier's pool rules, by tier code."""
    rows = await repository.list_policies(session)
    return ReclaimPolicyList(items=[ReclaimPolicyOut.model_validate(r) for r in rows])


async def delete_policy(session: AsyncSession, *, tier: str) -> None:
    """Stop reclaiming the tier's customers."""
    row = await session.get(ReclaimPolicy, tier)
    if row is None:
        raise NotFound(f"Tier {tier!r} has no reclaim policy.")
    await session.delete(row)
    await session.flush()


async def list_waiting(
    session: AsyncSession,
    *,
    cursor: str | None,
    limit: int,
    engine_reason: str | None = None,
) -> Page[PoolCustomer]:
    """The pool by customer id, with why each customer waits: the stored reason (never
    placed, reclaimed, unassigned) and what a placement now would do (one engine call for
    the page). With ``engine_reason``, only the page's customers with that engine reason
    (``placeable`` for those a manager would take) are kept; the cursor walks on."""
    after = cursor_value(cursor, uuid.UUID)
    rows = await repository.waiting(session, after=after, limit=limit + 1)
    items, next_cursor = keyset_page(
        rows,
        limit=limit,
        item=lambda r: r,
        key=lambda r: [r.customer_id],
    )
    decisions = await assignments.outlook(session, [r.customer_id for r in items])
    out: list[PoolCustomer] = []
    for r in items:
        decision = decisions.get(r.customer_id)
        placeable = decision is not None and decision.manager_id is not None
        reasons = list(decision.reasons) if decision is not None else []
        if engine_reason is not None and not (
            engine_reason in reasons or (engine_reason == "placeable" and placeable)
        ):
            continue
        out.append(
            PoolCustomer(
                customer_id=r.customer_id,
                tier=r.tier,
                waiting_since=r.waiting_since,
                reason=r.reason,  # type: ignore[arg-type]
                placeable=placeable,
                engine_reasons=reasons,
            )
        )
    return Page[PoolCustomer](items=out, next_cursor=next_cursor)


async def preview_reclaim(session: AsyncSession, *, now: datetime, limit: int) -> ReclaimPreview:
    """The customers a sweep at ``now`` would reclaim; nothing changes."""
    rows = await repository.preview(session, now=now, limit=limit + 1)
    return ReclaimPreview(
        at=now,
        customers=[ReclaimCandidate.model_validate(r, from_attributes=True) for r in rows[:limit]],
        truncated=len(rows) > limit,
    )


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What one reclaim sweep did."""

    warned: int
    reclaimed: int
    first_touch_missed: int = 0
    first_touch_replaced: int = 0


async def sweep_reclaims(session: AsyncSession, *, now: datetime) -> SweepResult:
    """Warn the owners of customers entering their warning period, escalate first touches
    overdue under the tier's SLA (``customer.first_touch_missed``), then return every due
    customer to the pool: one statement selects and locks them, ``move_customers`` moves
    them (their ledger periods closed with end reason ``reclaimed_inactive``, and
    ``customer.unassigned`` events with that reason). The placement lock comes first, as for
    every writer of owners (then customers, then managers), so a rebalance that already holds
    it and waits for these customers cannot deadlock with the sweep."""
    await assignments.lock_placements(session)
    warned = await repository.warn_due(session, now=now)
    await outbox.emit_many(
        session,
        [
            (
                "customer.reclaim_warning",
                {
                    "customer_id": str(customer_id),
                    "manager_id": str(manager_id),
                    "reclaim_at": reclaim_at.isoformat(),
                },
                customer_id,
            )
            for customer_id, manager_id, reclaim_at in warned
        ],
        at=now,
    )
    missed = await repository.escalate_first_touch(session, now=now)
    await outbox.emit_many(
        session,
        [
            (
                "customer.first_touch_missed",
                {
                    "customer_id": str(customer_id),
                    "manager_id": str(manager_id),
                    "owner_since": owner_since.isoformat(),
                },
                customer_id,
            )
            for customer_id, manager_id, owner_since in missed
        ],
        at=now,
    )
    replaced = await _replace_first_touch(
        session, await repository.to_replace(session, [m[0] for m in missed]), now=now
    )
    due = await repository.lock_due(session, now=now)
    if due:
        await move_customers(
            session,
            customer_ids=due,
            manager_ids=[None] * len(due),
            reason="reclaimed_inactive",
            actor=RECLAIM_ACTOR,
            at=now,
            end_reason="reclaimed_inactive",
        )
    return SweepResult(
        warned=len(warned),
        reclaimed=len(due),
        first_touch_missed=len(missed),
        first_touch_replaced=replaced,
    )


async def _replace_first_touch(
    session: AsyncSession, missed: list[tuple[uuid.UUID, uuid.UUID]], *, now: datetime
) -> int:
    """Re-place customers whose owner missed the first touch, with the engine and that owner
    excluded (ledger reason ``first_touch_missed``); one whom nobody else may take stays."""
    if not missed:
        return 0
    await assignments.lock_placements(session)
    by_owner: dict[uuid.UUID, list[uuid.UUID]] = {}
    for customer_id, owner in missed:
        by_owner.setdefault(owner, []).append(customer_id)
    moved = 0
    for owner, customer_ids in sorted(by_owner.items()):
        plan = await assignments.propose(
            session, customer_ids=customer_ids, exclude_manager_ids=frozenset({owner}), lock=True
        )
        moves = [
            (d.customer_id, d.manager_id)
            for d in plan.decisions
            if d.manager_id is not None and d.manager_id != owner
        ]
        moved += await move_customers(
            session,
            customer_ids=[c for c, _ in moves],
            manager_ids=[m for _, m in moves],
            reason="first_touch_missed",
            actor=RECLAIM_ACTOR,
            at=now,
        )
    return moved


async def claim(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    manager_id: uuid.UUID,
    actor: str,
    now: datetime,
) -> None:
    """Give a pool customer to the manager claiming it (ledger reason ``claim``).

    409 ``not_in_pool`` when it has an owner, ``claim_cooldown`` when the manager lost it to a
    reclaim less than the tier's cooldown ago, ``claim_cap_reached`` past the tier's daily
    claim cap, ``rule_violation`` when the placement guard refuses (absent, intake cap…).
    """
    customer = await repository.lock_customer(session, customer_id)
    if customer is None:
        raise NotFound(f"Customer {customer_id} does not exist.")
    if customer.manager_id is not None or customer.status != "active":
        raise NotInPool(f"Customer {customer_id} is not in the pool.")
    policy = await session.get(ReclaimPolicy, customer.tier_code)
    if policy is not None and policy.cooldown_days:
        last = await repository.last_reclaim(
            session, customer_id=customer_id, manager_id=manager_id
        )
        if last is not None and last > now - timedelta(days=policy.cooldown_days):
            until = last + timedelta(days=policy.cooldown_days)
            raise ClaimCooldown(
                f"The customer was reclaimed from this manager on {last.isoformat()}; "
                f"they may claim it back from {until.isoformat()}.",
                available_at=until.isoformat(),
            )
    # the guard locks the manager row: claims of one manager count one at a time after it
    await guard.check_move(session, customer_id=customer_id, manager_id=manager_id)
    if policy is not None and policy.daily_claim_cap is not None:
        claimed = await repository.claims_since(
            session, manager_id=manager_id, since=now - timedelta(days=1)
        )
        if claimed >= policy.daily_claim_cap:
            raise ClaimCapReached(
                f"The manager claimed {claimed} customer(s) in the last 24 hours; the cap "
                f"for tier {customer.tier_code!r} is {policy.daily_claim_cap}.",
                claimed=claimed,
                cap=policy.daily_claim_cap,
            )
    await move_customers(
        session,
        customer_ids=[customer_id],
        manager_ids=[manager_id],
        reason="claim",
        actor=actor,
        at=now,
    )


async def claim_many(
    session: AsyncSession,
    *,
    customer_ids: list[uuid.UUID],
    manager_id: uuid.UUID,
    actor: str,
    now: datetime,
) -> BatchClaimOut:
    """Claim several pool customers for one manager, in the order given, each with the
    checks of ``claim`` in a savepoint of its own: a refused one is reported, the others go
    on (the daily cap counts the ones claimed before it)."""
    results: list[ClaimResult] = []
    for customer_id in dict.fromkeys(customer_ids):
        try:
            async with session.begin_nested():
                await claim(
                    session, customer_id=customer_id, manager_id=manager_id, actor=actor, now=now
                )
        except BatonError as refused:
            results.append(
                ClaimResult(
                    customer_id=customer_id,
                    claimed=False,
                    code=refused.code,
                    detail=refused.detail,
                )
            )
        else:
            results.append(ClaimResult(customer_id=customer_id, claimed=True))
    return BatchClaimOut(results=results)


async def drain_backlog(session: AsyncSession, *, now: datetime) -> int:
    """When the rule set's ``placement.drain_pool`` is on, place waiting pool customers on
    whoever can take them now (a manager back from an absence, capacity raised, an intake
    cap's window moved on): the engine plans them (``balanced``) under every hard rule, the
    moves are written with ledger reason ``auto`` by the scheduler. Reclaimed customers are
    left to claims. Returns how many moved; customers nobody can take keep waiting."""
    rules = await current_rules(session)
    if not rules.rules.placement.drain_pool:
        return 0
    waiting = await repository.waiting_ids(session, limit=DRAIN_BATCH)
    if not waiting:
        return 0
    await assignments.lock_placements(session)
    plan = await assignments.propose(session, customer_ids=waiting, lock=True)
    moves = [(d.customer_id, d.manager_id) for d in plan.decisions if d.manager_id is not None]
    return await move_customers(
        session,
        customer_ids=[c for c, _ in moves],
        manager_ids=[m for _, m in moves],
        reason="auto",
        actor=RECLAIM_ACTOR,
        at=now,
        note="backlog drained",
    )
