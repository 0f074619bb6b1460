"""The HTTP layer's work for the worker: forget idempotency keys past their retention."""

from __future__ import annotations

from datetime import datetime

from app.api.idempotency import delete_expired
from app.db.session import SessionFactory, session_scope
from app.jobs.registry import Registry

registry = Registry()


@registry.sweep
async def forget_expired_idempotency_keys(factory: SessionFactory, now: datetime) -> int:
    """Delete stored idempotent responses older than their retention."""
    async with session_scope(factory) as session:
        return await delete_expired(session)
