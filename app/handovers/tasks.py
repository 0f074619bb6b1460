"""The handovers' work for the worker: execute an approved handover when it falls due, return
covered portfolios, and send and settle customer notifications."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from app.db.session import SessionFactory, session_scope
from app.errors import InvalidTransition
from app.handovers import aftercare, emails, lifecycle, notifications
from app.jobs.queue import EXECUTE_HANDOVER
from app.jobs.registry import Registry
from app.settings import get_settings

log = logging.getLogger("baton.worker")

schedule = Registry()
"""Due executions and cover returns."""
notices = Registry()
"""Notification mails and their settlement (run after webhook delivery, which they settle)."""


async def _execute(factory: SessionFactory, handover_id: uuid.UUID) -> None:
    async with session_scope(factory) as session:
        await lifecycle.execute_handover(session, handover_id=handover_id, actor="scheduler")
    log.info("handover_executed", extra={"handover_id": str(handover_id)})


@schedule.task(EXECUTE_HANDOVER, max_attempts=5)
async def execute_handover(factory: SessionFactory, payload: bytes) -> None:
    """Execute the handover the job names (scheduled at its ``effective_at``)."""
    try:
        await _execute(factory, uuid.UUID(payload.decode()))
    except InvalidTransition:
        # Cancelled or already done since it was scheduled: nothing left to do.
        log.info("handover_job_skipped", extra={"handover_id": payload.decode()})


@schedule.sweep
async def execute_due_handovers(factory: SessionFactory, now: datetime) -> int:
    """Execute approved handovers whose ``effective_at`` has passed."""
    async with session_scope(factory) as session:
        due = await lifecycle.due_handover_ids(session, now=now)
    for handover_id in due:
        await _execute(factory, handover_id)
    return len(due)


@schedule.sweep
async def return_due_covers(factory: SessionFactory, now: datetime) -> int:
    """Give covered portfolios back to managers whose leave has ended."""
    async with session_scope(factory) as session:
        due = await aftercare.due_cover_returns(session, now=now)
    for handover_id in due:
        async with session_scope(factory) as session:
            await aftercare.return_cover(session, handover_id=handover_id, actor="scheduler")
    return len(due)


@notices.sweep
async def send_notification_emails(factory: SessionFactory, now: datetime) -> int:
    """Mail the customer notifications that are due (when SMTP is configured)."""
    settings = get_settings()
    if settings.smtp_url is None:
        return 0
    smtp = emails.Smtp.from_url(settings.smtp_url.get_secret_value(), sender=settings.smtp_from)
    total = 0
    while True:
        async with session_scope(factory) as session:
            sent = await emails.send_due(session, smtp=smtp, now=now)
        total += sent
        if sent < emails.BATCH:
            return total


@notices.sweep
async def settle_notifications(factory: SessionFactory, now: datetime) -> int:
    """Settle notifications whose refusal window has passed or whose delivery failed."""
    total = 0
    while True:  # one transaction per batch: a 100 000-customer handover is 20 of them
        async with session_scope(factory) as session:
            settled = await notifications.settle(session, at=now)
        total += settled
        if settled < notifications.SETTLE_BATCH:
            return total
