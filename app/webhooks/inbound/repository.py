"""SQL for webhook sources and the inbox (processing keeps its own locking SQL)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import RowMapping, delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Customer, Handover, HandoverItem, InboundEvent, Manager, WebhookSource
from app.db.rows import row_as
from app.vocabulary import Strategy, TierChangeAction

_S = WebhookSource
_I = InboundEvent
_COLUMNS = [
    *[c for c in _I.__table__.c if c.name not in ("headers", "body")],
    _S.name.label("source"),
]


async def get_source(session: AsyncSession, source_id: uuid.UUID) -> RowMapping | None:
    """One source row, secrets included."""
    statement = select(*_S.__table__.c).where(_S.id == source_id)
    return (await session.execute(statement)).mappings().first()


async def source_named(session: AsyncSession, name: str) -> RowMapping | None:
    """The source called ``name``, secrets included."""
    statement = select(*_S.__table__.c).where(_S.name == name)
    return (await session.execute(statement)).mappings().first()


async def insert_source(session: AsyncSession, values: dict[str, Any]) -> RowMapping:
    """Insert a source; the whole row."""
    statement = insert(_S).values(**values).returning(*_S.__table__.c)
    return (await session.execute(statement)).mappings().one()


async def list_sources(session: AsyncSession) -> list[RowMapping]:
    """Every source, by name."""
    return list((await session.execute(select(*_S.__table__.c).order_by(_S.name))).mappings())


async def update_source(
    session: AsyncSession, source_id: uuid.UUID, values: dict[str, Any]
) -> None:
    """Set some of a source's fields."""
    await session.execute(
        update(_S).where(_S.id == source_id).values(**values, updated_at=datetime.now(UTC))
    )


async def delete_source(session: AsyncSession, source_id: uuid.UUID) -> None:
    """Delete a source (its inbox goes with it)."""
    await session.execute(
        delete(_S).where(_S.id == source_id).execution_options(synchronize_session=False)
    )


_STORE = text(
    """
    INSERT INTO webhook_inbound_events (source_id, event_id, type, status, error, headers, body)
    SELECT :source_id, e.event_id, e.type, e.status, e.error, CAST(:headers AS jsonb), e.body
      FROM unnest(CAST(:event_ids AS text[]), CAST(:types AS text[]), CAST(:statuses AS text[]),
                  CAST(:errors AS text[]), CAST(:bodies AS bytea[]))
           AS e(event_id, type, status, error, body)
    ON CONFLICT (source_id, event_id) DO NOTHING
    RETURNING id, event_id
    """
)


async def store_events(
    session: AsyncSession,
    *,
    source_id: uuid.UUID,
    headers: str,
    event_ids: Sequence[str],
    types: Sequence[str | None],
    statuses: Sequence[str],
    errors: Sequence[str | None],
    bodies: Sequence[bytes],
) -> dict[str, uuid.UUID]:
    """Store the events a source has not sent before, in one statement; event id -> inbox id
    of those stored now (a duplicate is left out)."""
    rows = await session.execute(
        _STORE,
        {
            "source_id": source_id,
            "headers": headers,
            "event_ids": list(event_ids),
            "types": list(types),
            "statuses": list(statuses),
            "errors": list(errors),
            "bodies": list(bodies),
        },
    )
    return {event_id: inbox_id for inbox_id, event_id in rows.all()}


async def inbox_ids(
    session: AsyncSession, source_id: uuid.UUID, event_ids: Sequence[str]
) -> dict[str, uuid.UUID]:
    """Event id -> inbox id of events a source sent before."""
    rows = await session.execute(
        select(_I.event_id, _I.id).where(_I.source_id == source_id, _I.event_id.in_(event_ids))
    )
    return {event_id: inbox_id for event_id, inbox_id in rows.all()}


