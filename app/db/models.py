"""All table models. Relationships are not declared: queries are written explicitly."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    SmallInteger,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app import vocabulary as v
from app.db.base import Base


def _in(column: str, values: Iterable[StrEnum]) -> str:
    return f"{column} IN ({v.sql_list(tuple(values))})"


# Old names of two vocabulary sets, kept for the handover code that imports them from here.
HANDOVER_OPEN_STATES = v.OPEN_HANDOVER_STATES
HANDOVER_TASKS = tuple(v.HandoverTask)


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"), nullable=False)


class Tier(Timestamped, Base):
    __tablename__ = "tiers"
    __table_args__ = (
        CheckConstraint("weight > 0", name="weight_positive"),
        CheckConstraint("min_manager_level BETWEEN 1 AND 5", name="min_level_range"),
        CheckConstraint("rank >= 1", name="rank_positive"),
        CheckConstraint("code ~ '^[a-z0-9][a-z0-9_-]{0,63}$'", name="code_format"),
    )

    code: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    rank: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    weight: Mapped[int] = mapped_column(Integer, nullable=False)
    min_manager_level: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)


class Manager(Timestamped, Base):
    __tablename__ = "managers"
    __table_args__ = (
        CheckConstraint("level BETWEEN 1 AND 5", name="level_range"),
        CheckConstraint("capacity >= 0", name="capacity_non_negative"),
        CheckConstraint("max_new_per_day >= 0", name="max_new_per_day_non_negative"),
        CheckConstraint("max_new_per_week >= 0", name="max_new_per_week_non_negative"),
        CheckConstraint("rotation_weight BETWEEN 1 AND 1000", name="rotation_weight_range"),
        CheckConstraint(_in("status", v.ManagerStatus), name="status_valid"),
        Index("uq_managers_email_lower", func.lower(text("email")), unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    external_ref: Mapped[str | None] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    email: Mapped[str] = mapped_column(Text, nullable=False)
    level: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    capacity: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="active")
    accepting_new: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    region: Mapped[str | None] = mapped_column(Text)
    languages: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")
    industries: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")
    team: Mapped[str | None] = mapped_column(Text)
    # intake caps: new customers received in the last 24 hours / 7 days (ledger reasons in
    # app.vocabulary.INTAKE_REASONS); null means no cap
    max_new_per_day: Mapped[int | None] = mapped_column(Integer)
    max_new_per_week: Mapped[int | None] = mapped_column(Integer)
    # share in weighted round robin (2 receives twice as many as 1)
    rotation_weight: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    # IANA zone of the working hours (null: UTC); hours: [{days, start, end}] (null: always)
    time_zone: Mapped[str | None] = mapped_column(Text)
    working_hours: Mapped[list[dict[str, object]] | None] = mapped_column(JSONB(none_as_null=True))


class ManagerAbsence(Timestamped, Base):
    """A period a manager takes no new customers; cancelled absences are kept for the record."""

    __tablename__ = "manager_absences"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="period_valid"),
        CheckConstraint(_in("kind", v.AbsenceKind), name="kind_valid"),
        CheckConstraint(_in("cover", v.AbsenceCover), name="cover_valid"),
        CheckConstraint(
            "(cover = 'interim') = (interim_manager_id IS NOT NULL)", name="interim_named"
        ),
        Index("ix_manager_absences_manager", "manager_id", "starts_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    manager_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("managers.id", ondelete="CASCADE"), nullable=False
    )
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    cover: Mapped[str] = mapped_column(Text, nullable=False, server_default="none")
    interim_manager_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("managers.id", ondelete="RESTRICT")
    )
    # cover ``auto``: the leave handover that covers the absence (executed at the start,
    # customers returned at the end)
    cover_handover_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("handovers.id", ondelete="SET NULL")
    )
    note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(Text, nullable=False)
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Customer(Timestamped, Base):
    __tablename__ = "customers"
    __table_args__ = (
        CheckConstraint(_in("status", v.CustomerStatus), name="status_valid"),
        CheckConstraint("satisfaction BETWEEN 0 AND 10", name="satisfaction_range"),
        CheckConstraint("annual_value >= 0", name="annual_value_non_negative"),
        Index("ix_customers_manager_id", "manager_id", "id"),
        Index("ix_customers_tier_code", "tier_code", "id"),
        Index("ix_customers_pool", "id", postgresql_where=text("manager_id IS NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    external_ref: Mapped[str | None] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    tier_code: Mapped[str] = mapped_column(
        Text, ForeignKey("tiers.code", onupdate="CASCADE", ondelete="RESTRICT"), nullable=False
    )
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="active")
    region: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(Text)
    industry: Mapped[str | None] = mapped_column(Text)
    annual_value: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    satisfaction: Mapped[Decimal | None] = mapped_column(Numeric(4, 2))
    # References managers.id (ON DELETE RESTRICT), checked once per statement by triggers
    # rather than by a foreign key's per-row queries (migration 0017).
    manager_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    pinned: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    # When the current owner got the customer (the open ledger row's start), kept beside the
    # owner so the engine's stability guard needs no ledger join at a million customers.
    owner_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the customer became ``churned``; a row trigger keeps it (migration 0012).
    churned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The latest follow-up activity's instant (``customer_activities``), for the pool's
    # reclaim rules.
    last_activity_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the owner was last warned that the customer is due to return to the pool.
    reclaim_warned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the current owner's missed first touch was escalated.
    first_touch_missed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CustomerActivity(Base):
    """A follow-up with a customer (a call, a meeting…); ``external_id`` makes a re-sent one a
    no-op."""

    __tablename__ = "customer_activities"
    __table_args__ = (
        CheckConstraint(_in("kind", v.ActivityKind), name="kind_valid"),
        Index("ix_customer_activities_customer_at", "customer_id", "at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    customer_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("customers.id", ondelete="CASCADE"), nullable=False
    )
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    by_manager_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("managers.id", ondelete="SET NULL")
    )
    external_id: Mapped[str | None] = mapped_column(Text, unique=True)
    note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class ManagerLoad(Base):
    """Changes to how many active customers of each tier a manager owns: the workload's
    terms. Statement-level triggers on ``customers`` append one row per (manager, tier) a
    statement changed, in its transaction (migration 0008); the worker's sweep folds them into
    one row per (manager, tier). A workload is a sum over the manager's rows instead of a scan
    of the customers table. ``baton check`` compares the sums with a recount."""

    __tablename__ = "manager_loads"
    __table_args__ = (Index("ix_manager_loads_manager_tier", "manager_id", "tier_code"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    manager_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    tier_code: Mapped[str] = mapped_column(Text, nullable=False)
    customers: Mapped[int] = mapped_column(Integer, nullable=False)


class Assignment(Base):
    """One row of the append-only ownership ledger; ``ended_at IS NULL`` is the open row.

    Closing a period is an update in place (heap-only tuple): no index names ``ended_at`` or
    ``end_reason``, and pages keep 15 % free. One open period per customer is refused by the
    ledger's statement-level check (SQLSTATE 23505, ``uq_assignments_open_per_customer``;
    migration 0018), not by an index; the lock that check takes on an open period's customer
    also proves the customer exists (migration 0019)."""

    __tablename__ = "assignments"
    __table_args__ = (
        CheckConstraint("ended_at IS NULL OR ended_at >= started_at", name="period_ordered"),
        CheckConstraint(_in("reason", v.AssignmentReason), name="reason_valid"),
        CheckConstraint(
            "end_reason IS NULL OR " + _in("end_reason", v.AssignmentReason),
            name="end_reason_valid",
        ),
        Index("ix_assignments_customer_started", "customer_id", "started_at"),
        Index("ix_assignments_manager_started", "manager_id", "started_at"),
        Index("ix_assignments_started", "started_at"),
        {"postgresql_with": {"fillfactor": 85}},
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    # References customers.id and managers.id (ON DELETE RESTRICT), checked once per
    # statement by triggers rather than by foreign keys' per-row queries (migration 0017).
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    manager_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    actor: Mapped[str] = mapped_column(Text, nullable=False)
    handover_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    note: Mapped[str | None] = mapped_column(Text)
    # Why the period ended when the customer went to the pool rather than to another owner
    # (which opens a row with its own reason): ``reclaimed_inactive``.
    end_reason: Mapped[str | None] = mapped_column(Text)


class ReclaimPolicy(Timestamped, Base):
    """The public pool's rules for one tier: an owned customer without follow-up for
    ``inactive_days`` returns to the pool, after a warning ``warning_days`` before; the former
    owner may not claim it back for ``cooldown_days``; a manager claims at most
    ``daily_claim_cap`` customers in 24 hours (null: no cap)."""

    __tablename__ = "reclaim_policies"
    __table_args__ = (
        CheckConstraint("inactive_days > 0", name="inactive_days_positive"),
        CheckConstraint(
            "warning_days >= 0 AND warning_days < inactive_days", name="warning_days_range"
        ),
        CheckConstraint("cooldown_days >= 0", name="cooldown_days_non_negative"),
        CheckConstraint("daily_claim_cap >= 0", name="daily_claim_cap_non_negative"),
        CheckConstraint("first_touch_hours > 0", name="first_touch_hours_positive"),
        CheckConstraint(
            _in("first_touch_action", v.FirstTouchAction), name="first_touch_action_valid"
        ),
    )

    tier_code: Mapped[str] = mapped_column(
        Text,
        ForeignKey("tiers.code", onupdate="CASCADE", ondelete="CASCADE"),
        primary_key=True,
    )
    inactive_days: Mapped[int] = mapped_column(Integer, nullable=False)
    warning_days: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    cooldown_days: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    daily_claim_cap: Mapped[int | None] = mapped_column(Integer)
    # first-touch SLA: a customer given an owner (placed, claimed, handed over) with no
    # follow-up within this many hours is escalated (null: no SLA)
    first_touch_hours: Mapped[int | None] = mapped_column(Integer)
    # past the SLA: ``escalate`` (an event) or ``replace`` (also re-placed, owner excluded)
    first_touch_action: Mapped[str] = mapped_column(Text, nullable=False, server_default="escalate")


class OwnershipViolation(Base):
    """A customer whose current owner breaks a hard rule, from when it was detected until it
    was resolved (the customer moved, the rule or the facts changed back). At most one open
    row per customer; written by the change that caused it, in its transaction."""

    __tablename__ = "ownership_violations"
    __table_args__ = (
        Index(
            "uq_ownership_violations_open_per_customer",
            "customer_id",
            unique=True,
            postgresql_where=text("resolved_at IS NULL"),
        ),
        Index(
            "ix_ownership_violations_manager_open",
            "manager_id",
            postgresql_where=text("resolved_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("customers.id", ondelete="RESTRICT"), nullable=False
    )
    manager_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("managers.id", ondelete="RESTRICT"), nullable=False
    )
    rules: Mapped[list[dict[str, str]]] = mapped_column(JSONB, nullable=False)
    cause: Mapped[str] = mapped_column(Text, nullable=False)
    actor: Mapped[str | None] = mapped_column(Text)
    detected_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolution: Mapped[str | None] = mapped_column(Text)


class PlacementPlan(Base):
    """A reviewed dry run: what was asked and digests of every input the decision read, so
    applying its token applies exactly that plan or says what changed."""

    __tablename__ = "placement_plans"

    token: Mapped[str] = mapped_column(Text, primary_key=True)
    request: Mapped[dict[str, object]] = mapped_column(JSONB, nullable=False)
    digests: Mapped[dict[str, str]] = mapped_column(JSONB, nullable=False)
    rules_version: Mapped[int] = mapped_column(Integer, nullable=False)
    actor: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class RotationCursor(Base):
    """Where round robin stopped in each eligibility pool, so the turn continues across calls."""

    __tablename__ = "rotation_cursors"

    pool: Mapped[str] = mapped_column(Text, primary_key=True)
    last_manager_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class RotationCounter(Base):
    """Weighted round robin's memory: customers each manager received from a rotation pool
    in the period starting at ``period_start`` (a row of an earlier period counts as 0)."""

    __tablename__ = "rotation_counters"

    pool: Mapped[str] = mapped_column(Text, primary_key=True)
    manager_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("managers.id", ondelete="CASCADE"), primary_key=True
    )
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    received: Mapped[int] = mapped_column(Integer, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class RuleSetVersion(Base):
    """One version of the assignment engine's rule set; the newest is in force."""

    __tablename__ = "rule_sets"

    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    rules: Mapped[dict[str, object]] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    created_by: Mapped[str] = mapped_column(Text, nullable=False)
    note: Mapped[str | None] = mapped_column(Text)


