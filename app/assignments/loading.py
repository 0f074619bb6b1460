"""Read the database into the engine's frozen facts, and take the row locks writers need.

**Lock order.** Every transaction that changes owners takes its locks in one order, so two
writers wait for each other instead of deadlocking:

1. the placement advisory lock (``assignments.service.lock_placements``: apply, rebalance,
   handover execution, assign with a rotation strategy or a full explanation), when it is
   an automated placement (a ``balanced`` or named-manager assign takes it in shared mode,
   so those run side by side: see ``assignments.service.assign_customer``);
2. customers, in id order;
3. managers, in id order.

A manual assignment and a single-customer assign lock the customer, then the new manager;
apply and assign through the whole engine lock the selected customers, then every active
manager (``load_customers`` then ``load_managers`` with ``lock``); a rebalance locks the
portfolios it may move, then their managers (``lock_portfolios``). A deadlock or
serialization failure that still happens (a customer joining a portfolio between the two
steps, a path outside this order) is retried with the whole request (``app.api.retries``).
"""

from __future__ import annotations

import contextlib
import gc
import uuid
from collections import defaultdict
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from app import engine
from app.db.session import GENERIC_PLANS, cached_plans, transaction_connection
from app.vocabulary import HANDOVER_INTAKE_REASONS, INTAKE_REASONS

# The availability and intake facts, read set-based: whether each manager is on an absence
# at the transaction's clock (``now()``), and how many new customers their intake caps still
# allow, counted from the ledger over the last 24 hours and 7 days (NULL: no cap). One grouped
# pass over the week's ledger rows of capped managers, not a subquery per manager.
_FACTS_COLUMNS = """(ab.manager_id IS NOT NULL) AS absent,
           CASE WHEN m.max_new_per_day IS NULL AND m.max_new_per_week IS NULL THEN NULL
                ELSE LEAST(m.max_new_per_day - COALESCE(i.day, 0),
                           m.max_new_per_week - COALESCE(i.week, 0)) END AS intake_room,
           m.rotation_weight"""
_FACTS_JOINS = """
      LEFT JOIN (
            SELECT DISTINCT a.manager_id FROM manager_absences AS a
             WHERE a.cancelled_at IS NULL AND a.starts_at <= now() AND a.ends_at > now()
            ) AS ab ON ab.manager_id = m.id
      LEFT JOIN (
            SELECT a.manager_id,
                   count(*) FILTER (WHERE a.started_at > now() - interval '1 day') AS day,
                   count(*) AS week
              FROM assignments AS a
              JOIN managers AS capped ON capped.id = a.manager_id
                   AND (capped.max_new_per_day IS NOT NULL OR capped.max_new_per_week IS NOT NULL)
             WHERE a.started_at > now() - interval '7 days'
               AND a.reason = ANY(CAST(:reasons AS text[]))
             GROUP BY a.manager_id) AS i ON i.manager_id = m.id"""

_TIERS = text("SELECT code, rank, weight, min_manager_level FROM tiers ORDER BY rank, code")

_MANAGERS = text(
    f"""
    SELECT m.id, m.level, m.capacity, COALESCE(w.workload, 0) AS workload, m.status,
           m.accepting_new, m.region, m.languages, m.industries, m.team, {_FACTS_COLUMNS}
      FROM managers AS m
      LEFT JOIN (
            SELECT l.manager_id, SUM(l.customers * t.weight) AS workload
              FROM manager_loads AS l JOIN tiers AS t ON t.code = l.tier_code
             GROUP BY l.manager_id) AS w ON w.manager_id = m.id
      {_FACTS_JOINS}
     WHERE m.status <> 'departed' OR m.id = ANY(CAST(:include AS uuid[]))
     ORDER BY m.id
    """
)

_MANAGERS_ONLY = text(
    f"""
    SELECT m.id, m.level, m.capacity, 0 AS workload, m.status, m.accepting_new, m.region,
           m.languages, m.industries, m.team, {_FACTS_COLUMNS}
      FROM managers AS m
      {_FACTS_JOINS}
     WHERE m.status <> 'departed' OR m.id = ANY(CAST(:include AS uuid[]))
     ORDER BY m.id
    """
)


def _positional(statement: TextClause) -> str:
    """``statement`` with its ``:include`` and ``:reasons`` as the driver's $1 and $2."""
    return statement.text.replace(":include", "$1").replace(":reasons", "$2")


