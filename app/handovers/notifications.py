"""Handover notifications: what moved customers and their new owners are told, and whether
it reached them.

A handover executed with ``notify_customers`` emits, in its own transaction, one
``handover.customer_notification`` per moved customer and one ``handover.owner_briefing`` per
new owner to the outbound webhooks. With ``BATON_SMTP_URL`` the same notifications are also
e-mailed (``emails``). An item's notification is ``sent`` only once a delivery of its event
or its mail succeeded, ``not_sent`` with the reason when it had nowhere to go or every
attempt failed; the worker settles them from the delivery log and ticks ``customers_notified`` and
``team_informed`` when all of a handover's notifications arrived.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.events import outbox
from app.handovers import emails, execution_repository
from app.settings import get_settings

CUSTOMER_NOTIFICATION = "handover.customer_notification"
OWNER_BRIEFING = "handover.owner_briefing"
SETTLED_BY = "notifications"


def _person(id_: uuid.UUID | None, name: str | None, email: str | None) -> dict[str, Any] | None:
    return None if id_ is None else {"id": id_, "name": name, "email": email}


def _previous(row: Mapping[Any, Any]) -> dict[str, Any] | None:
    return _person(row["previous_id"], row["previous_name"], row["previous_email"])


def refusal_path(handover_id: uuid.UUID, customer_id: uuid.UUID) -> str:
    """Where a refusal is recorded (by the CRM or an operator on the customer's behalf)."""
    return f"/v1/handovers/{handover_id}/items/{customer_id}/refuse"


def _customer_notice(
    handover_id: uuid.UUID, row: Mapping[Any, Any], deadline: datetime
) -> dict[str, Any]:
    owner = _person(row["owner_id"], row["owner_name"], row["owner_email"])
    return {
        "handover_id": handover_id,
        "customer": {
            "id": row["customer_id"],
            "external_ref": row["external_ref"],
            "name": row["customer_name"],
        },
        "new_owner": owner,
        "previous_owner": _previous(row),
        "effective_at": row["moved_at"],
        "refusal": {
            "deadline": deadline,
            "instructions": (
                f"{row['customer_name']} may ask for another account manager instead of "
                f"{row['owner_name']} until the deadline, by replying to {row['owner_email']} "
                "or to its usual contact; the refusal is recorded with a POST to `path`."
            ),
            "path": refusal_path(handover_id, row["customer_id"]),
        },
    }


def _owner_briefing(
    handover_id: uuid.UUID, rows: Sequence[Mapping[Any, Any]], deadline: datetime
) -> dict[str, Any]:
    first = rows[0]
    return {
        "handover_id": handover_id,
        "owner": _person(first["owner_id"], first["owner_name"], first["owner_email"]),
        "effective_at": first["moved_at"],
        "refusal_deadline": deadline,
        "customers": [
            {
                "id": r["customer_id"],
                "external_ref": r["external_ref"],
                "name": r["customer_name"],
                "tier": r["tier"],
                "previous_owner": _previous(r),
                "briefing": r["briefing"],
            }
            for r in rows
        ],
    }


async def notify_moved(
    session: AsyncSession,
    *,
    handover_id: uuid.UUID,
    customer_ids: Sequence[uuid.UUID],
    at: datetime,
) -> None:
    """Emit the customer notifications and owner briefings of these moved customers (those
    that went to the pool are not notified) and track each one until it is delivered."""
    rows = await execution_repository.moved_for_notice(
        session, handover_id=handover_id, customer_ids=customer_ids
    )
    if not rows:
        return
    settings = get_settings()
    deadline = at + timedelta(hours=settings.handover_refusal_window_hours)
    event_ids = await outbox.emit_tracked(
        session,
        [
            (CUSTOMER_NOTIFICATION, _customer_notice(handover_id, r, deadline), r["customer_id"])
            for r in rows
        ],
        at=at,
    )
    by_owner = [list(g) for _, g in groupby(rows, key=lambda r: r["owner_id"])]
    briefing_ids = await outbox.emit_tracked(
        session,
        [(OWNER_BRIEFING, _owner_briefing(handover_id, g, deadline), None) for g in by_owner],
        at=at,
    )
    mailed_customers: set[uuid.UUID] = set()
    mailed_owners: set[uuid.UUID] = set()
    unreachable = "no subscriber"
    if settings.smtp_url is not None:
        unreachable = "no subscriber and no e-mail address"
        mails = [
            m
            for m in (
                *(emails.customer_mail(r, deadline=deadline) for r in rows),
                *(emails.owner_mail(g, deadline=deadline) for g in by_owner),
            )
            if m is not None
        ]
        await emails.queue(session, handover_id=handover_id, mails=mails, at=at)
        mailed_customers = {m.customer_id for m in mails if m.customer_id is not None}
        mailed_owners = {m.manager_id for m in mails if m.manager_id is not None}
    await execution_repository.set_item_notifications(
        session,
        handover_id=handover_id,
        customer_ids=[r["customer_id"] for r in rows],
        event_ids=event_ids,
        mailed=[r["customer_id"] in mailed_customers for r in rows],
        unreachable=unreachable,
    )
    await execution_repository.set_owner_notifications(
        session,
        handover_id=handover_id,
        manager_ids=[g[0]["owner_id"] for g in by_owner],
        event_ids=briefing_ids,
        mailed=[g[0]["owner_id"] in mailed_owners for g in by_owner],
        unreachable=unreachable,
    )


SETTLE_BATCH = 5000


async def settle(session: AsyncSession, *, at: datetime, limit: int = SETTLE_BATCH) -> int:
    """Mark up to ``limit`` notifications (and as many briefings) sent or not sent from their
    deliveries and tick the checklist tasks they complete; returns the larger count, so a
    caller settles again while it equals ``limit``. Run by the worker's sweep."""
    return await execution_repository.settle_notifications(
        session, limit=limit, at=at, actor=SETTLED_BY
    )