class Handover(Base):
    """Moving a manager's portfolio (or part of it) through plan → approve → execute."""

    __tablename__ = "handovers"
    __table_args__ = (
        CheckConstraint(_in("reason", v.HandoverReason), name="reason_valid"),
        CheckConstraint(_in("strategy", v.HANDOVER_STRATEGIES), name="strategy_valid"),
        CheckConstraint(_in("state", v.HandoverState), name="state_valid"),
        CheckConstraint("strategy <> 'successor' OR successor_id IS NOT NULL", name="successor"),
        # a manager is in at most one open handover
        Index(
            "uq_handovers_open_per_manager",
            "from_manager_id",
            unique=True,
            postgresql_where=text(_in("state", v.OPEN_HANDOVER_STATES)),
        ),
        Index("ix_handovers_created", "created_at", "id"),
        Index("ix_handovers_due", "effective_at", postgresql_where=text("state = 'approved'")),
        Index(
            "ix_handovers_cover_due",
            "until",
            postgresql_where=text(
                "state = 'completed' AND until IS NOT NULL AND cover_returned_at IS NULL"
            ),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    from_manager_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("managers.id", ondelete="RESTRICT"), nullable=False
    )
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    strategy: Mapped[str] = mapped_column(Text, nullable=False)
    successor_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("managers.id", ondelete="RESTRICT")
    )
    interim_manager_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("managers.id", ondelete="RESTRICT")
    )
    interim_applied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(Text, nullable=False, server_default="draft")
    scope: Mapped[dict[str, object] | None] = mapped_column(JSONB)
    effective_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    notify_customers: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    force_transfer_limit: Mapped[bool] = mapped_column(
        Boolean, nullable=False, server_default="false"
    )
    prior_manager_status: Mapped[str] = mapped_column(Text, nullable=False)
    plan_metrics: Mapped[dict[str, object] | None] = mapped_column(JSONB)
    note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(Text, nullable=False)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cover_returned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"), nullable=False)


