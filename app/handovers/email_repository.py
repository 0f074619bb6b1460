"""SQL for the handover mails: the queue, the claim of due mails and their outcomes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.rows import rows_as


@dataclass(frozen=True, slots=True)
class DueMail:
    """A mail claimed for sending."""

    id: int
    recipients: list[str]
    subject: str
    body: str
    attempts: int


_QUEUE = text(
    """
    INSERT INTO handover_emails
           (handover_id, kind, customer_id, manager_id, recipients, subject, body,
            next_attempt_at)
    SELECT :handover, m.kind, m.customer_id, m.manager_id,
           ARRAY(SELECT jsonb_array_elements_text(CAST(m.recipients AS jsonb))),
           m.subject, m.body, :at
      FROM unnest(CAST(:kinds AS text[]), CAST(:customers AS uuid[]),
                  CAST(:managers AS uuid[]), CAST(:recipients AS text[]),
                  CAST(:subjects AS text[]), CAST(:bodies AS text[]))
           AS m(kind, customer_id, manager_id, recipients, subject, body)
    """
)


async def queue(session: AsyncSession, columns: dict[str, Any]) -> None:
    """Queue mails, set-based (``handover``, ``at`` and parallel arrays: ``kinds``,
    ``customers``, ``managers``, ``recipients`` as JSON, ``subjects``, ``bodies``)."""
    await session.execute(_QUEUE, columns)


_CLAIM = text(
    """
    WITH due AS MATERIALIZED (
        SELECT id FROM handover_emails
         WHERE status = 'pending' AND next_attempt_at <= :now
         ORDER BY next_attempt_at, id
         LIMIT :limit FOR UPDATE SKIP LOCKED
    )
    SELECT e.id, e.recipients, e.subject, e.body, e.attempts
      FROM handover_emails AS e JOIN due ON due.id = e.id
     ORDER BY e.id
    """
)
_RECORD = text(
    """
    UPDATE handover_emails AS e
       SET status = r.status, attempts = e.attempts + 1, next_attempt_at = r.next_attempt_at,
           error = r.error, sent_at = r.sent_at
      FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS text[]),
                  CAST(:next AS timestamptz[]), CAST(:errors AS text[]),
                  CAST(:sent AS timestamptz[]))
           AS r(id, status, next_attempt_at, error, sent_at)
     WHERE e.id = r.id
    """
)


async def claim_due(session: AsyncSession, *, now: datetime, limit: int) -> list[DueMail]:
    """Up to ``limit`` due mails, locked (concurrent workers skip them)."""
    result = await session.execute(_CLAIM, {"now": now, "limit": limit})
    return rows_as(DueMail, result.mappings())


async def record_sends(session: AsyncSession, columns: dict[str, Any]) -> None:
    """Record each mail's outcome, set-based (parallel arrays: ``ids``, ``statuses``,
    ``next``, ``errors``, ``sent``)."""
    await session.execute(_RECORD, columns)
