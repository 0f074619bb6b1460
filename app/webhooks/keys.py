"""Webhook secrets: generation and the grace period of a rotated one."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime


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