_MANAGERS_SQL = _positional(_MANAGERS)
_MANAGERS_ONLY_SQL = _positional(_MANAGERS_ONLY)

# ``_FACTS_JOINS`` for one manager: its week of ledger rows is read only when it has an intake
# cap. As a join over capped managers, a cached generic plan (statements are prepared once per
# connection) read every row of the manager's week and then checked the caps, row by row: a
# cost that grew with each customer it received (a manual move's guard, ~3 buffers a row).
_ONE_MANAGER_JOINS = """
      LEFT JOIN LATERAL (
            SELECT a.manager_id FROM manager_absences AS a
             WHERE a.manager_id = m.id AND a.cancelled_at IS NULL
               AND a.starts_at <= now() AND a.ends_at > now()
             LIMIT 1) AS ab ON true
      LEFT JOIN LATERAL (
            SELECT count(*) FILTER (WHERE a.started_at > now() - interval '1 day') AS day,
                   count(*) AS week
              FROM assignments AS a
             WHERE (m.max_new_per_day IS NOT NULL OR m.max_new_per_week IS NOT NULL)
               AND a.manager_id = m.id AND a.started_at > now() - interval '7 days'
               AND a.reason = ANY(CAST(:reasons AS text[]))) AS i ON true"""

_ONE_MANAGER = text(
    f"""
    SELECT m.id, m.level, m.capacity,
           COALESCE((SELECT SUM(l.customers * t.weight)
                       FROM manager_loads AS l JOIN tiers AS t ON t.code = l.tier_code
                      WHERE l.manager_id = m.id), 0) AS workload,
           m.status, m.accepting_new, m.region, m.languages, m.industries, m.team,
           {_FACTS_COLUMNS}
      FROM managers AS m
      {_ONE_MANAGER_JOINS}
     WHERE m.id = :id
    """
)

# New customers of each capped tier received per manager over the last 24 hours and 7 days
# (the rule set's tier caps), one grouped pass.
_TIER_INTAKE_SQL = """
    SELECT a.manager_id, c.tier_code,
           count(*) FILTER (WHERE a.started_at > now() - interval '1 day') AS day,
           count(*) AS week
      FROM assignments AS a JOIN customers AS c ON c.id = a.customer_id
     WHERE a.started_at > now() - interval '7 days'
       AND a.reason = ANY(CAST(:reasons AS text[]))
       AND c.tier_code = ANY(CAST(:tiers AS text[])){manager}
     GROUP BY a.manager_id, c.tier_code
     ORDER BY a.manager_id, c.tier_code
    """
