"""Realistic demo data: four tiers, managers with skills, customers placed within capacity."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.assignments.repository import move_customers
from app.db.models import Customer, Manager, Tier

DEMO_TIERS = [
    ("strategic", "Strategic", 1, 8, 4, "Top accounts by value; principal and senior managers."),
    ("key", "Key", 2, 4, 3, "Important accounts with growth potential."),
    ("standard", "Standard", 3, 2, 2, "Regular accounts."),
    ("long_tail", "Long tail", 4, 1, 1, "Small accounts, often handled in volume."),
]
REGIONS = ["north", "east", "south", "west", "central"]
LANGUAGES = ["zh", "en", "ja", "de", "es"]
INDUSTRIES = ["manufacturing", "retail", "finance", "healthcare", "logistics", "software"]
SURNAMES = ["Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Garcia", "Smith", "Sato", "Müller"]
GIVEN = ["Wei", "Na", "Jing", "Lei", "Min", "Anna", "Tom", "Yuki", "Lena", "Carlos", "Mei"]
COMPANY_WORDS = ["Precision", "Harbor", "Summit", "Golden", "Blue River", "Pacific", "Orient"]
COMPANY_KINDS = ["Parts", "Trading", "Logistics", "Health", "Software", "Retail", "Capital"]

_BATCH = 5_000


async def database_is_empty(session: AsyncSession) -> bool:
    """No tier, manager or customer yet."""
    counts = [
        await session.scalar(select(func.count()).select_from(model))
        for model in (Tier, Manager, Customer)
    ]
    return not any(counts)


async def seed_demo(
    session: AsyncSession,
    *,
    customers: int,
    managers: int,
    seed: int = 7,
    progress: Callable[[int], None] | None = None,
    history: bool = True,
) -> dict[str, int]:
    """Insert demo tiers, managers and customers; about 90 % of customers get an owner whose
    level and capacity fit, the rest wait in the pool. Set-based inserts in batches. With
    ``history`` the book also gets a past (``seed_history``), so reports show something."""
    rng = random.Random(seed)
    for code, name, rank, weight, level, description in DEMO_TIERS:
        await session.execute(
            text(
                "INSERT INTO tiers (code, name, rank, weight, min_manager_level, description) "
                "VALUES (:code, :name, :rank, :weight, :level, :description) "
                "ON CONFLICT (code) DO NOTHING"
            ),
            {
                "code": code,
                "name": name,
                "rank": rank,
                "weight": weight,
                "level": level,
                "description": description,
            },
        )
    tier_mix = [("strategic", 0.05), ("key", 0.15), ("standard", 0.40), ("long_tail", 0.40)]
    weights = {code: weight for code, _, _, weight, _, _ in DEMO_TIERS}
    min_level = {code: level for code, _, _, _, level, _ in DEMO_TIERS}
    mean_weight = sum(weights[c] * share for c, share in tier_mix)
    base_capacity = max(8, int(customers * mean_weight / max(managers, 1) / 0.8))

    # CRM ids (demo-m-0001, demo-c-000001, …), so an export of the demo book imports again
    # (upsert by external_ref); a second seed numbers on after the first.
    first_manager, first_customer = (
        await session.execute(
            text(
                "SELECT (SELECT count(*) FROM managers WHERE external_ref LIKE 'demo-m-%'), "
                "(SELECT count(*) FROM customers WHERE external_ref LIKE 'demo-c-%')"
            )
        )
    ).one()

    now = datetime.now(UTC)
    hired = now - timedelta(days=730)  # before any demo customer (assigned 120–720 days ago)
    staff: list[dict[str, Any]] = []
    for i in range(managers):
        region = REGIONS[i % len(REGIONS)]
        name = f"{rng.choice(GIVEN)} {rng.choice(SURNAMES)}"
        staff.append(
            {
                "id": uuid.uuid4(),
                "external_ref": f"demo-m-{first_manager + i + 1:04d}",
                "name": name,
                "email": f"{name.lower().replace(' ', '.')}.{i}@example.com",
                "level": rng.choice([1, 2, 2, 3, 3, 3, 4, 4, 5]),
                "capacity": int(base_capacity * rng.uniform(0.6, 1.4)),
                "region": region,
                "languages": sorted({"zh", rng.choice(LANGUAGES)}),
                "industries": sorted(rng.sample(INDUSTRIES, 2)),
                "team": f"{region}-{'enterprise' if i % 3 == 0 else 'growth'}",
                "created_at": hired,
                "updated_at": hired,
            }
        )
    if staff:
        await session.execute(insert(Manager), staff)
    load = {m["id"]: 0 for m in staff}
    by_level = {lvl: [m for m in staff if m["level"] >= lvl] for lvl in range(1, 6)}
    placed = 0
    for start in range(0, customers, _BATCH):
        batch = range(start, min(start + _BATCH, customers))
        rows: dict[str, list[Any]] = {
            k: []
            for k in (
                "id",
                "external_ref",
                "name",
                "tier",
                "region",
                "language",
                "industry",
                "value",
                "satisfaction",
            )
        }
        owners: list[uuid.UUID | None] = []
        for i in batch:
            tier = rng.choices([c for c, _ in tier_mix], [s for _, s in tier_mix])[0]
            region = rng.choice(REGIONS)
            rows["id"].append(uuid.uuid4())
            rows["external_ref"].append(f"demo-c-{first_customer + i + 1:06d}")
            rows["name"].append(
                f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_KINDS)} {i + 1:06d}"
            )
            rows["tier"].append(tier)
            rows["region"].append(region)
            rows["language"].append(rng.choice(["zh", "zh", "zh", "en", "ja"]))
            rows["industry"].append(rng.choice(INDUSTRIES))
            rows["value"].append(Decimal(f"{weights[tier] * rng.uniform(20_000, 90_000):.2f}"))
            rows["satisfaction"].append(Decimal(f"{rng.uniform(5.5, 9.8):.1f}"))
            owner = None
            if rng.random() < 0.9:
                candidates = by_level[min_level[tier]]
                for _ in range(4):
                    if not candidates:
                        break
                    m = rng.choice(candidates)
                    if load[m["id"]] + weights[tier] <= m["capacity"]:
                        load[m["id"]] += weights[tier]
                        owner = m["id"]
                        break
            owners.append(owner)
        # Demo books have history: each batch was created and assigned months ago, so the
        # stability guard (no move within 90 days) does not freeze a fresh demo.
        since = now - timedelta(days=rng.randint(120, 720))
        await session.execute(
            text(
                "INSERT INTO customers (id, external_ref, name, tier_code, region, language, "
                "industry, annual_value, satisfaction, created_at, updated_at) "
                "SELECT u.*, CAST(:since AS timestamptz), CAST(:since AS timestamptz) "
                "FROM unnest(CAST(:id AS uuid[]), CAST(:external_ref AS text[]), "
                "CAST(:name AS text[]), CAST(:tier AS text[]), CAST(:region AS text[]), "
                "CAST(:language AS text[]), CAST(:industry AS text[]), "
                "CAST(:value AS numeric[]), CAST(:satisfaction AS numeric[])) AS u"
            ),
            {**rows, "since": since},
        )
        assigned = [(c, m) for c, m in zip(rows["id"], owners, strict=True) if m is not None]
        placed += await move_customers(
            session,
            customer_ids=[c for c, _ in assigned],
            manager_ids=[m for _, m in assigned],
            reason="seed",
            actor="seed",
            at=since,
        )
        if progress:
            progress(len(batch))
    if history:
        await seed_history(session, seed=seed, now=now)
    return {
        "tiers": len(DEMO_TIERS),
        "managers": managers,
        "customers": customers,
        "assigned": placed,
    }


# A year of history, each step one set-based statement. Swapping the owners of two customers
# of the same tier keeps every workload and eligibility as it was.
_PAST_SWAPS = """
CREATE TEMP TABLE seed_moves ON COMMIT DROP AS
WITH owned AS (
    SELECT id, manager_id, tier_code,
           row_number() OVER (PARTITION BY tier_code ORDER BY md5(id::text || :seed)) AS n
      FROM customers WHERE manager_id IS NOT NULL AND status = 'active'),
