"""``baton check``: verify DESIGN.md's invariants on any database, read-only."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.assignments import compliance


@dataclass(frozen=True)
class Violation:
    invariant: str
    count: int
    sample: list[str]


# Each query returns the ids that break one invariant.
CHECKS: dict[str, str] = {
    "owner_matches_open_ledger_row": """
        SELECT c.id::text FROM customers AS c
          LEFT JOIN assignments AS a ON a.customer_id = c.id AND a.ended_at IS NULL
         WHERE c.manager_id IS DISTINCT FROM a.manager_id
    """,
    "at_most_one_open_ledger_row": """
        SELECT customer_id::text FROM assignments WHERE ended_at IS NULL
         GROUP BY customer_id HAVING count(*) > 1
    """,
    "ledger_periods_do_not_overlap": """
        SELECT DISTINCT a.customer_id::text FROM assignments AS a
          JOIN assignments AS b ON b.customer_id = a.customer_id AND b.id > a.id
         WHERE a.started_at < COALESCE(b.ended_at, 'infinity')
           AND b.started_at < COALESCE(a.ended_at, 'infinity')
           AND a.ended_at IS DISTINCT FROM a.started_at
           AND b.ended_at IS DISTINCT FROM b.started_at
    """,
    "manager_loads_match_a_recount": """
        SELECT COALESCE(l.manager_id, c.manager_id)::text
          FROM (SELECT manager_id, tier_code, sum(customers) AS customers FROM manager_loads
                 GROUP BY manager_id, tier_code HAVING sum(customers) <> 0) AS l
          FULL JOIN (SELECT manager_id, tier_code, count(*) AS customers FROM customers
                      WHERE status = 'active' AND manager_id IS NOT NULL
                      GROUP BY manager_id, tier_code) AS c
            ON c.manager_id = l.manager_id AND c.tier_code = l.tier_code
         WHERE l.customers IS DISTINCT FROM c.customers
    """,
    "departed_managers_own_no_active_customer": """
        SELECT c.id::text FROM customers AS c JOIN managers AS m ON m.id = c.manager_id
         WHERE m.status = 'departed' AND c.status = 'active'
    """,
    "unforced_moves_respect_tier_minimum_level": """
        SELECT a.customer_id::text FROM assignments AS a
          JOIN customers AS c ON c.id = a.customer_id
          JOIN tiers AS t ON t.code = c.tier_code
          JOIN managers AS m ON m.id = a.manager_id
         WHERE a.ended_at IS NULL AND m.level < t.min_manager_level
           AND a.reason IN ('auto', 'rebalance', 'handover', 'refusal')
           AND COALESCE(a.note, '') NOT LIKE 'forced%'
    """,
}


_OPEN_VIOLATIONS = text("SELECT customer_id FROM ownership_violations WHERE resolved_at IS NULL")


async def find_violations(session: AsyncSession) -> list[Violation]:
    """Every invariant that does not hold, with a count and a few offending ids.

    Besides the ledger's invariants: every owner that breaks a hard rule now (checked with
    the placement guard over the whole book) has an open violation, which the change that
    caused it reported; and every open violation still holds.
    """
    found: list[Violation] = []
    for name, query in CHECKS.items():
        ids = list((await session.scalars(text(query))).all())
        if ids:
            found.append(Violation(invariant=name, count=len(ids), sample=ids[:10]))
    _, breaking = await compliance.find(session, compliance.Scope.all())
    now = {f.customer_id for f in breaking}
    recorded = set((await session.scalars(_OPEN_VIOLATIONS)).all())
    for name, ids in (
        ("rule_violations_are_recorded", sorted(now - recorded)),
        ("recorded_violations_still_hold", sorted(recorded - now)),
    ):
        if ids:
            found.append(Violation(name, len(ids), [str(i) for i in ids[:10]]))
    return found


async def count_recorded_violations(session: AsyncSession) -> int:
    """Open violations: owners breaking hard rules that were reported and await repair."""
    return len((await session.scalars(_OPEN_VIOLATIONS)).all())