_TIER_INTAKE = text(_TIER_INTAKE_SQL.format(manager=""))
# One manager's (the guard's, under that manager's lock): by the manager's ledger index. Its
# own statement rather than an optional filter (``:manager IS NULL OR …``), which a plan
# cached for every value (the one-customer writes run on those) could not use the index for.
_TIER_INTAKE_OF_ONE = text(
    _TIER_INTAKE_SQL.format(manager="\n       AND a.manager_id = CAST(:manager AS uuid)")
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

# Read on the driver's connection: the rows go straight into engine facts (SQLAlchemy's
# result processing cost as much as the query on a large selection).
_CUSTOMERS = """
    SELECT c.id, c.tier_code, c.region, c.language, c.industry, c.annual_value, c.satisfaction,
           c.pinned, c.manager_id, c.owner_since AS last_moved_at
      FROM customers AS c
     WHERE c.id = ANY($1::uuid[])
     ORDER BY c.id
    """
_CUSTOMERS_LOCKED = text(
    "SELECT count(*) FROM (SELECT id FROM customers WHERE id = ANY(CAST(:ids AS uuid[])) "
    "ORDER BY id FOR UPDATE) AS locked"
)

_FORMER_OWNERS = """
    SELECT customer_id, manager_id, max(ended_at) AS ended_at
      FROM assignments
     WHERE customer_id = ANY($1::uuid[]) AND ended_at IS NOT NULL
     GROUP BY customer_id, manager_id
     ORDER BY customer_id, ended_at DESC
"""


async def load_tiers(session: AsyncSession) -> list[engine.Tier]:
    """Every tier as an engine fact."""
    rows = (await session.execute(_TIERS)).all()
    return [engine.Tier(code=r[0], rank=r[1], weight=r[2], min_manager_level=r[3]) for r in rows]


def intake_reasons(rules: engine.RuleSet | None = None) -> list[str]:
    """The ledger reasons that count toward intake caps under ``rules``."""
    counted: list[str] = list(INTAKE_REASONS)
    if rules is not None and rules.placement.intake_counts_handovers:
        counted += HANDOVER_INTAKE_REASONS
    return counted


async def load_managers(
    session: AsyncSession,
    *,
    include: Sequence[uuid.UUID] = (),
    lock: bool = False,
    workloads: bool = True,
    rules: engine.RuleSet | None = None,
    for_tiers: Collection[str] | None = None,
) -> list[engine.Manager]:
    """All managers that are not departed (plus ``include``), with their current workload.

    ``lock`` first takes the row locks of every active manager, so the workloads read stay true
    until the transaction ends: a concurrent manual assignment waits instead of overfilling.
    Workloads come from ``manager_loads`` (a sum over each manager's tiers). Without
    ``workloads`` they are 0 (a caller that loads the whole book computes them itself).
    With ``rules`` intake counts follow its settings and its tier caps are counted, for
    ``for_tiers`` only when given (the tiers of the customers being placed).
    """
    if lock:
        await session.execute(_LOCK_MANAGERS)
    # On the driver's connection: at 10k managers SQLAlchemy's row handling cost several
    # times the query.
    raw = await transaction_connection(session)
    query = _MANAGERS_SQL if workloads else _MANAGERS_ONLY_SQL
    reasons = intake_reasons(rules)
    rows = await raw.fetch(query, list(include), reasons)
    counts = await _tier_intake(session, rules, reasons, manager_id=None, for_tiers=for_tiers)
    with collection_paused():
        return [_manager_from_record(r, counts.get(r[0], ())) for r in rows]


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused while many small objects are built in one
    synchronous step (nothing else runs meanwhile): the collections their allocations set off
    doubled the time of building 10 000 managers. Restored as it was, even on an error."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _manager_from_record(
    r: Sequence[Any], tier_intake: tuple[tuple[str, int, int], ...]
) -> engine.Manager:
    """``manager_from_row`` for a row of ``_MANAGERS``, its columns read by position: at
    10 000 managers, reading them by name through a closure cost three times as much."""
    return engine.Manager(
        id=r[0],
        level=r[1],
        capacity=r[2],
        workload=int(r[3]),
        status=r[4],
        accepting_new=r[5],
        region=r[6],
        languages=tuple(r[7]),
        industries=tuple(r[8]),
        team=r[9],
        absent=r[10],
        intake_room=r[11],
        tier_intake=tier_intake,
        rotation_weight=r[12],
    )


async def _tier_intake(
    session: AsyncSession,
    rules: engine.RuleSet | None,
    reasons: list[str],
    *,
    manager_id: uuid.UUID | None,
    for_tiers: Collection[str] | None = None,
) -> dict[uuid.UUID, tuple[tuple[str, int, int], ...]]:
    capped = set(rules.placement.tier_caps) if rules is not None else set()
    if for_tiers is not None:
        capped &= set(for_tiers)
    if not capped:
        return {}
    params: dict[str, Any] = {"reasons": reasons, "tiers": sorted(capped)}
    statement = _TIER_INTAKE
    if manager_id is not None:
        params["manager"], statement = manager_id, _TIER_INTAKE_OF_ONE
    out: dict[uuid.UUID, list[tuple[str, int, int]]] = defaultdict(list)
    for r in (await session.execute(statement, params)).all():
        out[r[0]].append((r[1], int(r[2]), int(r[3])))
    return {k: tuple(v) for k, v in out.items()}


async def load_manager(
    session: AsyncSession,
    manager_id: uuid.UUID,
    *,
    lock: bool = False,
    rules: engine.RuleSet | None = None,
    for_tier: str | None = None,
) -> engine.Manager | None:
    """One manager (departed or not) with its current workload; ``lock`` takes its row lock
    first, so the workload stays true until the transaction ends."""
    if lock:
        await session.execute(_LOCK_ONE_MANAGER, {"id": manager_id})
    reasons = intake_reasons(rules)
    row = (
        (await session.execute(_ONE_MANAGER, {"id": manager_id, "reasons": reasons}))
        .mappings()
        .first()
    )
    if row is None:
        return None
    counts = await _tier_intake(
        session,
        rules,
        reasons,
        manager_id=manager_id,
        for_tiers=None if for_tier is None else [for_tier],
    )
    return manager_from_row(row, counts.get(manager_id, ()))


