"""Webhook secrets: generation, the grace period of a rotated one, and the one rotation path
that inbound sources and outbound subscriptions both go through."""

from __future__ import annotations

import base64
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import WebhookSource, WebhookSubscription
from app.settings import get_settings
from app.webhooks import repository


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def active_secrets(
    secret: str, previous: str | None, previous_expires_at: datetime | None, *, now: datetime
) -> list[str]:
    """The secrets that sign or verify now: the current one, and the previous one during its
    grace period after a rotation."""
    keys = [secret]
    if previous and previous_expires_at is not None and previous_expires_at > now:
        keys.append(previous)
    return keys


def rotation(
    current: str, *, secret: str | None, grace_hours: int | None, now: datetime
) -> dict[str, Any]:
    """The column values that replace ``current`` with ``secret`` (or a new one): the old
    secret stays valid for ``grace_hours`` (default from settings; 0 drops it at once), so a
    source or a subscriber can switch over without losing requests."""
    hours = grace_hours if grace_hours is not None else get_settings().webhooks_secret_grace_hours
    return {
        "secret": secret or new_secret(),
        "previous_secret": current if hours else None,
        "previous_secret_expires_at": now + timedelta(hours=hours) if hours else None,
        "updated_at": now,
    }


async def rotate(
    session: AsyncSession,
    model: type[WebhookSource] | type[WebhookSubscription],
    row_id: uuid.UUID,
    *,
    current: str,
    secret: str | None,
    grace_hours: int | None,
) -> RowMapping:
    """Replace the secret of one source or subscription (see ``rotation``); the whole row
    after the change, new secret included."""
    values = rotation(current, secret=secret, grace_hours=grace_hours, now=datetime.now(UTC))
    return await repository.set_secret(session, model, row_id, values)