class HandoverItem(Base):
    """One customer of a handover: proposal, override, briefing, outcome, notification."""

    __tablename__ = "handover_items"
    __table_args__ = (
        CheckConstraint(_in("status", v.HandoverItemStatus), name="status_valid"),
        CheckConstraint(
            "notification_status IS NULL OR " + _in("notification_status", v.NotificationStatus),
            name="notification_status_valid",
        ),
        Index("ix_handover_items_customer", "customer_id"),
        Index(
            "ix_handover_items_refused_manager",
            "refused_manager_id",
            "refused_at",
            postgresql_where=text("refused_at IS NOT NULL"),
        ),
        Index(
            "ix_handover_items_notification_pending",
            "handover_id",
            postgresql_where=text("notification_status = 'pending'"),
        ),
    )

    handover_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("handovers.id", ondelete="CASCADE"), primary_key=True
    )
    customer_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("customers.id", ondelete="RESTRICT"), primary_key=True
    )
    original_manager_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="pending")
    proposed_manager_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    score: Mapped[float | None] = mapped_column(Numeric(12, 6))
    reasons: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")
    explanation: Mapped[dict[str, object] | None] = mapped_column(JSONB)
    override_manager_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    override_reason: Mapped[str | None] = mapped_column(Text)
    override_forced: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    override_by: Mapped[str | None] = mapped_column(Text)
    override_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    final_manager_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    moved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    briefing: Mapped[dict[str, object] | None] = mapped_column(JSONB)
    briefing_by: Mapped[str | None] = mapped_column(Text)
    briefing_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    notification_status: Mapped[str | None] = mapped_column(Text)
    notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # the outbound event carrying the notification; why it was not sent
    notification_event_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    notification_error: Mapped[str | None] = mapped_column(Text)
    refused_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    refused_manager_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    outcome_note: Mapped[str | None] = mapped_column(Text)


