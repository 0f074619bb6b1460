"""Subscriptions (with their secret shown once) and the delivery log with manual redelivery."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.pagination import Page, cursor_key, cursor_value, keyset_page
from app.db.models import WebhookSubscription
from app.errors import Conflict, NotFound
from app.jobs.queue import DELIVER_WEBHOOKS, enqueue
from app.settings import get_settings
from app.webhooks import keys
from app.webhooks.keys import new_secret
from app.webhooks.outbound import repository
from app.webhooks.outbound.schemas import (
    AttemptOut,
    DeliveryDetail,
    DeliveryOut,
    DeliveryStatus,
    SecretRotation,
    SubscriptionCreate,
    SubscriptionOut,
    SubscriptionUpdate,
    SubscriptionWithSecret,
)
from app.webhooks.targets import check_target


async def _require(session: AsyncSession, subscription_id: uuid.UUID) -> RowMapping:
    row = await repository.get(session, subscription_id)
    if row is None:
        raise NotFound(f"Webhook subscription {subscription_id} does not exist.")
    return row


def _types(event_types: list[str]) -> list[str]:
    return ["*"] if "*" in event_types else sorted(set(event_types))


async def create_subscription(
    session: AsyncSession, *, data: SubscriptionCreate
) -> SubscriptionWithSecret:
    """Register a subscriber with a newly generated secret (returned only here)."""
    await check_target(data.url, allow_private=get_settings().webhooks_allow_private_targets)
    secret = new_secret()
    row = await repository.insert_subscription(
        session,
        {
            "url": data.url,
            "event_types": _types(list(data.event_types)),
            "description": data.description,
            "enabled": data.enabled,
            "batch_size": data.batch_size,
            "secret": secret,
        },
    )
    return SubscriptionWithSecret.model_validate({**row})


async def get_subscription(session: AsyncSession, *, subscription_id: uuid.UUID) -> SubscriptionOut:
    """One subscription, without its secret."""
    return SubscriptionOut.model_validate({**await _require(session, subscription_id)})


async def list_subscriptions(
    session: AsyncSession, *, cursor: str | None, limit: int
) -> Page[SubscriptionOut]:
    """Subscriptions, oldest first."""
    key = cursor_key(cursor, (datetime, uuid.UUID))
    after = None if key is None else (key[0], key[1])
    rows = await repository.list_page(session, after=after, limit=limit + 1)
    items, next_cursor = keyset_page(
        rows,
        limit=limit,
        item=lambda r: SubscriptionOut.model_validate({**r}),
        key=lambda r: [r["created_at"].isoformat(), str(r["id"])],
    )
    return Page(items=items, next_cursor=next_cursor)


async def update_subscription(
    session: AsyncSession, *, subscription_id: uuid.UUID, data: SubscriptionUpdate
) -> SubscriptionOut:
    """Change URL, event types, description or the enabled flag."""
    await _require(session, subscription_id)
    values: dict[str, Any] = data.model_dump(exclude_unset=True)
    for field in ("url", "event_types", "enabled", "batch_size"):
        if field in values and values[field] is None:
            values.pop(field)
    if "url" in values:
        await check_target(
            values["url"], allow_private=get_settings().webhooks_allow_private_targets
        )
    if "event_types" in values:
        values["event_types"] = _types(values["event_types"])
    if values.get("enabled"):
        values["disabled_reason"] = None
    if values:
        await repository.update_subscription(session, subscription_id, values)
    return await get_subscription(session, subscription_id=subscription_id)


async def rotate_secret(
    session: AsyncSession, *, subscription_id: uuid.UUID, data: SecretRotation
) -> SubscriptionWithSecret:
    """Generate a new secret; the old one keeps signing (alongside) during the grace period."""
    current = await _require(session, subscription_id)
    row = await keys.rotate(
        session,
        WebhookSubscription,
        subscription_id,
        current=current["secret"],
        secret=None,
        grace_hours=data.grace_hours,
    )
    return SubscriptionWithSecret.model_validate({**row})


async def delete_subscription(session: AsyncSession, *, subscription_id: uuid.UUID) -> None:
    """Remove a subscription and its delivery log."""
    await _require(session, subscription_id)
    await repository.delete_subscription(session, subscription_id)


# -- deliveries ------------------------------------------------------------------------------------
async def list_deliveries(
    session: AsyncSession,
    *,
    cursor: str | None,
    limit: int,
    subscription_id: uuid.UUID | None,
    status: DeliveryStatus | None,
    event_type: str | None,
    customer_id: uuid.UUID | None,
) -> Page[DeliveryOut]:
    """The delivery log, newest first."""
    before_id = cursor_value(cursor, int)
    rows = await repository.list_deliveries(
        session,
        before_id=before_id,
        limit=limit + 1,
        subscription_id=subscription_id,
        status=status,
        event_type=event_type,
        customer_id=customer_id,
    )
    items, next_cursor = keyset_page(
        rows,
        limit=limit,
        item=lambda r: DeliveryOut.model_validate({**r}),
        key=lambda r: [r["id"]],
    )
    return Page(items=items, next_cursor=next_cursor)


async def get_delivery(session: AsyncSession, *, delivery_id: int) -> DeliveryDetail:
    """One delivery with the body sent and every attempt."""
    row = await repository.get_delivery(session, delivery_id)
    if row is None:
        raise NotFound(f"Webhook delivery {delivery_id} does not exist.")
    attempts = await repository.attempts(session, delivery_id)
    return DeliveryDetail.model_validate(
        {**row, "attempt_log": [AttemptOut.model_validate({**a}) for a in attempts]}
    )


async def redeliver(session: AsyncSession, *, delivery_id: int) -> DeliveryOut:
    """Send a delivered or failed delivery again, now, with the same ``webhook-id`` (receivers
    deduplicate on it). A pending one is simply made due now."""
    subscription_id = await repository.lock_delivery(session, delivery_id)
    if subscription_id is None:
        raise NotFound(f"Webhook delivery {delivery_id} does not exist.")
    if not await repository.subscription_enabled(session, subscription_id):
        raise Conflict("The subscription is disabled; enable it before redelivering.")
    await repository.make_due_now(session, delivery_id)
    await enqueue(session, DELIVER_WEBHOOKS, "")
    detail = await get_delivery(session, delivery_id=delivery_id)
    return DeliveryOut.model_validate(detail.model_dump(exclude={"payload", "attempt_log"}))
