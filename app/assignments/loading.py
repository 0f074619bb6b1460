"""Read the database into the engine's frozen facts, and take the row locks writers need.

**Lock order.** Every transaction that changes owners takes its locks in one order, so two
writers wait for each other instead of deadlocking:

1. the placement advisory lock (``assignments.service.lock_placements``: apply, assign,
   rebalance, handover execution), when it is an automated placement;
2. customers, in id order;
3. managers, in id order.

A manual assignment locks its customer, then the new manager; apply and assign lock the
selected customers, then every active manager (``load_customers`` then ``load_managers`` with
``lock``); a rebalance locks the portfolios it may move, then their managers
(``lock_portfolios``). A deadlock or serialization failure that still happens (a customer
joining a portfolio between the two steps, a path outside this order) is retried with the
whole request (``app.api.retries``).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import RowMapping, text
from sqlalchemy.ext.asyncio import AsyncSession

from app import engine
from app.vocabulary import INTAKE_REASONS, sql_list

# Whether the manager is on an absence at the transaction's clock (``now()``): the engine and
# the guard read it as a plain fact.
_ABSENT = """EXISTS (SELECT 1 FROM manager_absences AS a
                     WHERE a.manager_id = m.id AND a.cancelled_at IS NULL
                       AND a.starts_at <= now() AND a.ends_at > now()) AS absent"""

# New customers the manager may still receive under their intake caps, counted from the
# ledger over the last 24 hours and 7 days (NULL: no cap).
_INTAKE_REASONS = sql_list(INTAKE_REASONS)
_INTAKE_ROOM = f"""CASE WHEN m.max_new_per_day IS NULL AND m.max_new_per_week IS NULL THEN NULL
        ELSE (SELECT LEAST(m.max_new_per_day - count(*) FILTER (
                               WHERE a.started_at > now() - interval '1 day'),
                           m.max_new_per_week - count(*))
                FROM assignments AS a
               WHERE a.manager_id = m.id AND a.started_at > now() - interval '7 days'
                 AND a.reason IN ({_INTAKE_REASONS}))
        END AS intake_room"""

_TIERS = text("SELECT code, rank, weight, min_manager_level FROM tiers ORDER BY rank, code")

_MANAGERS = text(
    f"""
    SELECT m.id, m.level, m.capacity, COALESCE(w.workload, 0) AS workload, m.status,
           m.accepting_new, m.region, m.languages, m.industries, m.team, {_ABSENT},
           {_INTAKE_ROOM}
      FROM managers AS m
      LEFT JOIN (
            SELECT l.manager_id, SUM(l.customers * t.weight) AS workload
              FROM manager_loads AS l JOIN tiers AS t ON t.code = l.tier_code
             GROUP BY l.manager_id) AS w ON w.manager_id = m.id
     WHERE m.status <> 'departed' OR m.id = ANY(CAST(:include AS uuid[]))
     ORDER BY m.id
    """
)

_MANAGERS_ONLY = text(
    f"""
    SELECT m.id, m.level, m.capacity, 0 AS workload, m.status, m.accepting_new, m.region,
           m.languages, m.industries, m.team, {_ABSENT},
           {_INTAKE_ROOM}
      FROM managers AS m
     WHERE m.status <> 'departed' OR m.id = ANY(CAST(:include AS uuid[]))
     ORDER BY m.id
    """
)

_ONE_MANAGER = text(
    f"""
    SELECT m.id, m.level, m.capacity,
           COALESCE((SELECT SUM(l.customers * t.weight)
                       FROM manager_loads AS l JOIN tiers AS t ON t.code = l.tier_code
                      WHERE l.manager_id = m.id), 0) AS workload,
           m.status, m.accepting_new, m.region, m.languages, m.industries, m.team, {_ABSENT},
           {_INTAKE_ROOM}
      FROM managers AS m
     WHERE m.id = :id
    """
)
_LOCK_ONE_MANAGER = text("SELECT id FROM managers WHERE id = :id FOR UPDATE")

_LOCK_MANAGERS = text("SELECT id FROM managers WHERE status = 'active' ORDER BY id FOR UPDATE")

# Locks return a count, not the rows: a million locked ids decoded by the driver would hold
# the event loop for seconds.
_ACTIVE_IN = """m.status = 'active'
       AND (CAST(:team AS text) IS NULL OR m.team = :team)
       AND (CAST(:region AS text) IS NULL OR m.region = :region)"""
_LOCK_PORTFOLIOS = text(
    f"""
    SELECT count(*) FROM (
        SELECT c.id FROM customers AS c JOIN managers AS m ON m.id = c.manager_id
         WHERE c.status = 'active' AND {_ACTIVE_IN}
         ORDER BY c.id FOR UPDATE OF c) AS locked
    """
)
_LOCK_ACTIVE_MANAGERS = text(
    f"SELECT m.id FROM managers AS m WHERE {_ACTIVE_IN} ORDER BY m.id FOR UPDATE"
)

_CUSTOMERS = text(
    """
    SELECT c.id, c.tier_code, c.region, c.language, c.industry, c.annual_value, c.satisfaction,
           c.pinned, c.manager_id, c.owner_since AS last_moved_at
      FROM customers AS c
     WHERE c.id = ANY(CAST(:ids AS uuid[]))
     ORDER BY c.id
    """
)
_CUSTOMERS_LOCKED = text(
    "SELECT count(*) FROM (SELECT id FROM customers WHERE id = ANY(CAST(:ids AS uuid[])) "
    "ORDER BY id FOR UPDATE) AS locked"
)

_FORMER_OWNERS = text(
    """
    SELECT customer_id, manager_id, max(ended_at) AS ended_at
      FROM assignments
     WHERE customer_id = ANY(CAST(:ids AS uuid[])) AND ended_at IS NOT NULL
     GROUP BY customer_id, manager_id
     ORDER BY customer_id, ended_at DESC
    """
)


async def load_tiers(session: AsyncSession) -> list[engine.Tier]:
    """Every tier as an engine fact."""
    rows = (await session.execute(_TIERS)).all()
    return [engine.Tier(code=r[0], rank=r[1], weight=r[2], min_manager_level=r[3]) for r in rows]


async def load_managers(
    session: AsyncSession,
    *,
    include: Sequence[uuid.UUID] = (),
    lock: bool = False,
    workloads: bool = True,
) -> list[engine.Manager]:
    """All managers that are not departed (plus ``include``), with their current workload.

    ``lock`` first takes the row locks of every active manager, so the workloads read stay true
    until the transaction ends: a concurrent manual assignment waits instead of overfilling.
    Workloads come from ``manager_loads`` (a sum over each manager's tiers). Without
    ``workloads`` they are 0 (a caller that loads the whole book computes them itself).
    """
    if lock:
        await session.execute(_LOCK_MANAGERS)
    query = _MANAGERS if workloads else _MANAGERS_ONLY
    rows = (await session.execute(query, {"include": list(include)})).mappings().all()
    return [_manager(r) for r in rows]


async def load_manager(
    session: AsyncSession, manager_id: uuid.UUID, *, lock: bool = False
) -> engine.Manager | None:
    """One manager (departed or not) with its current workload; ``lock`` takes its row lock
    first, so the workload stays true until the transaction ends."""
    if lock:
        await session.execute(_LOCK_ONE_MANAGER, {"id": manager_id})
    row = (await session.execute(_ONE_MANAGER, {"id": manager_id})).mappings().first()
    return _manager(row) if row is not None else None


def _manager(r: RowMapping) -> engine.Manager:
    return engine.Manager(
        id=r["id"],
        level=r["level"],
        capacity=r["capacity"],
        workload=int(r["workload"]),
        status=r["status"],
        accepting_new=r["accepting_new"],
        region=r["region"],
        languages=tuple(r["languages"]),
        industries=tuple(r["industries"]),
        team=r["team"],
        absent=r["absent"],
        intake_room=r["intake_room"],
    )


async def lock_portfolios(
    session: AsyncSession, *, team: str | None = None, region: str | None = None
) -> set[uuid.UUID]:
    """Lock the active customers of the active managers (of ``team``, of ``region``), then
    those managers, each in id order; returns the managers locked.

    A manager that turns active after this is not locked: leave it out of what is planned.
    """
    where = {"team": team, "region": region}
    await session.execute(_LOCK_PORTFOLIOS, where)
    return set((await session.scalars(_LOCK_ACTIVE_MANAGERS, where)).all())


async def load_customers(
    session: AsyncSession, customer_ids: Sequence[uuid.UUID], *, lock: bool = False
) -> list[engine.Customer]:
    """The given customers with their former owners and when they last changed owner.

    ``lock`` takes their row locks first (in id order, the same order every writer uses).
    """
    ids = list(customer_ids)
    if not ids:
        return []
    if lock:
        await session.execute(_CUSTOMERS_LOCKED, {"ids": ids})
    former: dict[uuid.UUID, list[engine.FormerOwner]] = defaultdict(list)
    for customer_id, manager_id, ended_at in (
        await session.execute(_FORMER_OWNERS, {"ids": ids})
    ).all():
        former[customer_id].append(engine.FormerOwner(manager_id=manager_id, ended_at=ended_at))
    rows = (await session.execute(_CUSTOMERS, {"ids": ids})).mappings().all()
    return [
        engine.Customer(
            id=r["id"],
            tier=r["tier_code"],
            region=r["region"],
            language=r["language"],
            industry=r["industry"],
            annual_value=float(r["annual_value"]) if r["annual_value"] is not None else None,
            satisfaction=float(r["satisfaction"]) if r["satisfaction"] is not None else None,
            pinned=r["pinned"],
            manager_id=r["manager_id"],
            former_owners=tuple(former.get(r["id"], ())),
            last_moved_at=r["last_moved_at"],
        )
        for r in rows
    ]
