"""The transactional outbox: domain changes call ``emit``/``emit_many`` in their own transaction.

An event row and one delivery row per interested subscription are written by a single
statement, so they exist exactly when the change that caused them commits; events nobody
subscribes to are not written. The worker is announced once per transaction through the job
queue; the queue only wakes it — the delivery rows are the source of truth, and a sweep finds
any that no job announced.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.session import transaction_connection
from app.jobs.queue import DELIVER_WEBHOOKS, enqueue

# The request id (set by the request middleware) or the inbound event being processed: lets a
# subscriber tie every event of one operation together.
correlation_id: ContextVar[str | None] = ContextVar("webhook_correlation_id", default=None)

_ANNOUNCED = "webhooks_announced"
_SUBSCRIBED = "webhooks_subscribed_types"

# Events and their deliveries in one statement; ids are made first so deliveries can name
# them, and delivery ids follow emission order (per-customer ordering relies on it).
_EMIT_CTE = """
    WITH e AS MATERIALIZED (
        SELECT gen_random_uuid() AS id, u.type, u.customer_id, CAST(u.data AS jsonb) AS data,
               u.ord
          FROM unnest(CAST(:types AS text[]), CAST(:customers AS uuid[]), CAST(:datas AS text[]))
               WITH ORDINALITY AS u(type, customer_id, data, ord)
    ), events AS (
        INSERT INTO webhook_events (id, type, customer_id, correlation_id, payload, created_at)
        SELECT e.id, e.type, e.customer_id, CAST(:correlation_id AS text),
               jsonb_build_object(
                   'type', e.type, 'timestamp', CAST(:timestamp AS text), 'data', e.data),
               :at
          FROM e
         ORDER BY e.ord
    ), deliveries AS (
        INSERT INTO webhook_deliveries
               (event_id, subscription_id, ordering_key, next_attempt_at, created_at)
        SELECT e.id, s.id, e.customer_id, :at, :at
          FROM e
          JOIN webhook_subscriptions AS s
            ON s.enabled AND (e.type = ANY (s.event_types) OR '*' = ANY (s.event_types))
         ORDER BY e.ord, s.id
        RETURNING event_id
    )
"""
_EMIT = text(_EMIT_CTE + "SELECT count(*) FROM deliveries")
# the same, answering which events (by position) got at least one delivery, and their ids
_EMIT_TRACKED = text(
    _EMIT_CTE
    + """
    SELECT e.ord, e.id, count(d.event_id) AS deliveries
      FROM e LEFT JOIN deliveries AS d ON d.event_id = e.id
     GROUP BY e.ord, e.id
    """
)


# Run on the driver's connection (prepared once per connection): a move asks it on every
# request. A statement may carry it as a scalar subquery and hand the answer to
# ``note_subscribed_types``, saving the round trip.
SUBSCRIBED_TYPES = """
    SELECT array_agg(DISTINCT t)
      FROM webhook_subscriptions AS s, unnest(s.event_types) AS t
     WHERE s.enabled