class HandoverOwnerNotification(Base):
    """The briefing sent to one new owner of a handover's customers, and whether it arrived."""

    __tablename__ = "handover_owner_notifications"
    __table_args__ = (
        CheckConstraint(_in("status", v.NotificationStatus), name="status_valid"),
        Index(
            "ix_handover_owner_notifications_pending",
            "handover_id",
            postgresql_where=text("status = 'pending'"),
        ),
    )

    handover_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("handovers.id", ondelete="CASCADE"), primary_key=True
    )
    manager_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    event_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="pending")
    error: Mapped[str | None] = mapped_column(Text)
    notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class HandoverEmail(Base):
    """A handover notification also sent by e-mail (when SMTP is configured), and its fate."""

    __tablename__ = "handover_emails"
    __table_args__ = (
        CheckConstraint(_in("kind", v.EmailKind), name="kind_valid"),
        CheckConstraint(_in("status", v.EmailStatus), name="status_valid"),
        Index(
            "ix_handover_emails_due", "next_attempt_at", postgresql_where=text("status = 'pending'")
        ),
        Index("ix_handover_emails_handover", "handover_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    handover_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("handovers.id", ondelete="CASCADE"), nullable=False
    )
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    customer_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    manager_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    recipients: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    subject: Mapped[str] = mapped_column(Text, nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class HandoverTask(Base):
    """One checklist task of a handover (seed 000 §3–4), with who did it and when."""

    __tablename__ = "handover_tasks"
    __table_args__ = (CheckConstraint(_in("task", v.HandoverTask), name="task_valid"),)

    handover_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("handovers.id", ondelete="CASCADE"), primary_key=True
    )
    task: Mapped[str] = mapped_column(Text, primary_key=True)
    done: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    done_by: Mapped[str | None] = mapped_column(Text)
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text)


