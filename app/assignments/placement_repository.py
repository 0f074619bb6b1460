"""SQL for placing one customer: its facts in one statement, its candidate managers in another.

The whole-book loaders (``loading``) read every manager and count intake over the week's whole
ledger; placing one customer needs only the managers who could take it, so both statements
here are bounded by the candidates and served by per-manager indexes (``manager_loads``,
``ix_assignments_manager_started``, ``ix_manager_absences_manager``).
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app import engine
from app.assignments import loading
from app.db.reads import Reader
from app.db.session import transaction_connection
from app.engine import single

# The customer, its tier, its former owners and the rule set in force, in one round trip.
_CUSTOMER = """
    SELECT c.status, c.tier_code, c.region, c.language, c.industry, c.annual_value,
           c.satisfaction, c.pinned, c.manager_id, c.owner_since,
           t.rank AS tier_rank, t.weight AS tier_weight, t.min_manager_level,
           ARRAY(SELECT f.manager_id FROM (
                   SELECT a.manager_id, max(a.ended_at) AS ended_at FROM assignments AS a
                    WHERE a.customer_id = c.id AND a.ended_at IS NOT NULL
                    GROUP BY a.manager_id) AS f
                 ORDER BY f.ended_at DESC, f.manager_id) AS former_managers,
           ARRAY(SELECT max(a.ended_at) FROM assignments AS a
                  WHERE a.customer_id = c.id AND a.ended_at IS NOT NULL
                  GROUP BY a.manager_id ORDER BY 1 DESC, a.manager_id) AS former_ended,
           r.version AS rules_version, r.rules AS rules_json
      FROM customers AS c
      JOIN tiers AS t ON t.code = c.tier_code
      LEFT JOIN LATERAL (
            SELECT version, CAST(rules AS text) AS rules FROM rule_sets
             ORDER BY version DESC LIMIT 1) AS r ON true
     WHERE c.id = $1::uuid
    """
_SAVEPOINT = "single_placement_lock"
_LOCK_CUSTOMER = "SELECT FROM customers WHERE id = '{id}'::uuid FOR UPDATE; SAVEPOINT " + _SAVEPOINT
_SHARE_PLACEMENTS = "SELECT pg_advisory_xact_lock_shared({key}::bigint); "
_LOCK_PLACEMENTS = "SELECT pg_advisory_xact_lock($1::bigint)"

# Candidates: active, accepting, senior enough, with room for the customer's weight (its
# current owner, a named successor and the tier's fallback owner always). Intake counts are
# per manager over its own week of ledger rows, only for managers with caps; the tier's
# count joins the customers only when the rule set caps the tier (a statement of its own:
# otherwise a per-manager aggregate that counts nothing). Workloads are summed in one pass
# over ``manager_loads`` (a hash join), not looked up manager by manager, except when only
# named managers are read (a placement reading its chosen manager again after the lock): then
# each named manager's rows alone. The columns come in the order of a manager row
# (``engine.single.ROW_FIELDS``), with each manager's relation to the customer as bits
# (``engine.single.CURRENT`` …): no object per manager is built. Every statement takes the
# same eleven parameters.
_CANDIDATE = """
    (m.id = ANY($1::uuid[])
     OR (NOT $5::boolean AND m.status = 'active' AND m.accepting_new AND m.level >= $2::int
         AND m.capacity > 0{room}))"""
_ROOM = " AND {} + $3::int <= m.capacity"
# The named managers alone, by key ($5 true): the other parameters are named only to keep
# their types. One manager (a placement reading its choice again) is read by ``$1[1]``: with
# ``= ANY($1)`` the generic plan expects ten rows, so Postgres planned the statement again at
# every run (~0.2 ms) rather than use its cached plan.
_ONLY_NAMED = "m.id = {} AND $5::boolean AND $2::int IS NOT NULL AND $3::int IS NOT NULL"
_WORKLOAD_OF_ONE = """COALESCE((
           SELECT SUM(l.customers * t.weight) FROM manager_loads AS l
             JOIN tiers AS t ON t.code = l.tier_code
            WHERE l.manager_id = m.id), 0)::bigint"""
_WORKLOADS = """
      LEFT JOIN (
           SELECT l.manager_id, SUM(l.customers * t.weight)::bigint AS workload
             FROM manager_loads AS l JOIN tiers AS t ON t.code = l.tier_code
            GROUP BY l.manager_id) AS w ON w.manager_id = m.id"""
_TIER_INTAKE = """
      LEFT JOIN LATERAL (
           SELECT count(*) FILTER (WHERE a.started_at > now() - interval '1 day') AS day,
                  count(*) AS week
             FROM assignments AS a JOIN customers AS c ON c.id = a.customer_id
            WHERE a.manager_id = m.id
              AND a.started_at > now() - interval '7 days'
              AND a.reason = ANY($4::text[]) AND c.tier_code = $6::text) AS t ON true"""


@functools.cache
def _candidates(*, capped: bool, named: int | None) -> str:
    """The candidates' statement: with the tier's intake counted (``capped``); or only the
    ``named`` managers (``$5`` true; 1: one), by key, with their workloads alone."""
    only_include = named is not None
    workload = _WORKLOAD_OF_ONE if only_include else "COALESCE(w.workload, 0)"
    only = _ONLY_NAMED.format("($1::uuid[])[1]" if named == 1 else "ANY($1::uuid[])")
    return f"""
    SELECT m.id, m.level, m.capacity, {workload} AS workload, m.status,
           m.accepting_new, m.region, m.languages, m.industries, m.team,
           EXISTS (SELECT 1 FROM manager_absences AS a
                    WHERE a.manager_id = m.id AND a.cancelled_at IS NULL
                      AND a.starts_at <= now() AND a.ends_at > now()) AS absent,
           CASE WHEN m.max_new_per_day IS NULL AND m.max_new_per_week IS NULL THEN NULL
                ELSE LEAST(
                  m.max_new_per_day - (
                    SELECT count(*) FROM assignments AS a
                     WHERE m.max_new_per_day IS NOT NULL AND a.manager_id = m.id
                       AND a.started_at > now() - interval '1 day'
                       AND a.reason = ANY($4::text[])),
                  m.max_new_per_week - (
                    SELECT count(*) FROM assignments AS a
                     WHERE m.max_new_per_week IS NOT NULL AND a.manager_id = m.id
                       AND a.started_at > now() - interval '7 days'
                       AND a.reason = ANY($4::text[]))) END AS intake_room,
           {"t.day, t.week" if capped else "CAST(NULL AS bigint), CAST(NULL AS bigint)"},
           m.rotation_weight,
           CASE WHEN $7::boolean AND m.status <> 'departed' THEN CAST(m.working_hours AS text) END
             AS working_hours,
           m.time_zone,
           CASE WHEN m.id = $8::uuid THEN {single.CURRENT} ELSE 0 END
           | CASE WHEN m.id = ANY($9::uuid[]) THEN {single.FORMER} ELSE 0 END
           | CASE WHEN m.id = $10::uuid THEN {single.SUCCESSOR} ELSE 0 END
           | CASE WHEN m.id = $11::uuid THEN {single.FALLBACK} ELSE 0 END AS marks
      FROM managers AS m{"" if only_include else _WORKLOADS}{_TIER_INTAKE if capped else ""}
     WHERE {only if only_include else _CANDIDATE.format(room=_ROOM.format(workload))}
       AND {"$6::text IS NOT NULL" if capped else "$6::text IS NULL"}
     ORDER BY m.id
    """


@dataclass(frozen=True, slots=True)
class CustomerFacts:
    """One customer as the engine sees it, with its status, tier and the rule set in force
    (``rules_json`` None: the built-in default, version 0)."""

    status: str
    customer: engine.Customer
    tier: engine.Tier
    rules_version: int
    rules_json: str | None


@dataclass(frozen=True, slots=True)
class Candidates:
    """The candidate managers as rows (``engine.single.Row``) in id order, the marks of the
    rows related to the customer (row position: ``single.CURRENT`` … bits), and, when asked
    for, (row position, working hours, time zone) of the managers with working hours."""

    rows: list[single.Row]
    marks: dict[int, int]
    hours: list[tuple[int, list[dict[str, Any]], str | None]]


async def lock_placements(session: AsyncSession, key: int) -> None:
    """Take the transaction-level advisory lock that serialises automated placements."""
    raw = await transaction_connection(session)
    await raw.execute(_LOCK_PLACEMENTS, key)


async def in_transaction(session: AsyncSession) -> Reader:
    """The reads below on the request's transaction (a placement that writes reads there,
    after its locks); a dry run reads on the service's read pool instead."""
    return await transaction_connection(session)


