"""Violations: current owners that a change made non-compliant, recorded and listed.

A change that can make an owner ineligible (a customer's tier or attributes, a tier's minimum
level, a manager's level, status or skills, a new rule set, an import) calls ``record`` with
its scope in its own transaction. The owners in scope are checked with the engine's placement
guard in ``ownership`` mode; new violations are written (one open row per customer) and
announced as ``violation.detected`` events, violations that no longer hold are resolved. A
customer that changes owner has its violation resolved by the ledger itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app import engine
from app.assignments import loading
from app.assignments import repository as ledger
from app.assignments.schemas import ViolationBrief, ViolationOut, ViolationRule
from app.core.pagination import Page, cursor_value, keyset_page
from app.events import outbox
from app.rules.service import current_rules


@dataclass(frozen=True, slots=True)
class Scope:
    """Which owners to check: customers, the portfolios of managers, tiers, or everything."""

    customer_ids: tuple[uuid.UUID, ...] = ()
    manager_ids: tuple[uuid.UUID, ...] = ()
    tier_codes: tuple[str, ...] = ()
    everything: bool = False

    @classmethod
    def customers(cls, ids: Iterable[uuid.UUID]) -> Scope:
        return cls(customer_ids=tuple(ids))

    @classmethod
    def managers(cls, ids: Iterable[uuid.UUID]) -> Scope:
        return cls(manager_ids=tuple(ids))

    @classmethod
    def tiers(cls, codes: Iterable[str]) -> Scope:
        return cls(tier_codes=tuple(codes))

    @classmethod
    def all(cls) -> Scope:
        return cls(everything=True)


@dataclass(frozen=True, slots=True)
class Found:
    """A customer whose owner breaks hard rules."""

    customer_id: uuid.UUID
    manager_id: uuid.UUID
    rules: tuple[engine.Violation, ...]


# How long a change of the rules waits for the moves under way (a long import holds them).
HOLD_WAIT = "5s"


async def hold_moves(session: AsyncSession) -> None:
    """Before a change of what the hard rules decide: moves under way finish first and
    later ones wait for this transaction, so ``record`` then sees every owner decided under
    the old rules, and no move decides under them after the change is in force. A move that
    holds on past ``HOLD_WAIT`` makes the change fail (503, retry) rather than stall every
    writer behind it."""
    await ledger.hold_owner_changes(session, wait=HOLD_WAIT)


_LOAD_FACTS = frozenset({"manager.workload", "manager.utilization"})


async def find(session: AsyncSession, scope: Scope) -> tuple[list[uuid.UUID], list[Found]]:
    """The customers in scope (owned, active, or with an open violation) and those of them
    whose owner breaks a hard rule now. Nothing is written."""
    ids = await ledger.compliance_scope(
        session,
        customer_ids=list(scope.customer_ids),
        manager_ids=list(scope.manager_ids),
        tier_codes=list(scope.tier_codes),
        everything=scope.everything,
    )
    if not ids:
        return [], []
    owned = [c for c in await loading.load_customers(session, ids) if c.manager_id]
    return ids, await _broken(session, [(c, c.manager_id) for c in owned if c.manager_id])


async def owners_forbidden(
    session: AsyncSession,
    customer_ids: Sequence[uuid.UUID],
    manager_ids: Sequence[uuid.UUID],
) -> set[uuid.UUID]:
    """Of these (customer, new owner) pairs, the customers whose new owner a hard rule would
    not let own them now (``ownership`` mode, as ``find`` checks owners): for moves decided
    earlier and written now, when a rule, a tier or the manager may have changed since."""
    if not customer_ids:
        return set()
    customers = {c.id: c for c in await loading.load_customers(session, customer_ids)}
    pairs = [
        (customers[c], m) for c, m in zip(customer_ids, manager_ids, strict=True) if c in customers
    ]
    return {f.customer_id for f in await _broken(session, pairs)}


async def _broken(
    session: AsyncSession, pairs: Sequence[tuple[engine.Customer, uuid.UUID]]
) -> list[Found]:
    """Of these (customer, owner) pairs, those where the owner breaks a hard rule of the rule
    set in force by owning the customer (``ownership`` mode); an owner that does not exist
    (or has departed and is not named) is left out."""
    if not pairs:
        return []
    rules = (await current_rules(session)).rules
    # Workloads are summed only for rules that read them, as the guard and a scenario's
    # preview read them (0 for every owner would let such a rule hold for all).
    workloads = any(rule.reads() & _LOAD_FACTS for rule in rules.eligibility)
    owners = sorted({m for _, m in pairs})
    managers = {
        m.id: m for m in await loading.load_managers(session, include=owners, workloads=workloads)
    }
    tiers = {t.code: t for t in await loading.load_tiers(session)}
    found: list[Found] = []
    for customer, manager_id in pairs:
        manager = managers.get(manager_id)
        if manager is None:
            continue
        tier = tiers[customer.tier]
        broken = engine.placement_violations(customer, manager, tier, rules, mode="ownership")
        if broken:
            found.append(Found(customer.id, manager_id, tuple(broken)))
    return found


async def record_if_read(
    session: AsyncSession,
    scope: Scope,
    *,
    facts: frozenset[str],
    cause: str,
    actor: str | None,
) -> list[Found]:
    """``record`` after a change of only ``facts`` (e.g. ``customer.satisfaction``), when a
    hard rule in force reads one of them; a change no rule reads breaks none."""
    rules = (await current_rules(session)).rules
    if not any(rule.reads() & facts for rule in rules.eligibility):
        return []
    return await record(session, scope, cause=cause, actor=actor)


async def record(
    session: AsyncSession, scope: Scope, *, cause: str, actor: str | None
) -> list[Found]:
    """Check the owners in scope; write new violations, resolve the ones that no longer hold.

    Returns the violations this change introduced (new, or with other rules than before),
    which the change reports to its caller.
    """
    ids, found = await find(session, scope)
    if not ids:
        return []
    now = datetime.now(UTC)
    new_ids = await ledger.record_violations(
        session,
        scope_ids=ids,
        customer_ids=[f.customer_id for f in found],
        manager_ids=[f.manager_id for f in found],
        rules=[[v.to_dict() for v in f.rules] for f in found],
        cause=cause,
        actor=actor,
        at=now,
    )
    introduced = [f for f in found if f.customer_id in new_ids]
    if introduced:
        await outbox.emit_many(
            session,
            [
                (
                    "violation.detected",
                    {
                        "customer_id": f.customer_id,
                        "manager_id": f.manager_id,
                        "rules": [v.to_dict() for v in f.rules],
                        "cause": cause,
                        "actor": actor,
                    },
                    f.customer_id,
                )
                for f in introduced
            ],
            at=now,
        )
    return introduced


def summary(found: Sequence[Found], *, limit: int = 100) -> list[ViolationBrief]:
    """The first ``limit`` violations as a write response lists them."""
    return [
        ViolationBrief(
            customer_id=f.customer_id,
            manager_id=f.manager_id,
            rules=[ViolationRule(rule=v.rule, message=v.message) for v in f.rules],
        )
        for f in found[:limit]
    ]


async def list_violations(
    session: AsyncSession,
    *,
    cursor: str | None,
    limit: int,
    state: str = "open",
    manager_id: uuid.UUID | None = None,
    customer_id: uuid.UUID | None = None,
    rule: str | None = None,
    tier: str | None = None,
    team: str | None = None,
) -> Page[ViolationOut]:
    """Recorded violations, oldest first, filtered."""
    after = cursor_value(cursor, int)
    rows = await ledger.list_violations(
        session,
        state=state,
        manager_id=manager_id,
        customer_id=customer_id,
        rule=rule,
        tier=tier,
        team=team,
        after=after,
        limit=limit + 1,
    )
    items, next_cursor = keyset_page(
        rows,
        limit=limit,
        item=lambda r: ViolationOut.model_validate(r, from_attributes=True),
        key=lambda r: [r.id],
    )
    return Page[ViolationOut](items=items, next_cursor=next_cursor)
