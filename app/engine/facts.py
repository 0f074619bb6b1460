"""Facts: the plain, frozen data the engine decides over.

The service reads the database into these and hands them to the engine; nothing here knows
about storage or HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from app.vocabulary import ManagerStatus

MANAGER_STATUSES = frozenset(ManagerStatus)


class EngineError(ValueError):
    """Bad input to the engine (unknown tier, missing successor, inconsistent columns...)."""


@dataclass(frozen=True, slots=True)
class Tier:
    """A customer segment: rank 1 is the most important; weight is workload per customer."""

    code: str
    rank: int
    weight: int
    min_manager_level: int

    def __post_init__(self) -> None:
        if self.weight <= 0:
            raise EngineError(f"tier {self.code!r}: weight must be a positive integer")


@dataclass(frozen=True, slots=True)
class Manager:
    """An account manager; `workload` includes every customer they currently own.

    `absent`: on an absence at the moment the service plans for (it reads the calendar and
    the clock; the engine never does), so the manager takes no new customers.
    `intake_room`: how many more new customers the manager may receive under their intake
    caps (the service counts it from the ledger); None: no cap.
    `tier_intake`: (tier code, new customers of that tier received in the last 24 hours, in
    the last 7 days), for the tiers the rule set caps (`RuleSet.placement.tier_caps`).
    `rotation_weight`: the manager's share in `weighted_round_robin` (2 takes twice as many).
    `off_hours`: outside the manager's working hours at the moment planned for (the service
    sets it only when the rule set asks for managers available now).
    """

    id: UUID
    level: int
    capacity: int
    workload: int
    status: str = "active"
    accepting_new: bool = True
    region: str | None = None
    languages: tuple[str, ...] = ()
    industries: tuple[str, ...] = ()
    team: str | None = None
    absent: bool = False
    intake_room: int | None = None
    tier_intake: tuple[tuple[str, int, int], ...] = ()
    rotation_weight: int = 1
    off_hours: bool = False

    def __post_init__(self) -> None:
        if self.rotation_weight < 1:
            raise EngineError(f"manager {self.id}: rotation_weight must be at least 1")
        if self.status not in MANAGER_STATUSES:
            raise EngineError(f"manager {self.id}: unknown status {self.status!r}")
        if self.capacity < 0:
            raise EngineError(f"manager {self.id}: capacity must not be negative")


@dataclass(frozen=True, slots=True)
class FormerOwner:
    """A manager who owned the customer before, until `ended_at`."""

    manager_id: UUID
    ended_at: datetime


@dataclass(frozen=True, slots=True)
class Customer:
    """A customer to place; `manager_id` is the current owner (None: in the pool)."""

    id: UUID
    tier: str
    region: str | None = None
    language: str | None = None
    industry: str | None = None
    annual_value: float | None = None
    satisfaction: float | None = None
    pinned: bool = False
    manager_id: UUID | None = None
    former_owners: tuple[FormerOwner, ...] = ()
    last_moved_at: datetime | None = None