async def lock_customer(
    session: AsyncSession, customer_id: uuid.UUID, *, share_placements: int | None = None
) -> None:
    """The customer's row lock, taken before its facts are read (they are then read with a
    snapshot that sees every move committed before), and in the same round trip a savepoint
    after it: a placement that must choose again gives back the lock on the manager it chose
    (``undo_lock``) and keeps the customer's. ``share_placements`` first takes that advisory
    lock in shared mode (before the customer's: the order every placement keeps). Sent as one
    simple query, so the id and key are written into it, from a ``uuid.UUID`` and an int."""
    raw = await transaction_connection(session)
    sql = _LOCK_CUSTOMER.format(id=uuid.UUID(str(customer_id)))
    if share_placements is not None:
        sql = _SHARE_PLACEMENTS.format(key=int(share_placements)) + sql
    await raw.execute(sql)


async def customer_facts(reads: Reader, customer_id: uuid.UUID) -> CustomerFacts | None:
    """The customer's facts (None: no such customer), in one statement."""
    r = await reads.fetchrow(_CUSTOMER, customer_id)
    if r is None:
        return None
    customer, tier = loading.customer_from_row(r, customer_id)
    return CustomerFacts(
        status=r["status"],
        customer=customer,
        tier=tier,
        rules_version=r["rules_version"] or 0,
        rules_json=r["rules_json"],
    )