class HandoverEvent(Base):
    """The audit trail of a handover: every state change, who made it and when."""

    __tablename__ = "handover_events"
    __table_args__ = (Index("ix_handover_events_handover", "handover_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    handover_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("handovers.id", ondelete="CASCADE"), nullable=False
    )
    from_state: Mapped[str | None] = mapped_column(Text)
    to_state: Mapped[str] = mapped_column(Text, nullable=False)
    action: Mapped[str] = mapped_column(Text, nullable=False)
    actor: Mapped[str] = mapped_column(Text, nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    detail: Mapped[dict[str, object] | None] = mapped_column(JSONB)


class SatisfactionScore(Base):
    """One satisfaction measurement of a customer (survey, CRM webhook); a time series."""

    __tablename__ = "satisfaction_scores"
    __table_args__ = (
        CheckConstraint("score BETWEEN 0 AND 10", name="score_range"),
        Index("ix_satisfaction_scores_customer_at", "customer_id", "recorded_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("customers.id", ondelete="CASCADE"), nullable=False
    )
    score: Mapped[Decimal] = mapped_column(Numeric(4, 2), nullable=False)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    source: Mapped[str] = mapped_column(Text, nullable=False, server_default="api")
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class RevenueEvent(Base):
    """Money a customer brought (a deal won, an invoice paid), attributed through the ledger to
    whoever owned the customer when it happened. ``(source, external_id)`` makes recording
    idempotent."""

    __tablename__ = "revenue_events"
    __table_args__ = (
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_code"),
        Index("ix_revenue_events_customer_at", "customer_id", "occurred_at"),
        Index("uq_revenue_events_source_external_id", "source", "external_id", unique=True),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("customers.id", ondelete="CASCADE"), nullable=False
    )
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2), nullable=False)
    currency: Mapped[str] = mapped_column(Text, nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    source: Mapped[str] = mapped_column(Text, nullable=False, server_default="api")
    external_id: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class HandoverFeedback(Base):
    """A team member's word on how a handover went (seed 000 §6): a score, a note, who, when."""

    __tablename__ = "handover_feedback"
    __table_args__ = (
        CheckConstraint("score BETWEEN 0 AND 10", name="score_range"),
        Index("ix_handover_feedback_handover", "handover_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    handover_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("handovers.id", ondelete="CASCADE"), nullable=False
    )
    score: Mapped[Decimal | None] = mapped_column(Numeric(4, 2))
    note: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class WebhookSource(Base):
    """A CRM allowed to post events to ``/v1/webhooks/inbound/{name}``, and how it signs them."""

    __tablename__ = "webhook_sources"
    __table_args__ = (
        CheckConstraint(_in("adapter", v.WebhookAdapter), name="adapter_valid"),
        CheckConstraint(_in("default_strategy", v.SOURCE_STRATEGIES), name="strategy_valid"),
        CheckConstraint(_in("tier_change_action", v.TierChangeAction), name="tier_action_valid"),
        CheckConstraint("name ~ '^[a-z0-9][a-z0-9_-]{0,63}$'", name="name_format"),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    name: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    adapter: Mapped[str] = mapped_column(Text, nullable=False)
    secret: Mapped[str] = mapped_column(Text, nullable=False)
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    signature_header: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    default_strategy: Mapped[str] = mapped_column(Text, nullable=False, server_default="balanced")
    auto_approve: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    tier_change_action: Mapped[str] = mapped_column(Text, nullable=False, server_default="propose")
    # which CRM field holds tier, status, owner, ... (null: the adapter's defaults)
    mapping: Mapped[dict[str, object] | None] = mapped_column(JSONB)
    channel_id: Mapped[str | None] = mapped_column(Text)  # Zoho: the notification channel
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class InboundEvent(Base):
    """The inbox: one event received from a source, stored raw before it is acknowledged."""

    __tablename__ = "webhook_inbound_events"
    __table_args__ = (
        CheckConstraint(_in("status", v.InboundEventStatus), name="status_valid"),
        Index("uq_webhook_inbound_events_source_event", "source_id", "event_id", unique=True),
        Index("ix_webhook_inbound_events_received", "received_at", "id"),
        Index(
            "ix_webhook_inbound_events_open",
            "received_at",
            postgresql_where=text("status = 'received'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    source_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("webhook_sources.id", ondelete="CASCADE"), nullable=False
    )
    event_id: Mapped[str] = mapped_column(Text, nullable=False)
    type: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="received")
    headers: Mapped[dict[str, object]] = mapped_column(JSONB, nullable=False)
    body: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, object] | None] = mapped_column(JSONB)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookSubscription(Base):
    """A subscriber: where Baton's events go, which types, and the secret that signs them."""

    __tablename__ = "webhook_subscriptions"
    __table_args__ = (
        Index("ix_webhook_subscriptions_created", "created_at", "id"),
        CheckConstraint("batch_size BETWEEN 1 AND 10000", name="batch_size_valid"),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    url: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    event_types: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    secret: Mapped[str] = mapped_column(Text, nullable=False)
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    # changes per ownership.changed.batch delivery
    batch_size: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1000")
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class OutboundEvent(Base):
    """The outbox: an event written in the same transaction as the change that caused it."""

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_created", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    type: Mapped[str] = mapped_column(Text, nullable=False)
    customer_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    correlation_id: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, object]] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class WebhookDelivery(Base):
    """One event to one subscription: the unit that is sent, retried and logged."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(_in("status", v.DeliveryStatus), name="status_valid"),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index(
            "ix_webhook_deliveries_order",
            "subscription_id",
            "ordering_key",
            "id",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_webhook_deliveries_event", "event_id"),
        Index("ix_webhook_deliveries_subscription", "subscription_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("webhook_events.id", ondelete="CASCADE"), nullable=False
    )
    subscription_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"),
        nullable=False,
    )
    ordering_key: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_latency_ms: Mapped[int | None] = mapped_column(Integer)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class WebhookAttempt(Base):
    """The delivery log: every HTTP attempt with its status code, latency and error."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery", "delivery_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False
    )
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer, nullable=False)
    error: Mapped[str | None] = mapped_column(Text)


