"""Handover notifications by e-mail, when ``BATON_SMTP_URL`` is set.

The same notifications as the webhooks carry, as plain-text mail: each moved customer's key
contacts (those with an address in its briefing) are told who their new account manager is
and how to refuse; each new owner gets the briefings of the customers taken over. Mails are
queued in the handover's transaction and sent by the worker's sweep (aiosmtplib), retried on
a short schedule; a notification counts as sent once its webhook or its mail got through.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlsplit

import aiosmtplib
from sqlalchemy.ext.asyncio import AsyncSession

from app.handovers import email_repository

log = logging.getLogger("baton.handovers")

RETRY_SCHEDULE = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
)
MAX_ATTEMPTS = 1 + len(RETRY_SCHEDULE)
TIMEOUT_S = 15.0
BATCH = 100


@dataclass(frozen=True, slots=True)
class Smtp:
    """Where to send: parsed from ``smtp://user:password@host:port`` or ``smtps://…``."""

    hostname: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool
    sender: str

    @classmethod
    def from_url(cls, url: str, *, sender: str) -> Smtp:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("BATON_SMTP_URL must be smtp://host[:port] or smtps://host[:port]")
        tls = parts.scheme == "smtps"
        try:
            port = parts.port
        except ValueError:
            # Its text quotes what stood where the port should be: part of a password with an
            # unencoded / ? or #, which must not reach the log of every sweep.
            raise ValueError(
                "BATON_SMTP_URL is not a valid URL: characters such as / ? # @ : in the user"
                " name or password must be percent-encoded (/ as %2F)"
            ) from None
        return cls(
            hostname=parts.hostname,
            port=port or (465 if tls else 587),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=tls,
            sender=sender,
        )


@dataclass(frozen=True, slots=True)
class Mail:
    kind: str
    customer_id: uuid.UUID | None
    manager_id: uuid.UUID | None
    recipients: list[str]
    subject: str
    body: str


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


def customer_mail(row: Mapping[Any, Any], *, deadline: datetime) -> Mail | None:
    """To the customer's key contacts that have an address; None when none has one."""
    contacts = (row["briefing"] or {}).get("key_contacts") or []
    to = sorted({c["email"] for c in contacts if isinstance(c, dict) and c.get("email")})
    if not to:
        return None
    previous = f" from {row['previous_name']}" if row["previous_name"] else ""
    body = (
        f"Dear {row['customer_name']},\n\n"
        f"From {_when(row['moved_at'])}, your account manager is {row['owner_name']} "
        f"({row['owner_email']}), taking over{previous}.\n\n"
        f"If you would rather work with someone else, reply to this message or write to "
        f"{row['owner_email']} before {_when(deadline)}, and we will find you another account "
        "manager.\n"
    )
    return Mail(
        kind="customer_notification",
        customer_id=row["customer_id"],
        manager_id=None,
        recipients=to,
        subject=f"Your new account manager: {row['owner_name']}",
        body=body,
    )


def _briefing_lines(briefing: Mapping[Any, Any] | None) -> list[str]:
    if not briefing:
        return ["    (no briefing)"]
    lines = []
    for contact in briefing.get("key_contacts") or []:
        role = f", {contact['role']}" if contact.get("role") else ""
        lines.append(f"    contact: {contact.get('name')}{role}")
    for project in briefing.get("open_projects") or []:
        lines.append(f"    project: {project.get('name')} ({project.get('status') or 'open'})")
    for key, label in (
        ("contract_status", "contract"),
        ("outstanding_amount", "outstanding"),
        ("notes", "notes"),
    ):
        if briefing.get(key):
            lines.append(f"    {label}: {briefing[key]}")
    return lines or ["    (no briefing)"]


def owner_mail(rows: Sequence[Mapping[Any, Any]], *, deadline: datetime) -> Mail | None:
    """To the new owner: the customers taken over with their briefings."""
    first = rows[0]
    if not first["owner_email"]:
        return None
    lines = [
        f"Dear {first['owner_name']},",
        "",
        f"From {_when(first['moved_at'])} you manage {len(rows)} more customer(s); they may "
        f"ask for someone else until {_when(deadline)}.",
        "",
    ]
    for r in rows:
        previous = f", previously {r['previous_name']}" if r["previous_name"] else ""
        lines.append(f"* {r['customer_name']} ({r['tier']}{previous})")
        lines.extend(_briefing_lines(r["briefing"]))
    return Mail(
        kind="owner_briefing",
        customer_id=None,
        manager_id=first["owner_id"],
        recipients=[first["owner_email"]],
        subject=f"Customers handed over to you: {len(rows)}",
        body="\n".join(lines) + "\n",
    )


async def queue(
    session: AsyncSession, *, handover_id: uuid.UUID, mails: Sequence[Mail], at: datetime
) -> None:
    """Queue mails in the session's transaction (one statement)."""
    if not mails:
        return
    await email_repository.queue(
        session,
        {
            "handover": handover_id,
            "at": at,
            "kinds": [m.kind for m in mails],
            "customers": [m.customer_id for m in mails],
            "managers": [m.manager_id for m in mails],
            "recipients": [json.dumps(m.recipients) for m in mails],
            "subjects": [m.subject for m in mails],
            "bodies": [m.body for m in mails],
        },
    )


async def send_due(session: AsyncSession, *, smtp: Smtp, now: datetime, limit: int = BATCH) -> int:
    """Send up to ``limit`` due mails over one SMTP connection and record each outcome (in
    this transaction, rows locked so concurrent workers skip them); returns how many."""
    rows = await email_repository.claim_due(session, now=now, limit=limit)
    if not rows:
        return 0
    errors: dict[int, str] = {}
    try:
        async with aiosmtplib.SMTP(
            hostname=smtp.hostname,
            port=smtp.port,
            username=smtp.username,
            password=smtp.password,
            use_tls=smtp.use_tls,
            timeout=TIMEOUT_S,
        ) as client:
            for row in rows:
                message = EmailMessage()
                message["From"] = smtp.sender
                message["To"] = ", ".join(row.recipients)
                message["Subject"] = row.subject
                message.set_content(row.body)
                try:
                    await client.send_message(message)
                except aiosmtplib.SMTPException as exc:
                    errors[row.id] = f"{type(exc).__name__}: {exc}"[:500]
    except (aiosmtplib.SMTPException, OSError) as exc:
        for row in rows:
            errors.setdefault(row.id, f"{type(exc).__name__}: {exc}"[:500])
    statuses: list[str] = []
    nexts: list[datetime] = []
    sent: list[datetime | None] = []
    for row in rows:
        if row.id not in errors:
            statuses.append("sent")
            nexts.append(now)
            sent.append(now)
        elif row.attempts + 1 >= MAX_ATTEMPTS:
            statuses.append("failed")
            nexts.append(now)
            sent.append(None)
        else:
            statuses.append("pending")
            nexts.append(now + RETRY_SCHEDULE[row.attempts])
            sent.append(None)
    await email_repository.record_sends(
        session,
        {
            "ids": [r.id for r in rows],
            "statuses": statuses,
            "next": nexts,
            "errors": [errors.get(r.id) for r in rows],
            "sent": sent,
        },
    )
    if errors:
        log.warning("handover_emails_failed", extra={"failed": len(errors), "sent": len(rows)})
    return len(rows)
