"""SQL for placing one customer: its facts in one statement, its candidate managers in another.

The whole-book loaders (``loading``) read every manager and count intake over the week's whole
ledger; placing one customer needs only the managers who could take it, so both statements
here are bounded by the candidates and served by per-manager indexes (``manager_loads``,
``ix_assignments_manager_started``, ``ix_manager_absences_manager``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app import engine
from app.assignments.loading import manager_from_row
from app.db.session import transaction_connection

# The customer, its tier, its former owners and the rule set in force, in one round trip.
_CUSTOMER = text(
    """
    SELECT c.status, c.tier_code, c.region, c.language, c.industry, c.annual_value,
           c.satisfaction, c.pinned, c.manager_id, c.owner_since,
           t.rank, t.weight, t.min_manager_level,
           ARRAY(SELECT f.manager_id FROM (
                   SELECT a.manager_id, max(a.ended_at) AS ended_at FROM assignments AS a
                    WHERE a.customer_id = c.id AND a.ended_at IS NOT NULL
                    GROUP BY a.manager_id) AS f
                 ORDER BY f.ended_at DESC, f.manager_id) AS former_ids,
           ARRAY(SELECT max(a.ended_at) FROM assignments AS a
                  WHERE a.customer_id = c.id AND a.ended_at IS NOT NULL
                  GROUP BY a.manager_id ORDER BY 1 DESC, a.manager_id) AS former_ended,
           r.version AS rules_version, r.rules AS rules_json
      FROM customers AS c
      JOIN tiers AS t ON t.code = c.tier_code
      LEFT JOIN LATERAL (
            SELECT version, CAST(rules AS text) AS rules FROM rule_sets
             ORDER BY version DESC LIMIT 1) AS r ON true
     WHERE c.id = :id
    """
)
_CUSTOMER_RAW = str(_CUSTOMER).replace(":id", "$1::uuid")
_LOCK_CUSTOMER = text("SELECT id FROM customers WHERE id = :id FOR UPDATE")

# Candidates: active, accepting, senior enough, with room for the customer's weight (its
# current owner, a named successor and the tier's fallback owner always). Intake counts are
# per manager over its own week of ledger rows, only for managers with caps; the tier's
# count joins the customers only when the rule set caps the tier.
_CANDIDATE = """
    (m.id = ANY($1::uuid[])
     OR (NOT $5::boolean AND m.status = 'active' AND m.accepting_new AND m.level >= $2::int
         AND m.capacity > 0{room}))"""
_CANDIDATES = f"""
    SELECT m.id, m.level, m.capacity, w.workload, m.status, m.accepting_new, m.region,
           m.languages, m.industries, m.team,
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
           m.rotation_weight,
           CASE WHEN $6::text IS NOT NULL THEN (
                SELECT ARRAY[count(*) FILTER (WHERE a.started_at > now() - interval '1 day'),
                             count(*)]
                  FROM assignments AS a JOIN customers AS c ON c.id = a.customer_id
                 WHERE a.manager_id = m.id AND a.started_at > now() - interval '7 days'
                   AND a.reason = ANY($4::text[]) AND c.tier_code = $6::text) END
             AS tier_intake,
           CASE WHEN $7::boolean AND m.status <> 'departed' THEN m.working_hours END
             AS working_hours,
           m.time_zone
      FROM managers AS m
     CROSS JOIN LATERAL (
           SELECT COALESCE(SUM(l.customers * t.weight), 0)::bigint AS workload
             FROM manager_loads AS l JOIN tiers AS t ON t.code = l.tier_code
            WHERE l.manager_id = m.id) AS w
     WHERE {_CANDIDATE.format(room=" AND w.workload + $3::int <= m.capacity")}
     ORDER BY m.id
    """
_LOCK_CANDIDATES = text(
    f"""
    SELECT count(*) FROM (
        SELECT m.id FROM managers AS m
         WHERE {
        _CANDIDATE.format(room="")
        .replace("$1::uuid[]", "CAST(:include AS uuid[])")
        .replace("$5::boolean", "CAST(:only_include AS boolean)")
        .replace("$2::int", "CAST(:min_level AS int)")
    }
         ORDER BY m.id FOR UPDATE) AS locked
    """
)


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
class Candidate:
    """A manager fact, with the working hours to check when the rule set asks for them."""

    manager: engine.Manager
    working_hours: list[dict[str, Any]] | None
    time_zone: str | None


async def customer_facts(
    session: AsyncSession, customer_id: uuid.UUID, *, lock: bool = False
) -> CustomerFacts | None:
    """The customer's facts (None: no such customer); ``lock`` takes its row lock first."""
    if lock:
        # in the transaction the locks are taken in, through the session
        await session.execute(_LOCK_CUSTOMER, {"id": customer_id})
        row: Any = (await session.execute(_CUSTOMER, {"id": customer_id})).first()
    else:  # a read of its own: on the driver's connection, without the ORM's result layer
        raw = await transaction_connection(session)
        row = await raw.fetchrow(_CUSTOMER_RAW, customer_id)
    if row is None:
        return None
    r = row._mapping if lock else row
    former = tuple(
        engine.FormerOwner(manager_id=m, ended_at=e)
        for m, e in zip(r["former_ids"], r["former_ended"], strict=True)
    )
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
        former_owners=former,
        last_moved_at=r["owner_since"],
    )
    tier = engine.Tier(
        code=r["tier_code"],
        rank=r["rank"],
        weight=r["weight"],
        min_manager_level=r["min_manager_level"],
    )
    return CustomerFacts(
        status=r["status"],
        customer=customer,
        tier=tier,
        rules_version=r["rules_version"] or 0,
        rules_json=r["rules_json"],
    )


async def lock_candidates(
    session: AsyncSession,
    *,
    include: Sequence[uuid.UUID],
    min_level: int,
    only_include: bool,
) -> None:
    """Lock the managers ``candidates`` may read (room aside), in id order."""
    params = {"include": list(include), "min_level": min_level, "only_include": only_include}
    await session.execute(_LOCK_CANDIDATES, params)


async def candidates(
    session: AsyncSession,
    *,
    include: Sequence[uuid.UUID],
    min_level: int,
    weight: int,
    reasons: Sequence[str],
    only_include: bool = False,
    capped_tier: str | None = None,
    hours: bool = False,
) -> list[Candidate]:
    """The managers who could take a customer of a tier needing ``min_level`` and weighing
    ``weight`` (room counted from current workloads), plus ``include`` (departed or not);
    with ``only_include`` just those. ``capped_tier``: count that tier's intake per manager.
    ``hours``: return working hours (None otherwise)."""
    raw = await transaction_connection(session)
    rows = await raw.fetch(
        _CANDIDATES,
        list(include),
        min_level,
        weight,
        list(reasons),
        only_include,
        capped_tier,
        hours,
    )
    out = []
    for r in rows:
        tier_intake: tuple[tuple[str, int, int], ...] = ()
        if capped_tier is not None and r["tier_intake"] is not None:
            day, week = r["tier_intake"]
            if week:
                tier_intake = ((capped_tier, int(day), int(week)),)
        hours_value = r["working_hours"]
        if isinstance(hours_value, str):
            hours_value = json.loads(hours_value)
        manager = manager_from_row(r, tier_intake)
        out.append(Candidate(manager, hours_value, r["time_zone"]))
    return out