"""


def ownership_event(
    *, moved: str, previous: str, at: str, reason: str, actor: str, note: str, context: str
) -> str:
    """CTEs that write one customer's ``customer.assigned`` (``customer.unassigned`` to the
    pool) event and its deliveries, as ``emit_ownership_changes`` does, inside the statement
    that moves it: ``moved`` is the CTE of the moved customer (``id``, ``manager_id``),
    ``previous`` an expression of the previous owner, the others the statement's parameters
    (``context``: ``ownership_event_context``'s text array: correlation id, timestamp). The
    event exists only when an enabled subscription takes its type; the statement can select
    ``(SELECT count(*) FROM event_deliveries)`` to know whether to wake the worker."""
    takes = "s.enabled AND (e.type = ANY (s.event_types) OR '*' = ANY (s.event_types))"
    return f"""
    , e AS MATERIALIZED (
        SELECT gen_random_uuid() AS id, m.id AS customer_id,
               CASE WHEN m.manager_id IS NULL THEN 'customer.unassigned'
                    ELSE 'customer.assigned' END AS type,
               jsonb_build_object(
                   'customer_id', m.id, 'old_manager_id', {previous},
                   'manager_id', m.manager_id, 'reason', {reason}::text,
                   'actor', {actor}::text, 'handover_id', NULL, 'note', {note}::text,
                   'correlation_id', ({context}::text[])[1]) AS data
          FROM {moved} AS m
    ), event_rows AS (
        INSERT INTO webhook_events (id, type, customer_id, correlation_id, payload, created_at)
        SELECT e.id, e.type, e.customer_id, ({context}::text[])[1],
               jsonb_build_object(
                   'type', e.type, 'timestamp', ({context}::text[])[2], 'data', e.data),
               {at}
          FROM e
         WHERE EXISTS (SELECT FROM webhook_subscriptions AS s WHERE {takes})
    ), event_deliveries AS (
        INSERT INTO webhook_deliveries
               (event_id, subscription_id, ordering_key, next_attempt_at, created_at)
        SELECT e.id, s.id, e.customer_id, {at}, {at}
          FROM e JOIN webhook_subscriptions AS s ON {takes}
         ORDER BY s.id
        RETURNING 1
    )"""


def ownership_event_context(at: datetime) -> list[str | None]:
    """The ``context`` parameter of ``ownership_event``: the correlation id, the timestamp."""
    return [_current_correlation(), _json_default(at)]


async def announce(session: AsyncSession) -> None:
    """Wake a worker for deliveries a statement wrote itself (``ownership_event``)."""
    await _announce(session)


async def emit_ownership_batches(
    session: AsyncSession,
    moves: Sequence[Sequence[Any]],
    *,
    reason: str,
    actor: str,
    at: datetime,
    note: str | None = None,
) -> int:
    """The ``ownership.changed.batch`` part of ``emit_ownership_changes`` alone, for a move
    whose statement wrote its ``customer.assigned`` event (``ownership_event``)."""
    if BATCH_TYPE not in await _subscribed_types(session):
        return 0
    common = {"reason": reason, "actor": actor, "handover_id": None, "note": note}
    return await _emit_batches(session, moves, common, at=at)


def _json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value)  # UUID, Decimal, date


async def emit_many(
    session: AsyncSession,
    events: Sequence[tuple[str, Mapping[str, Any], uuid.UUID | None]],
    *,
    correlation_id: str | None = None,
    at: datetime | None = None,
) -> int:
    """Write ``(type, data, customer_id)`` events to the outbox in one statement.

    ``customer_id`` orders deliveries: a subscriber gets one customer's events in the order
    they were emitted. Returns how many deliveries were created (0 when nobody subscribes).
    """
    if not events:
        return 0
    wanted = await _subscribed_types(session)
    if "*" not in wanted:
        # Nobody to tell: skip the event rows (the outbox holds what is to be delivered).
        events = [e for e in events if e[0] in wanted]
        if not events:
            return 0
    created = await session.scalar(_EMIT, _emit_params(events, correlation_id, at))
    if created:
        await _announce(session)
    return int(created or 0)


def _emit_params(
    events: Sequence[tuple[str, Mapping[str, Any], uuid.UUID | None]],
    correlation_id: str | None,
    at: datetime | None,
) -> dict[str, Any]:
    at = at or datetime.now(UTC)
    corr = correlation_id or _current_correlation()
    return {
        "types": [t for t, _, _ in events],
        "customers": [c for _, _, c in events],
        "datas": [
            json.dumps({**d, "correlation_id": corr}, default=_json_default) for _, d, _ in events
        ],
        "correlation_id": corr,
        "timestamp": _json_default(at),
        "at": at,
    }


async def emit_tracked(
    session: AsyncSession,
    events: Sequence[tuple[str, Mapping[str, Any], uuid.UUID | None]],
    *,
    at: datetime | None = None,
) -> list[uuid.UUID | None]:
    """Like ``emit_many``, for events whose delivery the caller follows (notifications):
    per event, in order, its id when at least one subscription will receive it, else None."""
    if not events:
        return []
    wanted = await _subscribed_types(session)
    positions = [i for i, e in enumerate(events) if "*" in wanted or e[0] in wanted]
    ids: list[uuid.UUID | None] = [None] * len(events)
    if not positions:
        return ids
    chosen = [events[i] for i in positions]
    rows = await session.execute(_EMIT_TRACKED, _emit_params(chosen, None, at))
    for ord_, event_id, deliveries in rows:
        if deliveries:
            ids[positions[ord_ - 1]] = event_id
    if any(i is not None for i in ids):
        await _announce(session)
    return ids


async def emit(
    session: AsyncSession,
    type: str,
    data: Mapping[str, Any],
    *,
    customer_id: uuid.UUID | None = None,
    correlation_id: str | None = None,
) -> int:
    """Write one event to the outbox in the session's transaction (see ``emit_many``)."""
    return await emit_many(session, [(type, data, customer_id)], correlation_id=correlation_id)


async def _subscribed_types(session: AsyncSession) -> frozenset[str]:
    """The event types enabled subscriptions receive, read once per transaction (a move asks
    whether anyone wants its events, then emits them)."""
    transaction = session.sync_session.get_transaction()
    cached = session.info.get(_SUBSCRIBED)
    if cached is not None and transaction is not None and cached[0] is transaction:
        return cached[1]
    connection = await transaction_connection(session)
    wanted = frozenset(await connection.fetchval(SUBSCRIBED_TYPES) or ())
    session.info[_SUBSCRIBED] = (transaction, wanted)
    return wanted


def note_subscribed_types(session: AsyncSession, types: Sequence[str] | None) -> None:
    """Remember what ``SUBSCRIBED_TYPES`` returned in this transaction (read by a statement
    that carried it), so ``wants_ownership_events`` and ``emit`` do not ask again."""
    session.info[_SUBSCRIBED] = (session.sync_session.get_transaction(), frozenset(types or ()))


def _current_correlation() -> str | None:
    return correlation_id.get()


async def _announce(session: AsyncSession) -> None:
    """Wake a worker once per transaction; the sweep covers a lost or skipped announcement."""
    transaction = session.sync_session.get_transaction()
    if transaction is None or session.info.get(_ANNOUNCED) is transaction:
        return
    await enqueue(session, DELIVER_WEBHOOKS, "")
    session.info[_ANNOUNCED] = transaction


BATCH_TYPE = "ownership.changed.batch"


async def wants_ownership_events(session: AsyncSession) -> bool:
    """Whether any enabled subscription receives ``customer.assigned``/``unassigned`` or
    their batches, so a bulk move can skip reading previous owners and building events
    nobody gets."""
    wanted = await _subscribed_types(session)
    return bool(wanted & {"*", "customer.assigned", "customer.unassigned", BATCH_TYPE})


_BATCH_SUBSCRIBERS = text(
    """
    SELECT batch_size, array_agg(id ORDER BY id) FROM webhook_subscriptions
     WHERE enabled AND CAST(:type AS text) = ANY (event_types)
     GROUP BY batch_size
    """
)
# Batches go to the subscriptions named (those sharing a batch size), unordered: each says
# which of how many it is.
_EMIT_BATCHES = text(
    """
    WITH e AS MATERIALIZED (
        SELECT gen_random_uuid() AS id, CAST(u.data AS jsonb) AS data, u.ord
          FROM unnest(CAST(:datas AS text[])) WITH ORDINALITY AS u(data, ord)
    ), events AS (
        INSERT INTO webhook_events (id, type, customer_id, correlation_id, payload, created_at)
        SELECT e.id, CAST(:type AS text), NULL, CAST(:correlation_id AS text),
               jsonb_build_object(
                   'type', CAST(:type AS text), 'timestamp', CAST(:timestamp AS text),
                   'data', e.data),
               :at
          FROM e
         ORDER BY e.ord
    ), deliveries AS (
        INSERT INTO webhook_deliveries
               (event_id, subscription_id, ordering_key, next_attempt_at, created_at)
        SELECT e.id, s.id, NULL, :at, :at
          FROM e, unnest(CAST(:subscriptions AS uuid[])) AS s(id)
         ORDER BY e.ord, s.id
        RETURNING 1
    )
    SELECT count(*) FROM deliveries
    """
)


def _str(value: Any) -> Any:
    return None if value is None else str(value)


async def _emit_batches(
    session: AsyncSession,
    moves: Sequence[Sequence[Any]],
    common: Mapping[str, Any],
    *,
    at: datetime,
) -> int:
    """``ownership.changed.batch`` events: the moves in chunks of each subscriber's
    ``batch_size``, so a bulk move of 100 000 customers is a hundred deliveries, not 100 000.
    Only subscriptions that name the type get them (``*`` does not imply it)."""
    groups = (await session.execute(_BATCH_SUBSCRIBERS, {"type": BATCH_TYPE})).all()
    if not groups:
        return 0
    corr = _current_correlation()
    changes = [
        {"customer_id": str(c), "old_manager_id": _str(old), "manager_id": _str(new)}
        for c, old, new in moves
    ]
    created = 0
    for size, subscriptions in groups:
        chunks = [changes[i : i + size] for i in range(0, len(changes), size)]
        datas = [
            json.dumps(
                {
                    **common,
                    "changes": chunk,
                    "count": len(chunk),
                    "sequence": n,
                    "batches": len(chunks),
                    "total": len(changes),
                    "correlation_id": corr,
                },
                default=_json_default,
            )
            for n, chunk in enumerate(chunks, start=1)
        ]
        created += int(
            await session.scalar(
                _EMIT_BATCHES,
                {
                    "type": BATCH_TYPE,
                    "datas": datas,
                    "subscriptions": list(subscriptions),
                    "correlation_id": corr,
                    "timestamp": _json_default(at),
                    "at": at,
                },
            )
            or 0
        )
    if created:
        await _announce(session)
    return created


async def emit_ownership_changes(
    session: AsyncSession,
    moves: Sequence[Sequence[Any]],
    *,
    reason: str,
    actor: str,
    at: datetime,
    handover_id: uuid.UUID | None = None,
    note: str | None = None,
) -> int:
    """One ``customer.assigned`` (or ``customer.unassigned`` when going to the pool) per
    ``(customer_id, old_manager_id, manager_id)`` moved, in one statement; and the same
    changes in ``ownership.changed.batch`` events for the subscriptions that want batches."""
    common = {
        "reason": reason,
        "actor": actor,
        "handover_id": handover_id,
        "note": note,
    }
    batched = 0
    if BATCH_TYPE in await _subscribed_types(session):
        batched = await _emit_batches(session, moves, common, at=at)
    return batched + await emit_many(
        session,
        [
            (
                "customer.assigned" if new is not None else "customer.unassigned",
                {
                    "customer_id": customer_id,
                    "old_manager_id": old,
                    "manager_id": new,
                    **common,
                },
                customer_id,
            )
            for customer_id, old, new in moves
        ],
        at=at,
    )
