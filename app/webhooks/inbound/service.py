"""Webhook sources, receiving (verify → store → queue) and the inbox view with retry."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.pagination import Page, cursor_key, keyset_page
from app.db.models import WebhookSource
from app.errors import BatonError, Conflict, InvalidInput, NotFound, require_json_body
from app.jobs.queue import PROCESS_INBOUND_WEBHOOK, enqueue, enqueue_many
from app.webhooks import keys
from app.webhooks.inbound import adapters, repository
from app.webhooks.inbound.schemas import (
    InboundEventOut,
    InboundStatus,
    ReceiptOut,
    ReceivedEvent,
    SourceCreate,
    SourceOut,
    SourceRotation,
    SourceUpdate,
    SourceWithSecret,
)
from app.webhooks.keys import active_secrets, new_secret

MAX_BODY_BYTES = 1_000_000
ZOHO_TOKEN_MAX = 50  # what Zoho's actions/watch accepts as `token`
# headers kept with the raw body (signature headers included: they prove what was verified)
_DROP_HEADERS = {"authorization", "cookie", "x-api-key"}


class SourceNotFound(NotFound):
    code = "webhook_source_not_found"


class PayloadTooLarge(BatonError):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"


def _source_out(row: Mapping[Any, Any], model: type[SourceOut] = SourceOut) -> Any:
    """A source as shown: its mapping is the stored one or its adapter's default."""
    mapping = adapters.mapping_for(row["adapter"], row["mapping"])
    return model.model_validate({**row, "mapping": mapping})


def _check_zoho_secret(adapter: str, secret: str | None) -> None:
    if adapter == "zoho" and secret is not None and len(secret) > ZOHO_TOKEN_MAX:
        raise InvalidInput(f"A Zoho token is at most {ZOHO_TOKEN_MAX} characters.", field="secret")


async def _require(session: AsyncSession, source_id: uuid.UUID) -> RowMapping:
    row = await repository.get_source(session, source_id)
    if row is None:
        raise NotFound(f"Webhook source {source_id} does not exist.")
    return row


async def create_source(session: AsyncSession, *, data: SourceCreate) -> SourceWithSecret:
    """Register a CRM; its secret is returned here and on rotation only."""
    if await repository.source_named(session, data.name) is not None:
        raise Conflict(f"A webhook source named {data.name!r} exists.", field="name")
    _check_zoho_secret(data.adapter, data.secret)
    values = data.model_dump(exclude={"mapping"})
    values["mapping"] = data.mapping.model_dump() if data.mapping else None
    values["secret"] = data.secret or new_secret()
    return _source_out(await repository.insert_source(session, values), SourceWithSecret)


async def list_sources(session: AsyncSession) -> list[SourceOut]:
    """Every source, by name (a handful per installation)."""
    return [_source_out(r) for r in await repository.list_sources(session)]


async def get_source(session: AsyncSession, *, source_id: uuid.UUID) -> SourceOut:
    """One source, without its secret."""
    return _source_out(await _require(session, source_id))


async def update_source(
    session: AsyncSession, *, source_id: uuid.UUID, data: SourceUpdate
) -> SourceOut:
    """Change how a source is handled (not its secret: rotate it)."""
    await _require(session, source_id)
    # null clears signature_header, mapping (back to the defaults) and channel_id; for the
    # other fields it is no change
    values = {
        k: v
        for k, v in data.model_dump(exclude_unset=True).items()
        if v is not None or k in ("signature_header", "mapping", "channel_id")
    }
    if values:
        await repository.update_source(session, source_id, values)
    return await get_source(session, source_id=source_id)


async def rotate_source_secret(
    session: AsyncSession, *, source_id: uuid.UUID, data: SourceRotation
) -> SourceWithSecret:
    """Replace the secret; the old one is still accepted during the grace period."""
    current = await _require(session, source_id)
    _check_zoho_secret(current["adapter"], data.secret)
    row = await keys.rotate(
        session,
        WebhookSource,
        source_id,
        current=current["secret"],
        secret=data.secret,
        grace_hours=data.grace_hours,
    )
    return _source_out(row, SourceWithSecret)


async def delete_source(session: AsyncSession, *, source_id: uuid.UUID) -> None:
    """Remove a source and its inbox."""
    await _require(session, source_id)
    await repository.delete_source(session, source_id)


