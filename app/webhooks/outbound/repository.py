"""SQL for subscriptions, the delivery log and the dispatcher's set-based claim and record."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import RowMapping, delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import OutboundEvent, WebhookAttempt, WebhookDelivery, WebhookSubscription
from app.db.rows import rows_as

_S = WebhookSubscription
_PUBLIC = [c for c in _S.__table__.c if c.name not in ("secret", "previous_secret")]
_D = WebhookDelivery
_E = OutboundEvent
_DELIVERY_COLUMNS = [
    *_D.__table__.c,
    _E.type.label("event_type"),
    _E.customer_id,
]


async def get(session: AsyncSession, subscription_id: uuid.UUID) -> RowMapping | None:
    """One subscription row, secrets included."""
    statement = select(*_S.__table__.c).where(_S.id == subscription_id)
    return (await session.execute(statement)).mappings().first()


async def insert_subscription(session: AsyncSession, values: dict[str, Any]) -> RowMapping:
    """Insert a subscription; the whole row."""
    statement = insert(_S).values(**values).returning(*_S.__table__.c)
    return (await session.execute(statement)).mappings().one()


async def list_page(
    session: AsyncSession, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[RowMapping]:
    """Up to ``limit`` subscriptions (without secrets) after ``after``, oldest first."""
    statement = select(*_PUBLIC).order_by(_S.created_at, _S.id).limit(limit)
    if after is not None:
        statement = statement.where(func.row(_S.created_at, _S.id) > func.row(*after))
    return list((await session.execute(statement)).mappings())


async def update_subscription(
    session: AsyncSession, subscription_id: uuid.UUID, values: dict[str, Any]
) -> None:
    """Set some of a subscription's fields."""
    await session.execute(
        update(_S).where(_S.id == subscription_id).values(**values, updated_at=datetime.now(UTC))
    )


async def delete_subscription(session: AsyncSession, subscription_id: uuid.UUID) -> None:
    """Delete a subscription (its deliveries go with it)."""
    await session.execute(
        delete(_S).where(_S.id == subscription_id).execution_options(synchronize_session=False)
    )