pairs AS (
    SELECT a.id AS first, b.id AS second, a.manager_id AS first_owner,
           b.manager_id AS second_owner,
           CAST(:now AS timestamptz)
             - make_interval(days => 10 + (hashtext(a.id::text || :seed) & 2147483647) % 100)
             AS at,
           CASE WHEN a.n % 4 = 1 THEN 'manual' ELSE 'rebalance' END AS reason
      FROM owned AS a JOIN owned AS b ON b.tier_code = a.tier_code AND b.n = a.n + 1
     WHERE a.n % 12 = 1 AND a.manager_id <> b.manager_id)
SELECT first AS customer_id, second_owner AS manager_id, at, reason FROM pairs
UNION ALL
SELECT second, first_owner, at, reason FROM pairs
"""
_CLOSE_SWAPPED = """
UPDATE assignments AS a SET ended_at = m.at
  FROM seed_moves AS m WHERE a.customer_id = m.customer_id AND a.ended_at IS NULL
"""
_OPEN_SWAPPED = """
INSERT INTO assignments (customer_id, manager_id, started_at, reason, actor)
SELECT customer_id, manager_id, at, reason, 'seed' FROM seed_moves
"""
_OWN_SWAPPED = """
UPDATE customers AS c SET manager_id = m.manager_id, owner_since = m.at, updated_at = m.at
  FROM seed_moves AS m WHERE c.id = m.customer_id