async def candidates(
    reads: Reader,
    *,
    include: Sequence[uuid.UUID],
    min_level: int,
    weight: int,
    reasons: Sequence[str],
    only_include: bool = False,
    capped_tier: str | None = None,
    hours: bool = False,
    owner: uuid.UUID | None = None,
    former: Sequence[uuid.UUID] = (),
    successor: uuid.UUID | None = None,
    fallback: uuid.UUID | None = None,
) -> Candidates:
    """The managers who could take a customer of a tier needing ``min_level`` and weighing
    ``weight`` (room counted from current workloads), plus ``include`` (departed or not);
    with ``only_include`` just those. ``capped_tier``: count that tier's intake per manager.
    ``hours``: return working hours. ``owner``, ``former``, ``successor`` and ``fallback``
    name the managers the rows are marked for."""
    records = await reads.fetch(
        _candidates(
            capped=capped_tier is not None, named=min(len(include), 2) if only_include else None
        ),
        list(include),
        min_level,
        weight,
        list(reasons),
        only_include,
        capped_tier,
        hours,
        owner,
        list(former),
        successor,
        fallback,
    )
    rows: list[single.Row] = []
    marks: dict[int, int] = {}
    windows: list[tuple[int, list[dict[str, Any]], str | None]] = []
    for i, r in enumerate(records):  # the columns of a row, then its extras (see above)
        week = r[13]
        room = ((capped_tier, int(r[12]), int(week)),) if capped_tier is not None and week else ()
        rows.append((*r[:7], tuple(r[7]), tuple(r[8]), *r[9:12], room, r[14], False))
        if r[15] is not None:
            windows.append((i, json.loads(r[15]), r[16]))
        if r[17]:
            marks[i] = r[17]
    return Candidates(rows, marks, windows)


async def undo_lock(session: AsyncSession) -> None:
    """Roll back to the savepoint taken with the customer's lock (``lock_customer``): the
    manager's row lock taken since is released, the customer's is kept."""
    raw = await transaction_connection(session)
    await raw.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
