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
) -> dict[str, int]:
    """Insert demo tiers, managers and customers; about 90 % of customers get an owner whose
    level and capacity fit, the rest wait in the pool. Set-based inserts in batches."""
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

    now = datetime.now(UTC)
    hired = now - timedelta(days=730)  # before any demo customer (assigned 120–720 days ago)
    staff: list[dict[str, Any]] = []
    for i in range(managers):
        region = REGIONS[i % len(REGIONS)]
        name = f"{rng.choice(GIVEN)} {rng.choice(SURNAMES)}"
        staff.append(
            {
                "id": uuid.uuid4(),
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
                "INSERT INTO customers (id, name, tier_code, region, language, industry, "
                "annual_value, satisfaction, created_at, updated_at) "
                "SELECT u.*, CAST(:since AS timestamptz), CAST(:since AS timestamptz) "
                "FROM unnest(CAST(:id AS uuid[]), "
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
    return {
        "tiers": len(DEMO_TIERS),
        "managers": managers,
        "customers": customers,
        "assigned": placed,
    }
