"""Every set of states and kinds Baton stores, defined once.

The table models build their CHECK constraints from these, the API schemas their enums, raw SQL
its ``IN (...)`` lists, and the engine its checks. Constants only, standard library only (the
engine imports this module). A test compares each set with the CHECK constraint of the migrated
database, so a migration and this module cannot drift apart.
"""

from __future__ import annotations

from enum import StrEnum


class ManagerStatus(StrEnum):
    ACTIVE = "active"
    ON_LEAVE = "on_leave"
    DEPARTING = "departing"
    DEPARTED = "departed"


class CustomerStatus(StrEnum):
    ACTIVE = "active"
    CHURNED = "churned"


class AssignmentReason(StrEnum):
    """Why an ownership period of the ledger started (or ended)."""

    MANUAL = "manual"
    AUTO = "auto"
    REBALANCE = "rebalance"
    HANDOVER = "handover"
    INTERIM = "interim"
    COVER = "cover"
    COVER_RETURN = "cover_return"
    REFUSAL = "refusal"
    ROLLBACK = "rollback"
    WEBHOOK = "webhook"
    IMPORT = "import"
    SEED = "seed"
    REPAIR = "repair"
    REDIVISION = "redivision"
    CLAIM = "claim"
    RECLAIMED_INACTIVE = "reclaimed_inactive"
    FIRST_TOUCH_MISSED = "first_touch_missed"


INTAKE_REASONS: tuple[AssignmentReason, ...] = (
    AssignmentReason.AUTO,
    AssignmentReason.MANUAL,
    AssignmentReason.IMPORT,
    AssignmentReason.WEBHOOK,
    AssignmentReason.CLAIM,
    AssignmentReason.FIRST_TOUCH_MISSED,
)
"""Ledger reasons that count as a manager *receiving* a new customer for the intake caps;
handovers, covers, rebalances, repairs and re-divisions do not (handovers and covers do when
the rule set's ``placement.intake_counts_handovers`` says so: ``HANDOVER_INTAKE_REASONS``)."""

HANDOVER_INTAKE_REASONS: tuple[AssignmentReason, ...] = (
    AssignmentReason.HANDOVER,
    AssignmentReason.INTERIM,
    AssignmentReason.COVER,
)
"""Ledger reasons that count for the intake caps only with ``intake_counts_handovers``."""


class AbsenceKind(StrEnum):
    LEAVE = "leave"
    SICK = "sick"
    OUT_OF_OFFICE = "out_of_office"
    TRAINING = "training"
    OTHER = "other"


class AbsenceCover(StrEnum):
    NONE = "none"
    INTERIM = "interim"
    AUTO = "auto"


class ActivityKind(StrEnum):
    CALL = "call"
    EMAIL = "email"
    MEETING = "meeting"
    VISIT = "visit"
    MESSAGE = "message"
    NOTE = "note"
    OTHER = "other"


class Strategy(StrEnum):
    """How the engine places customers."""

    BALANCED = "balanced"
    OPTIMAL = "optimal"
    SUCCESSOR = "successor"
    ROUND_ROBIN = "round_robin"
    WEIGHTED_ROUND_ROBIN = "weighted_round_robin"


HANDOVER_STRATEGIES: tuple[Strategy, ...] = (
    Strategy.BALANCED,
    Strategy.OPTIMAL,
    Strategy.SUCCESSOR,
    Strategy.ROUND_ROBIN,
)
"""The strategies a handover places its customers with (rotation with memory is for intake)."""

SOURCE_STRATEGIES: tuple[Strategy, ...] = (
    Strategy.BALANCED,
    Strategy.OPTIMAL,
    Strategy.ROUND_ROBIN,
)
"""The strategies a webhook source may place new customers with (no successor to name)."""


class FirstTouchAction(StrEnum):
    """What a reclaim policy does when an owner misses the first touch."""

    ESCALATE = "escalate"
    REPLACE = "replace"


class HandoverReason(StrEnum):
    DEPARTURE = "departure"
    LEAVE = "leave"
    ROLE_CHANGE = "role_change"
    PERFORMANCE = "performance"
    REBALANCE = "rebalance"


class HandoverState(StrEnum):
    DRAFT = "draft"
    PLANNED = "planned"
    APPROVED = "approved"
    EXECUTING = "executing"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    ROLLED_BACK = "rolled_back"


OPEN_HANDOVER_STATES: tuple[HandoverState, ...] = (
    HandoverState.DRAFT,
    HandoverState.PLANNED,
    HandoverState.APPROVED,
    HandoverState.EXECUTING,
)
"""A handover in one of these states still holds its manager's customers."""


class HandoverItemStatus(StrEnum):
    PENDING = "pending"
    PROPOSED = "proposed"
    OVERRIDDEN = "overridden"
    UNPLACED = "unplaced"
    MOVED = "moved"
    POOLED = "pooled"
    SKIPPED = "skipped"
    REFUSED = "refused"
    RESTORED = "restored"
    RETURNED = "returned"


class NotificationStatus(StrEnum):
    """A handover notification (to a customer or an owner) and a handover item's notice."""

    PENDING = "pending"
    SENT = "sent"
    NOT_SENT = "not_sent"


class HandoverTask(StrEnum):
    """The checklist of a handover."""

    CUSTOMER_LIST_EXPORTED = "customer_list_exported"
    PROJECTS_REVIEWED = "projects_reviewed"
    CONTRACTS_FINANCES_REVIEWED = "contracts_finances_reviewed"
    CUSTOMERS_NOTIFIED = "customers_notified"
    TEAM_INFORMED = "team_informed"
    SUCCESSORS_TRAINED = "successors_trained"


class EmailKind(StrEnum):
    CUSTOMER_NOTIFICATION = "customer_notification"
    OWNER_BRIEFING = "owner_briefing"


class EmailStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class WebhookAdapter(StrEnum):
    STANDARD = "standard"
    HUBSPOT = "hubspot"
    GENERIC_HMAC = "generic-hmac"
    ZOHO = "zoho"


class TierChangeAction(StrEnum):
    """What an inbound tier change does: propose a re-placement or apply it."""

    PROPOSE = "propose"
    APPLY = "apply"


class InboundEventStatus(StrEnum):
    RECEIVED = "received"
    PROCESSED = "processed"
    FAILED = "failed"
    IGNORED = "ignored"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class Role(StrEnum):
    """``admin`` does everything; ``operator`` runs the portfolio (assign, handovers,
    customers, managers, tiers); ``viewer`` only reads; ``integration`` is for CRMs
    (customer/manager upserts and inbound webhooks)."""

    admin = "admin"
    operator = "operator"
    viewer = "viewer"
    integration = "integration"


class ScenarioState(StrEnum):
    DRAFT = "draft"
    ACTIVATED = "activated"
    ARCHIVED = "archived"


def sql_list(values: tuple[StrEnum, ...] | type[StrEnum]) -> str:
    """The values as a SQL list body for ``IN (...)``: ``'a', 'b'`` (the values are constants
    of this module, never input)."""
    return ", ".join(f"'{v.value}'" for v in values)