def manager_from_row(
    r: Mapping[Any, Any],
    tier_intake: tuple[tuple[str, int, int], ...] = (),
    *,
    prefix: str = "",
) -> engine.Manager:
    """A manager as the engine sees it, from a row with the ``managers`` view's columns
    (named ``prefix`` + column when the row holds other facts too)."""

    def v(column: str) -> Any:
        return r[prefix + column]

    return engine.Manager(
        id=v("id"),
        level=v("level"),
        capacity=v("capacity"),
        workload=int(v("workload")),
        status=v("status"),
        accepting_new=v("accepting_new"),
        region=v("region"),
        languages=tuple(v("languages")),
        industries=tuple(v("industries")),
        team=v("team"),
        absent=v("absent"),
        intake_room=v("intake_room"),
        tier_intake=tier_intake,
        rotation_weight=v("rotation_weight"),
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
    # a statement through the session first: the transaction is open on the connection
    if lock:
        await session.execute(_CUSTOMERS_LOCKED, {"ids": ids})
    else:
        await session.execute(text("SELECT 1"))
    connection = await session.connection()
    raw: Any = (await connection.get_raw_connection()).driver_connection
    former: dict[uuid.UUID, list[engine.FormerOwner]] = defaultdict(list)
    for customer_id, manager_id, ended_at in await raw.fetch(_FORMER_OWNERS, ids):
        former[customer_id].append(engine.FormerOwner(manager_id=manager_id, ended_at=ended_at))
    return [
        engine.Customer(
            id=cid,
            tier=tier,
            region=region,
            language=language,
            industry=industry,
            annual_value=float(value) if value is not None else None,
            satisfaction=float(satisfaction) if satisfaction is not None else None,
            pinned=pinned,
            manager_id=manager_id,
            former_owners=tuple(former.get(cid, ())),
            last_moved_at=moved_at,
        )
        for (
            cid,
            tier,
            region,
            language,
            industry,
            value,
            satisfaction,
            pinned,
            manager_id,
            moved_at,
        ) in await raw.fetch(_CUSTOMERS, ids)
    ]


# A manual move's facts, read on the driver's connection in two round trips (the placement
# guard runs on every manual move, import row and webhook placement):
# 1. the new manager's row lock, and which rule set is in force (its version and row
#    version, so a parsed rule set can be reused until another is stored);
# 2. after the lock (a fresh snapshot, so a concurrent move to the same manager that
#    committed meanwhile is counted): the customer, its former owners, its tier and the
#    manager's facts as ``_ONE_MANAGER`` reads them.
_LOCK_MANAGER_AND_RULES = f"""
    SELECT (SELECT id FROM managers WHERE id = $1 FOR UPDATE) AS locked,
           CAST(r.rules AS text) AS rules_json, r.version AS rules_version,
           {GENERIC_PLANS.format(2)} AS generic_plans
      FROM (SELECT) AS one
      LEFT JOIN LATERAL (
            SELECT rules, version FROM rule_sets ORDER BY version DESC LIMIT 1) AS r ON true
"""
# The version of the rule set in force, read by ``_MOVE_FACTS`` after the locks: a statement
# that waited for a lock kept the snapshot it started with, so a rule set stored meanwhile is
# seen only here (0: none stored).
RULES_VERSION_IN_FORCE = "(SELECT COALESCE(max(version), 0) FROM rule_sets)"
_MOVE_FACTS = f"""
    SELECT c.id, c.tier_code, c.region, c.language, c.industry, c.annual_value, c.satisfaction,
           c.pinned, c.manager_id, c.owner_since,
           f.managers AS former_managers, f.ended AS former_ended,
           t.rank AS tier_rank, t.weight AS tier_weight, t.min_manager_level,
           m.id AS m_id, m.level AS m_level, m.capacity AS m_capacity,
           m.workload AS m_workload, m.status AS m_status, m.accepting_new AS m_accepting_new,
           m.region AS m_region, m.languages AS m_languages, m.industries AS m_industries,
           m.team AS m_team, m.absent AS m_absent, m.intake_room AS m_intake_room,
           m.rotation_weight AS m_rotation_weight,
           {RULES_VERSION_IN_FORCE} AS rules_version
      FROM customers AS c
      JOIN tiers AS t ON t.code = c.tier_code
      LEFT JOIN LATERAL (
            SELECT array_agg(g.manager_id ORDER BY g.ended_at DESC) AS managers,
                   array_agg(g.ended_at ORDER BY g.ended_at DESC) AS ended
              FROM (SELECT manager_id, max(ended_at) AS ended_at
                      FROM assignments
                     WHERE customer_id = c.id AND ended_at IS NOT NULL
                     GROUP BY manager_id) AS g) AS f ON true
      LEFT JOIN ({
    _ONE_MANAGER.text.replace(":id", "$2").replace("CAST(:reasons", "CAST($3")
}) AS m ON true
     WHERE c.id = $1
"""


def customer_from_row(
    r: Mapping[str, Any], customer_id: uuid.UUID
) -> tuple[engine.Customer, engine.Tier]:
    """A customer and its tier from a row of one customer's facts (the columns as
    ``_MOVE_FACTS`` names them: the customer's own, ``former_managers``/``former_ended``
    newest first, ``tier_rank``, ``tier_weight``, ``min_manager_level``)."""
    customer = engine.Customer(
        id=customer_id,
        tier=r["tier_code"],
        region=r["region"],
        language=r["language"],
        industry=r["industry"],
        annual_value=float(r["annual_value"]) if r["annual_value"] is not None else None,
        satisfaction=float(r["satisfaction"]) if r["satisfaction"] is not None else None,
        pinned=r["pinned"],
        manager_id=r["manager_id"],
        former_owners=tuple(
            engine.FormerOwner(manager_id=m, ended_at=e)
            for m, e in zip(r["former_managers"] or (), r["former_ended"] or (), strict=True)
        ),
        last_moved_at=r["owner_since"],
    )
    tier = engine.Tier(
        code=r["tier_code"],
        rank=r["tier_rank"],
        weight=r["tier_weight"],
        min_manager_level=r["min_manager_level"],
    )
    return customer, tier


async def lock_manager_for_move(
    session: AsyncSession, manager_id: uuid.UUID
) -> tuple[str | None, int]:
    """Take ``manager_id``'s row lock (if it exists); returns the JSON text of the rule set
    in force (None: none stored, the built-in default applies) and its version (0: none)."""
    raw = await transaction_connection(session)
    row = await raw.fetchrow(_LOCK_MANAGER_AND_RULES, manager_id, cached_plans(session))
    return row["rules_json"], row["rules_version"] or 0


async def rules_in_force(session: AsyncSession) -> tuple[str | None, int]:
    """The JSON text of the rule set in force (None: the built-in default) and its version."""
    raw = await transaction_connection(session)
    row = await raw.fetchrow(_LOCK_MANAGER_AND_RULES, None, cached_plans(session))
    return row["rules_json"], row["rules_version"] or 0


async def load_move(
    session: AsyncSession,
    customer_id: uuid.UUID,
    manager_id: uuid.UUID,
    *,
    rules: engine.RuleSet,
) -> tuple[engine.Customer, engine.Tier, engine.Manager | None, int] | None:
    """The facts of giving ``customer_id`` to ``manager_id`` in one round trip: the customer
    (as ``load_customers``), its tier, the manager (as ``load_manager``, None if it does
    not exist) and the version of the rule set in force after the locks (0: none stored).
    None if the customer does not exist. Lock the manager first (``lock_manager_for_move``)."""
    raw = await transaction_connection(session)
    reasons = intake_reasons(rules)
    r = await raw.fetchrow(_MOVE_FACTS, customer_id, manager_id, reasons)
    if r is None:
        return None
    customer, tier = customer_from_row(r, r["id"])
    if r["m_id"] is None:
        return customer, tier, None, r["rules_version"]
    counts = await _tier_intake(
        session, rules, reasons, manager_id=manager_id, for_tiers=[customer.tier]
    )
    manager = manager_from_row(r, counts.get(manager_id, ()), prefix="m_")
    return customer, tier, manager, r["rules_version"]