async def list_events(
    session: AsyncSession,
    *,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
    source: str | None,
    status: str | None,
    type: str | None,
) -> list[RowMapping]:
    """Up to ``limit`` inbox rows (without headers and body) before ``before``, newest first."""
    statement = (
        select(*_COLUMNS)
        .join(_S, _S.id == _I.source_id)
        .order_by(_I.received_at.desc(), _I.id.desc())
        .limit(limit)
    )
    if before is not None:
        at, inbox_id = before
        statement = statement.where(
            (_I.received_at < at) | ((_I.received_at == at) & (_I.id < inbox_id))
        )
    if source is not None:
        statement = statement.where(_S.name == source)
    if status is not None:
        statement = statement.where(_I.status == status)
    if type is not None:
        statement = statement.where(_I.type == type)
    return list((await session.execute(statement)).mappings())


async def get_event(session: AsyncSession, event_id: uuid.UUID) -> RowMapping | None:
    """One inbox row (without headers and body) with its source's name."""
    statement = select(*_COLUMNS).join(_S, _S.id == _I.source_id).where(_I.id == event_id)
    return (await session.execute(statement)).mappings().first()


async def mark_for_retry(session: AsyncSession, event_id: uuid.UUID) -> None:
    """Put a failed event back to ``received``."""
    await session.execute(update(_I).where(_I.id == event_id).values(status="received", error=None))


@dataclass(frozen=True, slots=True)
class LockedEvent:
    """A stored event, locked for processing, with the source settings its handler reads."""

    id: uuid.UUID
    type: str | None
    status: str
    body: bytes
    name: str
    adapter: str
    mapping: dict[str, Any] | None
    default_strategy: Strategy
    auto_approve: bool
    tier_change_action: TierChangeAction


_LOCK = text(
    """
    SELECT e.id, e.type, e.status, e.body, s.name, s.adapter, s.mapping, s.default_strategy,
           s.auto_approve, s.tier_change_action
      FROM webhook_inbound_events AS e JOIN webhook_sources AS s ON s.id = e.source_id
     WHERE e.id = :id
       FOR UPDATE OF e SKIP LOCKED
    """
)


async def lock_event(session: AsyncSession, inbox_id: uuid.UUID) -> LockedEvent | None:
    """The stored event with its source, locked (None when another worker holds it)."""
    row = (await session.execute(_LOCK, {"id": inbox_id})).mappings().first()
    return None if row is None else row_as(LockedEvent, row)


async def record_processing(
    session: AsyncSession,
    inbox_id: uuid.UUID,
    *,
    type: str | None,
    status: str,
    error: str | None,
    result: Any,
    at: datetime,
) -> None:
    """Write how handling the event ended, counting the attempt."""
    await session.execute(
        update(InboundEvent)
        .where(InboundEvent.id == inbox_id)
        .values(
            type=type,
            status=status,
            error=error,
            result=result,
            attempts=InboundEvent.attempts + 1,
            processed_at=at,
        )
    )


async def stale_ids(
    session: AsyncSession, *, received_before: datetime, limit: int
) -> list[uuid.UUID]:
    """Events still ``received`` that arrived before ``received_before``, oldest first."""
    rows = await session.scalars(
        select(InboundEvent.id)
        .where(InboundEvent.status == "received", InboundEvent.received_at < received_before)
        .order_by(InboundEvent.received_at)
        .limit(limit)
    )
    return list(rows)


async def find_record(
    session: AsyncSession,
    model: type[Manager] | type[Customer],
    *,
    id: uuid.UUID | None,
    external_ref: str | None,
) -> RowMapping | None:
    """The manager or customer named by id (first) or external reference."""
    where = model.id == id if id is not None else model.external_ref == external_ref
    return (await session.execute(select(*model.__table__.c).where(where))).mappings().first()


async def last_completed_handover(
    session: AsyncSession, customer_id: uuid.UUID
) -> uuid.UUID | None:
    """The completed handover that last moved the customer (or recorded its refusal)."""
    return await session.scalar(
        select(HandoverItem.handover_id)
        .join(Handover, Handover.id == HandoverItem.handover_id)
        .where(
            HandoverItem.customer_id == customer_id,
            HandoverItem.status.in_(("moved", "refused")),
            Handover.state == "completed",
        )
        .order_by(HandoverItem.moved_at.desc())
        .limit(1)
    )


async def manager_by_external_ref(session: AsyncSession, external_ref: str) -> uuid.UUID | None:
    """The id of the manager with that external reference."""
    return await session.scalar(select(Manager.id).where(Manager.external_ref == external_ref))
