"""The webhooks' work for the worker: deliver the outbox, process the inbox, prune old logs."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from app.db.session import SessionFactory
from app.jobs.queue import DELIVER_WEBHOOKS, PROCESS_INBOUND_WEBHOOK
from app.jobs.registry import Registry
from app.settings import get_settings
from app.webhooks.inbound.processing import process_event, process_stale
from app.webhooks.outbound.dispatcher import drain, drain_and_reschedule
from app.webhooks.retention import prune

delivery = Registry()
inbox = Registry()
retention = Registry()


@delivery.task(DELIVER_WEBHOOKS)
async def deliver_webhooks_now(factory: SessionFactory, payload: bytes) -> None:
    """Deliver what is due, then announce the next retry due within a minute."""
    await drain_and_reschedule(factory)


@delivery.sweep
async def deliver_webhooks(factory: SessionFactory, now: datetime) -> int:
    """Deliver what is due (what no job announced, or a retry beyond a minute)."""
    return await drain(factory)


@inbox.task(PROCESS_INBOUND_WEBHOOK, max_attempts=3)
async def process_inbound_webhook(factory: SessionFactory, payload: bytes) -> None:
    """Apply the stored inbound event the job names."""
    await process_event(factory, uuid.UUID(payload.decode()))


@inbox.sweep
async def process_inbound_webhooks(factory: SessionFactory, now: datetime) -> int:
    """Apply received inbound events that no job has processed."""
    return await process_stale(factory, now=now)


@retention.sweep
async def prune_webhook_logs(factory: SessionFactory, now: datetime) -> int:
    """Delete delivered events and processed inbox rows past their retention."""
    return await prune(factory, cutoff=now - timedelta(days=get_settings().webhooks_retention_days))
