"""SQL for subscriptions and the delivery log (the dispatcher keeps its own set-based SQL)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import RowMapping, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import OutboundEvent, WebhookAttempt, WebhookDelivery, WebhookSubscription

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