async def receive(
    session: AsyncSession,
    *,
    source_name: str,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
) -> tuple[ReceiptOut, bool]:
    """Verify the request's signature on the raw bytes, then store each event (once per
    source and event id) and queue its processing, in this transaction. Returns the receipt
    and whether anything new was stored."""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"The body exceeds {MAX_BODY_BYTES} bytes.")
    source = await repository.source_named(session, source_name)
    if source is None or not source["enabled"]:
        raise SourceNotFound(f"No enabled webhook source is named {source_name!r}.")
    now = datetime.now(UTC)
    lowered = {k.lower(): v for k, v in headers.items()}
    adapters.verify(
        source["adapter"],
        active_secrets(
            source["secret"],
            source["previous_secret"],
            source["previous_secret_expires_at"],
            now=now,
        ),
        lowered,
        body,
        method=method,
        url=url,
        signature_header=source["signature_header"],
        channel_id=source["channel_id"],
        now=now,
    )
    # After the signature check: a caller that cannot sign learns only 401.
    require_json_body(lowered, has_body=bool(body))
    events = adapters.parse(
        source["adapter"],
        lowered,
        body,
        mapping=adapters.mapping_for(source["adapter"], source["mapping"]),
    )
    ids = await repository.store_events(
        session,
        source_id=source["id"],
        headers=json.dumps({k: v for k, v in lowered.items() if k not in _DROP_HEADERS}),
        event_ids=[e.event_id for e in events],
        types=[e.type for e in events],
        statuses=["ignored" if e.ignored else "received" for e in events],
        errors=[e.ignored for e in events],
        bodies=[e.raw for e in events],
    )  # event_id -> inbox id, of the new ones
    await enqueue_many(
        session,
        PROCESS_INBOUND_WEBHOOK,
        [str(ids[e.event_id]) for e in events if e.event_id in ids and not e.ignored],
    )
    known = (
        await repository.inbox_ids(
            session, source["id"], [e.event_id for e in events if e.event_id not in ids]
        )
        if len(ids) < len(events)
        else {}
    )
    out = [
        ReceivedEvent(
            event_id=e.event_id,
            id=ids.get(e.event_id) or known[e.event_id],
            duplicate=e.event_id not in ids,
        )
        for e in events
    ]
    new = sum(not e.duplicate for e in out)
    return ReceiptOut(received=new, duplicates=len(out) - new, events=out), new > 0


async def list_events(
    session: AsyncSession,
    *,
    cursor: str | None,
    limit: int,
    source: str | None,
    status: InboundStatus | None,
    type: str | None,
) -> Page[InboundEventOut]:
    """The inbox, newest first."""
    key = cursor_key(cursor, (datetime, uuid.UUID))
    before = None if key is None else (key[0], key[1])
    rows = await repository.list_events(
        session, before=before, limit=limit + 1, source=source, status=status, type=type
    )
    items, next_cursor = keyset_page(
        rows,
        limit=limit,
        item=lambda r: InboundEventOut.model_validate({**r}),
        key=lambda r: [r["received_at"].isoformat(), str(r["id"])],
    )
    return Page(items=items, next_cursor=next_cursor)


async def get_event(session: AsyncSession, *, event_id: uuid.UUID) -> InboundEventOut:
    """One inbound event and what became of it."""
    row = await repository.get_event(session, event_id)
    if row is None:
        raise NotFound(f"Inbound event {event_id} does not exist.")
    return InboundEventOut.model_validate({**row})


async def retry_event(session: AsyncSession, *, event_id: uuid.UUID) -> InboundEventOut:
    """Queue a failed event for processing again."""
    current = await get_event(session, event_id=event_id)
    if current.status != "failed":
        raise Conflict(
            f"Only a failed event can be retried; this one is {current.status}.",
            event_status=current.status,
        )
    await repository.mark_for_retry(session, event_id)
    await enqueue(session, PROCESS_INBOUND_WEBHOOK, str(event_id))
    return await get_event(session, event_id=event_id)


def result_json(value: Mapping[Any, Any]) -> dict[str, Any]:
    """A JSON-safe copy of a processing result."""
    return json.loads(json.dumps(value, default=str))
