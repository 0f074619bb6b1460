"""Small factories shared by the engine tests."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from app.engine import Customer, Manager, PlanOptions, Tier

NOW = datetime(2025, 6, 1, tzinfo=UTC)
TIERS = [
    Tier("strategic", 1, 8, 4),
    Tier("key", 2, 4, 3),
    Tier("standard", 3, 2, 2),
    Tier("long_tail", 4, 1, 1),
]


def mid(i: int) -> UUID:
    """Manager ids sort by i."""
    return UUID(int=0x1000 + i)


def cid(i: int) -> UUID:
    """Customer ids sort by i."""
    return UUID(int=0x100000 + i)


def manager(i: int, **kw) -> Manager:
    kw.setdefault("level", 5)
    kw.setdefault("capacity", 100)
    kw.setdefault("workload", 0)
    return Manager(id=mid(i), **kw)


def customer(i: int, tier: str = "standard", **kw) -> Customer:
    return Customer(id=cid(i), tier=tier, **kw)


def options(**kw) -> PlanOptions:
    kw.setdefault("now", NOW)
    return PlanOptions(**kw)