async def list_deliveries(
    session: AsyncSession,
    *,
    before_id: int | None,
    limit: int,
    subscription_id: uuid.UUID | None,
    status: str | None,
    event_type: str | None,
    customer_id: uuid.UUID | None,
) -> list[RowMapping]:
    """Up to ``limit`` deliveries with their event's type and customer, newest first."""
    statement = (
        select(*_DELIVERY_COLUMNS)
        .join(_E, _E.id == _D.event_id)
        .order_by(_D.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        statement = statement.where(_D.id < before_id)
    if subscription_id is not None:
        statement = statement.where(_D.subscription_id == subscription_id)
    if status is not None:
        statement = statement.where(_D.status == status)
    if event_type is not None:
        statement = statement.where(_E.type == event_type)
    if customer_id is not None:
        statement = statement.where(_E.customer_id == customer_id)
    return list((await session.execute(statement)).mappings())


async def get_delivery(session: AsyncSession, delivery_id: int) -> RowMapping | None:
    """One delivery with its event's type, customer and payload."""
    statement = (
        select(*_DELIVERY_COLUMNS, _E.payload)
        .join(_E, _E.id == _D.event_id)
        .where(_D.id == delivery_id)
    )
    return (await session.execute(statement)).mappings().first()


async def attempts(session: AsyncSession, delivery_id: int) -> list[RowMapping]:
    """Every attempt of a delivery, in order."""
    statement = (
        select(*WebhookAttempt.__table__.c)
        .where(WebhookAttempt.delivery_id == delivery_id)
        .order_by(WebhookAttempt.id)
    )
    return list((await session.execute(statement)).mappings())


async def lock_delivery(session: AsyncSession, delivery_id: int) -> uuid.UUID | None:
    """Lock a delivery; its subscription's id (None: no such delivery)."""
    return await session.scalar(
        select(_D.subscription_id).where(_D.id == delivery_id).with_for_update()
    )


async def subscription_enabled(session: AsyncSession, subscription_id: uuid.UUID) -> bool:
    """Whether the subscription exists and is enabled."""
    return bool(await session.scalar(select(_S.enabled).where(_S.id == subscription_id)))


async def make_due_now(session: AsyncSession, delivery_id: int) -> None:
    """Make a delivery pending and due now (a redelivery)."""
    await session.execute(
        update(_D)
        .where(_D.id == delivery_id)
        .values(status="pending", next_attempt_at=datetime.now(UTC), delivered_at=None)
    )


@dataclass(frozen=True, slots=True)
class ClaimedRow:
    """A leased delivery with what sending it needs."""

    id: int
    event_id: uuid.UUID
    subscription_id: uuid.UUID
    attempts: int
    url: str
    secret: str = field(repr=False)
    previous_secret: str | None = field(repr=False)
    previous_secret_expires_at: datetime | None
    body: str


_CLAIM = text(
    """
    WITH due AS MATERIALIZED (
        SELECT d.id
          FROM webhook_deliveries AS d
          JOIN webhook_subscriptions AS s ON s.id = d.subscription_id
         WHERE d.status = 'pending' AND d.next_attempt_at <= :now AND s.enabled
           AND (d.ordering_key IS NULL OR NOT EXISTS (
                SELECT 1 FROM webhook_deliveries AS p
                 WHERE p.subscription_id = d.subscription_id
                   AND p.ordering_key = d.ordering_key
                   AND p.status = 'pending' AND p.id < d.id))
         ORDER BY d.next_attempt_at, d.id
         LIMIT :limit
           FOR UPDATE OF d SKIP LOCKED
    )
    UPDATE webhook_deliveries AS d
       SET next_attempt_at = :lease_until, attempts = d.attempts + 1, last_attempt_at = :now
      FROM due, webhook_events AS e, webhook_subscriptions AS s
     WHERE d.id = due.id AND e.id = d.event_id AND s.id = d.subscription_id
    RETURNING d.id, d.event_id, d.subscription_id, d.attempts, s.url, s.secret,
              s.previous_secret, s.previous_secret_expires_at, e.payload::text AS body
    """
)

_RECORD = text(
    """
    UPDATE webhook_deliveries AS d
       SET status = r.status, next_attempt_at = r.next_attempt_at,
           last_status_code = r.status_code, last_error = r.error,
           last_latency_ms = r.latency_ms, delivered_at = r.delivered_at
      FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS text[]),
                  CAST(:next AS timestamptz[]), CAST(:codes AS int[]), CAST(:errors AS text[]),
                  CAST(:latencies AS int[]), CAST(:delivered AS timestamptz[]))
           AS r(id, status, next_attempt_at, status_code, error, latency_ms, delivered_at)
     WHERE d.id = r.id AND d.status = 'pending'
    """
)
_LOG_ATTEMPTS = text(
    """
    INSERT INTO webhook_attempts (delivery_id, attempted_at, status_code, latency_ms, error)
    SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:at AS timestamptz[]),
                         CAST(:codes AS int[]), CAST(:latencies AS int[]),
                         CAST(:errors AS text[]))
    """
)
_DISABLE = text(
    """
    UPDATE webhook_subscriptions
       SET enabled = false, disabled_reason = :reason, updated_at = :at
     WHERE id = ANY (CAST(:ids AS uuid[])) AND enabled
    """
)
_NEXT_DUE = text(
    """
    SELECT min(d.next_attempt_at)
      FROM webhook_deliveries AS d
      JOIN webhook_subscriptions AS s ON s.id = d.subscription_id AND s.enabled
     WHERE d.status = 'pending' AND d.next_attempt_at > :now
       AND (d.ordering_key IS NULL OR NOT EXISTS (
            SELECT 1 FROM webhook_deliveries AS p
             WHERE p.subscription_id = d.subscription_id AND p.ordering_key = d.ordering_key
               AND p.status = 'pending' AND p.id < d.id))
    """
)


async def claim_due(
    session: AsyncSession, *, now: datetime, limit: int, lease_until: datetime
) -> list[ClaimedRow]:
    """Lease up to ``limit`` due deliveries (head of each customer's queue only)."""
    result = await session.execute(_CLAIM, {"now": now, "limit": limit, "lease_until": lease_until})
    return rows_as(ClaimedRow, result.mappings())


async def record_attempts(session: AsyncSession, columns: dict[str, list[Any]]) -> None:
    """Move each delivery on from its attempt, set-based (parallel arrays: ``ids``,
    ``statuses``, ``next``, ``codes``, ``errors``, ``latencies``, ``delivered``)."""
    await session.execute(_RECORD, columns)


async def log_attempts(session: AsyncSession, columns: dict[str, list[Any]]) -> None:
    """Append the attempts to the log, set-based (parallel arrays: ``ids``, ``at``,
    ``codes``, ``latencies``, ``errors``)."""
    await session.execute(_LOG_ATTEMPTS, columns)


async def disable_subscriptions(
    session: AsyncSession, ids: Sequence[uuid.UUID], *, reason: str, at: datetime
) -> None:
    """Disable the enabled subscriptions among ``ids``."""
    await session.execute(_DISABLE, {"ids": list(ids), "reason": reason, "at": at})


async def next_due(session: AsyncSession, *, now: datetime) -> datetime | None:
    """When the earliest delivery that is not due yet (and not waiting behind another) is."""
    return await session.scalar(_NEXT_DUE, {"now": now})