"""
_PAST_CHURN = """
UPDATE customers AS c
   SET status = 'churned',
       churned_at = c.owner_since + (CAST(:now AS timestamptz) - c.owner_since)
                    * (((hashtext(c.id::text || :seed || 'churn') & 2147483647) % 1000) / 1000.0),
       updated_at = CAST(:now AS timestamptz)
 WHERE c.manager_id IS NOT NULL AND c.status = 'active'
   AND (hashtext(c.id::text || :seed || 'churned?') & 2147483647) % 100 < 4
"""
# Quarterly surveys over the last year drifting around each customer's score; churned
# customers answer none after they left.
_SATISFACTION_SERIES = """
INSERT INTO satisfaction_scores (customer_id, score, recorded_at, source)
SELECT c.id,
       round(least(10, greatest(0, c.satisfaction - 1.2 + k * 0.3
             + ((hashtext(c.id::text || k || :seed) & 2147483647) % 100) / 100.0)), 1),
       s.at, 'survey'
  FROM customers AS c
 CROSS JOIN generate_series(0, 3) AS k
 CROSS JOIN LATERAL (
     SELECT CAST(:now AS timestamptz)
            - make_interval(days => 365 - k * 90
                                    - ((hashtext(c.id::text || k) & 2147483647) % 60)) AS at
 ) AS s
 WHERE c.satisfaction IS NOT NULL AND s.at >= c.created_at
   AND (c.churned_at IS NULL OR s.at < c.churned_at)
"""
_CURRENT_SATISFACTION = """
UPDATE customers AS c SET satisfaction = l.score
  FROM (SELECT DISTINCT ON (customer_id) customer_id, score FROM satisfaction_scores
         ORDER BY customer_id, recorded_at DESC, id DESC) AS l
 WHERE l.customer_id = c.id
"""
# Quarterly invoices of about a quarter of the annual value, in the customer's currency.
_REVENUE = """
INSERT INTO revenue_events (customer_id, amount, currency, occurred_at, source, external_id)
SELECT c.id,
       round(c.annual_value / 4
             * (0.8 + ((hashtext(c.id::text || k || 'r') & 2147483647) % 40) / 100.0), 2),
       CASE WHEN c.language = 'zh' THEN 'CNY' ELSE 'USD' END,
       s.at, 'billing', 'seed-' || c.id || '-' || k
  FROM customers AS c
 CROSS JOIN generate_series(0, 3) AS k
 CROSS JOIN LATERAL (
     SELECT CAST(:now AS timestamptz)
            - make_interval(days => 350 - k * 90
                                    - ((hashtext(c.id::text || k) & 2147483647) % 20)) AS at
 ) AS s
 WHERE c.annual_value IS NOT NULL AND s.at >= c.created_at
   AND (c.churned_at IS NULL OR s.at < c.churned_at)
"""


async def seed_history(session: AsyncSession, *, seed: int, now: datetime) -> None:
    """Give the demo book a past: some owners swapped 10–110 days ago (manual and rebalance
    moves in the ledger), about 4 % of owned customers churned since they were assigned,
    quarterly satisfaction surveys and quarterly revenue over the last year."""
    params = {"seed": str(seed), "now": now}
    for statement in (
        _PAST_SWAPS,
        _CLOSE_SWAPPED,
        _OPEN_SWAPPED,
        _OWN_SWAPPED,
        "DROP TABLE seed_moves",
        _PAST_CHURN,
        _SATISFACTION_SERIES,
        _CURRENT_SATISFACTION,
        _REVENUE,
    ):
        await session.execute(text(statement), params)