class ApiKey(Base):
    """An API key: only a SHA-256 of the secret is stored, found by its public prefix."""

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint(_in("role", v.Role), name="role_valid"),
        Index(
            "uq_api_keys_active_name",
            "name",
            unique=True,
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    prefix: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    role: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    created_by: Mapped[str] = mapped_column(Text, nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class IdempotencyRecord(Base):
    """The stored response of a request sent with an ``Idempotency-Key``, per API key."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_expires_at", "expires_at"),)

    api_key_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    method: Mapped[str] = mapped_column(Text, nullable=False)
    path: Mapped[str] = mapped_column(Text, nullable=False)
    status_code: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    headers: Mapped[dict[str, object]] = mapped_column(JSONB, nullable=False)
    body: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class AuditEvent(Base):
    """Who (API key name) did what to which resource; written in the change's transaction."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_at", "at", "id"),
        Index("ix_audit_events_resource", "resource_type", "resource_id", "id"),
        Index("ix_audit_events_actor", "actor", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    actor: Mapped[str] = mapped_column(Text, nullable=False)
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    role: Mapped[str | None] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text, nullable=False)
    method: Mapped[str] = mapped_column(Text, nullable=False)
    path: Mapped[str] = mapped_column(Text, nullable=False)
    resource_type: Mapped[str | None] = mapped_column(Text)
    resource_id: Mapped[str | None] = mapped_column(Text)
    status_code: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    request_id: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, object] | None] = mapped_column(JSONB)


class Scenario(Timestamped, Base):
    """A draft re-division (rule set, manager, tier and customer changes) that changes nothing
    live until activated; its latest preview is kept with digests of the inputs it read and
    the moves it planned, so activation applies exactly that preview or refuses."""

    __tablename__ = "scenarios"
    __table_args__ = (
        CheckConstraint(_in("state", v.ScenarioState), name="state_valid"),
        Index("ix_scenarios_state", "state", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    name: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(Text, nullable=False, server_default="draft")
    changes: Mapped[dict[str, object]] = mapped_column(JSONB, nullable=False)
    created_by: Mapped[str] = mapped_column(Text, nullable=False)
    preview: Mapped[dict[str, object] | None] = mapped_column(JSONB)
    preview_options: Mapped[dict[str, object] | None] = mapped_column(JSONB)
    preview_digests: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    # The planned moves: 16-byte customer ids, then 16-byte new owner ids (zeros = the pool).
    preview_moves: Mapped[bytes | None] = mapped_column(LargeBinary)
    previewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    previewed_by: Mapped[str | None] = mapped_column(Text)
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    activated_by: Mapped[str | None] = mapped_column(Text)
    activation: Mapped[dict[str, object] | None] = mapped_column(JSONB)
