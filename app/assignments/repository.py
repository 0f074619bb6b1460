"""The ownership ledger: every change of owner goes through ``move_customers``."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import repository as audit_events
from app.customers.repository import CustomerRow
from app.db.models import Assignment, Customer
from app.db.rows import row_as, rows_as
from app.db.session import transaction_connection
from app.events import outbox
from app.vocabulary import AssignmentReason

# The customer rows are updated first: that takes their row locks, so a concurrent move of
# the same customer waits and then reconciles the ledger against the committed owner. The
# moved set comes back as two arrays in one row (no per-row result handling at 100k rows) and
# drives the next statements, so none of them re-reads customers.
_UPDATE_CUSTOMERS = text(
    """
    WITH moved AS (
        UPDATE customers AS c
           SET manager_id = i.manager_id, version = c.version + 1, updated_at = :at,
               owner_since = CASE WHEN i.manager_id IS NULL THEN NULL
                                  ELSE CAST(:at AS timestamptz) END
          FROM unnest(CAST(:ids AS uuid[]), CAST(:managers AS uuid[])) AS i(id, manager_id)
         WHERE c.id = i.id AND c.manager_id IS DISTINCT FROM i.manager_id
        RETURNING c.id, c.manager_id
    )
    SELECT array_agg(id), array_agg(manager_id) FROM moved
    """
)
_CLOSE_ROWS = text(
    """
    UPDATE assignments AS a
       SET ended_at = :at, end_reason = CAST(:end_reason AS text)
      FROM unnest(CAST(:ids AS uuid[])) AS i(id)
     WHERE a.customer_id = i.id AND a.ended_at IS NULL
    """
)
# The same, naming the previous owners (for outbound events).
_CLOSE_ROWS_RETURNING = text(
    """
    WITH closed AS (
        UPDATE assignments AS a
           SET ended_at = :at, end_reason = CAST(:end_reason AS text)
          FROM unnest(CAST(:ids AS uuid[])) AS i(id)
         WHERE a.customer_id = i.id AND a.ended_at IS NULL
        RETURNING a.customer_id, a.manager_id
    )
    SELECT array_agg(customer_id), array_agg(manager_id) FROM closed
    """
)
# A customer that changes owner leaves its recorded violation behind; a forced move onto a
# non-compliant owner is recorded again by the guard right after.
_RESOLVE_MOVED = text(
    """
    UPDATE ownership_violations SET resolved_at = :at, resolution = 'moved'
     WHERE customer_id = ANY(CAST(:ids AS uuid[])) AND resolved_at IS NULL
    """
)
_OPEN_ROWS = text(
    """
    INSERT INTO assignments (customer_id, manager_id, started_at, reason, actor, handover_id, note)
    SELECT i.id, i.manager_id, :at, :reason, :actor, :handover_id, :note
      FROM unnest(CAST(:ids AS uuid[]), CAST(:managers AS uuid[])) AS i(id, manager_id)
     WHERE i.manager_id IS NOT NULL
    """
)
# One customer's move in one statement, on the driver's connection (a manual assignment's
# hot path): the same four changes as the set-based statements below. ``closed`` is read by
# the insert, so the open period is closed before its successor is inserted (the ledger's
# one-open-period index) whatever order Postgres runs the parts in. No row: the customer
# already has that owner (or does not exist).
_MOVE_ONE_PARTS = """
    WITH moved AS (
        UPDATE customers
           SET manager_id = $2, version = version + 1, updated_at = $3,
               owner_since = CASE WHEN $2::uuid IS NULL THEN NULL ELSE $3::timestamptz END
         WHERE id = $1 AND manager_id IS DISTINCT FROM $2::uuid
        RETURNING {returning}
    ), closed AS (
        UPDATE assignments AS a SET ended_at = $3, end_reason = $8::text
         WHERE a.customer_id = $1 AND a.ended_at IS NULL AND EXISTS (SELECT FROM moved)
        RETURNING a.manager_id
    ), opened AS (
        INSERT INTO assignments
               (customer_id, manager_id, started_at, reason, actor, handover_id, note)
        SELECT id, manager_id, $3, $4, $5, $6, $7 FROM moved
         WHERE manager_id IS NOT NULL AND (SELECT count(*) FROM closed) >= 0
    ), resolved AS (
        UPDATE ownership_violations SET resolved_at = $3, resolution = 'moved'
         WHERE customer_id = $1 AND resolved_at IS NULL AND EXISTS (SELECT FROM moved)
    ){more}
    SELECT {columns}(SELECT manager_id FROM closed LIMIT 1) AS previous,
           ({subscribed}) AS subscribed
      FROM moved
"""
_MOVE_ONE = _MOVE_ONE_PARTS.format(
    returning="id, manager_id", more="", columns="", subscribed=outbox.SUBSCRIBED_TYPES
)
# The same, answering the customer's row after the move (a manual move's response), writing
# its outbound event ($9: the event's context) and, when one is given, the request's audit
# event (parameters $10 on) with it: one round trip for everything a manual move writes.
_CUSTOMER_COLUMNS = ", ".join(
    "tier_code AS tier" if f.name == "tier" else f.name for f in dataclasses.fields(CustomerRow)
)
_PREVIOUS = "(SELECT manager_id FROM closed LIMIT 1)"
_EVENT = outbox.ownership_event(
    moved="moved", previous=_PREVIOUS, at="$3", reason="$4", actor="$5", note="$7", context="$9"
)
_MOVE_ONE_RETURNING = _MOVE_ONE_PARTS.format(
    returning=_CUSTOMER_COLUMNS,
    more=_EVENT,
    columns="moved.*, NULL::bigint AS audit_id, "
    "(SELECT count(*) FROM event_deliveries) AS delivered, ",
    subscribed=outbox.SUBSCRIBED_TYPES,
)
_MOVE_ONE_AUDITED = _MOVE_ONE_PARTS.format(
    returning=_CUSTOMER_COLUMNS,
    more=f"{_EVENT}, audited AS ({audit_events.insert_from('moved', 10)})",
    columns="moved.*, (SELECT id FROM audited) AS audit_id, "
    "(SELECT count(*) FROM event_deliveries) AS delivered, ",
    subscribed=outbox.SUBSCRIBED_TYPES,
)


_LOCK_ONE = "SELECT FROM customers WHERE id = $1 FOR UPDATE"


async def _move_one(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    manager_id: uuid.UUID | None,
    reason: str,
    actor: str,
    at: datetime,
    handover_id: uuid.UUID | None,
    note: str | None,
    end_reason: str | None,
    customer_locked: bool,
) -> int:
    """``move_customers`` for one customer: one round trip instead of five (see
    ``_MOVE_ONE``, which also reads who subscribes to events), plus the events when someone
    subscribes to them.

    ``_MOVE_ONE`` reads the ledger with the snapshot it starts with, so the customer's row
    must be locked before it runs: a move committed while it waited for that lock would
    otherwise leave an open period it cannot see (a second open period, or an owner-less
    customer with one). A caller that has not locked the customer pays one more round trip."""
    connection = await transaction_connection(session)
    if not customer_locked:
        await connection.execute(_LOCK_ONE, customer_id)
    moved = await connection.fetchrow(
        _MOVE_ONE, customer_id, manager_id, at, reason, actor, handover_id, note, end_reason
    )
    if moved is None:
        return 0
    await _announce_move(
        session,
        moved,
        customer_id=customer_id,
        manager_id=manager_id,
        reason=reason,
        actor=actor,
        at=at,
        handover_id=handover_id,
        note=note,
    )
    return 1


async def _announce_move(
    session: AsyncSession,
    moved: Any,
    *,
    customer_id: uuid.UUID,
    manager_id: uuid.UUID | None,
    reason: str,
    actor: str,
    at: datetime,
    handover_id: uuid.UUID | None,
    note: str | None,
) -> None:
    """The outbound events of one customer's move, when someone subscribes to them (the move's
    statement read who does)."""
    outbox.note_subscribed_types(session, moved["subscribed"])
    if await outbox.wants_ownership_events(session):
        await outbox.emit_ownership_changes(
            session,
            [(customer_id, moved["previous"], manager_id)],
            reason=reason,
            actor=actor,
            at=at,
            handover_id=handover_id,
            note=note,
        )


async def move_one_customer(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    manager_id: uuid.UUID | None,
    reason: str,
    actor: str,
    at: datetime,
    note: str | None = None,
    audit_event: dict[str, Any] | None = None,
) -> tuple[CustomerRow | None, int | None]:
    """``move_customers`` for one customer whose row the caller locked (a manual move, a
    single placement): the same one statement, which also answers the customer's row after
    the move, writes its ``customer.assigned`` event when someone subscribes to it and, given
    ``audit_event`` (``audit.take_expected``), the request's audit event. Returns the
    customer as it now is (None when it already had that owner: nothing written) and the id
    of the audit event written, if one was."""
    connection = await transaction_connection(session)
    args: list[Any] = [customer_id, manager_id, at, reason, actor, None, note, None]
    args.append(outbox.ownership_event_context(at))
    if audit_event is None:
        moved = await connection.fetchrow(_MOVE_ONE_RETURNING, *args)
    else:
        moved = await connection.fetchrow(
            _MOVE_ONE_AUDITED, *args, *audit_events.event_args(audit_event)
        )
    if moved is None:
        return None, None
    columns = dict(moved)
    audit_id: int | None = columns.pop("audit_id")
    previous, subscribed = columns.pop("previous"), columns.pop("subscribed")
    outbox.note_subscribed_types(session, subscribed)
    if columns.pop("delivered"):
        await outbox.announce(session)
    await outbox.emit_ownership_batches(
        session, [(customer_id, previous, manager_id)], reason=reason, actor=actor, at=at, note=note
    )
    return row_as(CustomerRow, columns), audit_id


async def move_customers(
    session: AsyncSession,
    *,
    customer_ids: Sequence[uuid.UUID],
    manager_ids: Sequence[uuid.UUID | None],
    reason: str,
    actor: str,
    at: datetime,
    handover_id: uuid.UUID | None = None,
    note: str | None = None,
    end_reason: str | None = None,
    customer_locked: bool = False,
) -> int:
    """Set each customer's owner (None = pool) and write the ledger, set-based.

    ``end_reason`` is recorded on the ledger periods the move closes (a move to the pool
    opens no period to carry its reason: ``reclaimed_inactive``).

    Three statements whatever the number of customers: update the owners (which locks the
    rows of the customers that really move), close their open ledger rows, open rows for the
    new owners; and, when someone subscribes to them, one outbound ``customer.assigned`` /
    ``customer.unassigned`` event per moved customer (one customer: one statement, see
    ``_move_one``; ``customer_locked`` says the caller already holds its row lock). Customers
    already with the requested
    owner are left alone; moved customers' open violations are resolved. Returns how many
    customers changed owner.
    """
    if len(customer_ids) != len(manager_ids):
        raise ValueError("customer_ids and manager_ids differ in length")
    if not customer_ids:
        return 0
    if len(customer_ids) == 1:
        return await _move_one(
            session,
            customer_id=customer_ids[0],
            manager_id=manager_ids[0],
            reason=reason,
            actor=actor,
            at=at,
            handover_id=handover_id,
            note=note,
            end_reason=end_reason,
            customer_locked=customer_locked,
        )
    moved_ids, moved_to = (
        await session.execute(
            _UPDATE_CUSTOMERS,
            {"ids": list(customer_ids), "managers": list(manager_ids), "at": at},
        )
    ).one()
    if not moved_ids:
        return 0
    events = await outbox.wants_ownership_events(session)
    previous: dict[uuid.UUID, uuid.UUID] = {}
    if events:
        closed = (
            await session.execute(
                _CLOSE_ROWS_RETURNING, {"ids": moved_ids, "at": at, "end_reason": end_reason}
            )
        ).one()
        previous = dict(zip(closed[0] or [], closed[1] or [], strict=True))
    else:
        await session.execute(_CLOSE_ROWS, {"ids": moved_ids, "at": at, "end_reason": end_reason})
    await session.execute(
        _OPEN_ROWS,
        {
            "ids": moved_ids,
            "managers": moved_to,
            "at": at,
            "reason": reason,
            "actor": actor,
            "handover_id": handover_id,
            "note": note,
        },
    )
    await session.execute(_RESOLVE_MOVED, {"ids": moved_ids, "at": at})
    if events:
        await outbox.emit_ownership_changes(
            session,
            [
                (customer, previous.get(customer), owner)
                for customer, owner in zip(moved_ids, moved_to, strict=True)
            ],
            reason=reason,
            actor=actor,
            at=at,
            handover_id=handover_id,
            note=note,
        )
    return len(moved_ids)


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One period of ownership."""

    id: int
    customer_id: uuid.UUID
    manager_id: uuid.UUID
    started_at: datetime
    ended_at: datetime | None
    reason: AssignmentReason
    actor: str
    handover_id: uuid.UUID | None
    note: str | None
    end_reason: AssignmentReason | None


@dataclass(frozen=True, slots=True)
class ViolationRow:
    """A recorded violation with the names a list shows."""

    id: int
    customer_id: uuid.UUID
    customer_name: str
    tier: str
    manager_id: uuid.UUID
    manager_name: str
    team: str | None
    rules: list[dict[str, Any]]
    cause: str
    actor: str | None
    detected_at: datetime
    resolved_at: datetime | None
    resolution: str | None


@dataclass(frozen=True, slots=True)
class StoredPlan:
    """A reviewed plan kept under its token: the request and the digests of what it read."""

    token: str
    request: dict[str, Any]
    digests: dict[str, str]
    rules_version: int


async def history(
    session: AsyncSession, customer_id: uuid.UUID, *, after: int | None, limit: int
) -> list[LedgerRow]:
    """Ledger rows of one customer, newest first."""
    stmt = (
        select(*Assignment.__table__.c)
        .where(Assignment.customer_id == customer_id)
        .order_by(Assignment.id.desc())
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(Assignment.id < after)
    return rows_as(LedgerRow, (await session.execute(stmt)).mappings())


async def owner_at(session: AsyncSession, customer_id: uuid.UUID, at: datetime) -> LedgerRow | None:
    """The ledger row covering instant ``at``, if the customer had an owner then."""
    stmt = (
        select(*Assignment.__table__.c)
        .where(
            Assignment.customer_id == customer_id,
            Assignment.started_at <= at,
            (Assignment.ended_at.is_(None)) | (Assignment.ended_at > at),
        )
        .order_by(Assignment.started_at.desc(), Assignment.id.desc())
        .limit(1)
    )
    row = (await session.execute(stmt)).mappings().first()
    return None if row is None else row_as(LedgerRow, row)


async def compliance_scope(
    session: AsyncSession,
    *,
    customer_ids: Sequence[uuid.UUID],
    manager_ids: Sequence[uuid.UUID],
    tier_codes: Sequence[str],
    everything: bool,
) -> list[uuid.UUID]:
    """Active owned customers in scope, and customers in scope with an open violation."""
    params = {"cids": list(customer_ids), "mids": list(manager_ids), "tiers": list(tier_codes)}
    owned: list[str] = []
    open_: list[str] = []
    if customer_ids:
        owned.append("c.id = ANY(CAST(:cids AS uuid[]))")
        open_.append("v.customer_id = ANY(CAST(:cids AS uuid[]))")
    if manager_ids:
        owned.append("c.manager_id = ANY(CAST(:mids AS uuid[]))")
        open_.append("v.manager_id = ANY(CAST(:mids AS uuid[]))")
    if tier_codes:
        owned.append("c.tier_code = ANY(CAST(:tiers AS text[]))")
        open_.append("c.tier_code = ANY(CAST(:tiers AS text[]))")
    if everything:
        owned, open_ = ["true"], ["true"]
    if not owned:
        return []
    sql = f"""
        SELECT c.id FROM customers AS c
         WHERE c.status = 'active' AND c.manager_id IS NOT NULL AND ({" OR ".join(owned)})
        UNION
        SELECT v.customer_id FROM ownership_violations AS v
          JOIN customers AS c ON c.id = v.customer_id
         WHERE v.resolved_at IS NULL AND ({" OR ".join(open_)})
    """
    return list((await session.scalars(text(sql), params)).all())


_RESOLVE_VIOLATIONS = text(
    """
    UPDATE ownership_violations AS v
       SET resolved_at = :at,
           resolution = CASE WHEN v.customer_id = ANY(CAST(:cids AS uuid[])) THEN 'superseded'
                             ELSE 'compliant' END
     WHERE v.resolved_at IS NULL AND v.customer_id = ANY(CAST(:scope AS uuid[]))
       AND NOT EXISTS (
            SELECT 1
              FROM unnest(CAST(:cids AS uuid[]), CAST(:mids AS uuid[]), CAST(:rules AS text[]))
                   AS n(customer_id, manager_id, rules)
             WHERE n.customer_id = v.customer_id AND n.manager_id = v.manager_id
               AND CAST(n.rules AS jsonb) = v.rules)
    """
)
_INSERT_VIOLATIONS = text(
    """
    INSERT INTO ownership_violations (customer_id, manager_id, rules, cause, actor, detected_at)
    SELECT n.customer_id, n.manager_id, CAST(n.rules AS jsonb), :cause, :actor, :at
      FROM unnest(CAST(:cids AS uuid[]), CAST(:mids AS uuid[]), CAST(:rules AS text[]))
           AS n(customer_id, manager_id, rules)
     WHERE NOT EXISTS (SELECT 1 FROM ownership_violations AS v
                        WHERE v.customer_id = n.customer_id AND v.resolved_at IS NULL)
    RETURNING customer_id
    """
)


async def record_violations(
    session: AsyncSession,
    *,
    scope_ids: Sequence[uuid.UUID],
    customer_ids: Sequence[uuid.UUID],
    manager_ids: Sequence[uuid.UUID],
    rules: Sequence[list[dict[str, str]]],
    cause: str,
    actor: str | None,
    at: datetime,
) -> set[uuid.UUID]:
    """Make the open violations of the customers in ``scope_ids`` exactly the given ones, in
    two set-based statements; returns the customers whose violation is new."""
    params = {
        "scope": list(scope_ids),
        "cids": list(customer_ids),
        "mids": list(manager_ids),
        "rules": [json.dumps(r, sort_keys=True) for r in rules],
        "at": at,
    }
    await session.execute(_RESOLVE_VIOLATIONS, params)
    if not customer_ids:
        return set()
    inserted = await session.scalars(_INSERT_VIOLATIONS, {**params, "cause": cause, "actor": actor})
    return set(inserted.all())


async def list_violations(
    session: AsyncSession,
    *,
    state: str,
    manager_id: uuid.UUID | None,
    customer_id: uuid.UUID | None,
    rule: str | None,
    tier: str | None,
    team: str | None,
    after: int | None,
    limit: int,
) -> list[ViolationRow]:
    """Violations by id, filtered; ``state`` is open, resolved or all."""
    where = ["true"]
    params: dict[str, object] = {"limit": limit}
    if state == "open":
        where.append("v.resolved_at IS NULL")
    elif state == "resolved":
        where.append("v.resolved_at IS NOT NULL")
    for name, column, value in (
        ("manager", "v.manager_id", manager_id),
        ("customer", "v.customer_id", customer_id),
        ("tier", "c.tier_code", tier),
        ("team", "m.team", team),
    ):
        if value is not None:
            where.append(f"{column} = :{name}")
            params[name] = value
    if rule is not None:
        where.append("v.rules @> CAST(:rule AS jsonb)")
        params["rule"] = json.dumps([{"rule": rule}])
    if after is not None:
        where.append("v.id > :after")
        params["after"] = after
    sql = f"""
        SELECT v.id, v.customer_id, c.name AS customer_name, c.tier_code AS tier,
               v.manager_id, m.name AS manager_name, m.team, v.rules, v.cause, v.actor,
               v.detected_at, v.resolved_at, v.resolution
          FROM ownership_violations AS v
          JOIN customers AS c ON c.id = v.customer_id
          JOIN managers AS m ON m.id = v.manager_id
         WHERE {" AND ".join(where)}
         ORDER BY v.id
         LIMIT :limit
    """
    return rows_as(ViolationRow, (await session.execute(text(sql), params)).mappings())


async def violating_customers(
    session: AsyncSession,
    *,
    customer_ids: Sequence[uuid.UUID] | None,
    tier: str | None,
    region: str | None,
    manager_id: uuid.UUID | None,
) -> list[uuid.UUID]:
    """Active customers with an open violation, narrowed by the filters, by id."""
    where = ["v.resolved_at IS NULL", "c.status = 'active'"]
    params: dict[str, object] = {}
    if customer_ids is not None:
        where.append("c.id = ANY(CAST(:ids AS uuid[]))")
        params["ids"] = list(customer_ids)
    for name, column, value in (
        ("tier", "c.tier_code", tier),
        ("region", "c.region", region),
        ("manager", "c.manager_id", manager_id),
    ):
        if value is not None:
            where.append(f"{column} = :{name}")
            params[name] = value
    sql = f"""
        SELECT c.id FROM ownership_violations AS v JOIN customers AS c ON c.id = v.customer_id
         WHERE {" AND ".join(where)} ORDER BY c.id
    """
    return list((await session.scalars(text(sql), params)).all())


_SAVE_PLAN = text(
    """
    WITH pruned AS (DELETE FROM placement_plans WHERE created_at < now() - interval '7 days')
    INSERT INTO placement_plans (token, request, digests, rules_version, actor)
    VALUES (:token, CAST(:request AS jsonb), CAST(:digests AS jsonb), :version, :actor)
    """
)


async def save_plan(
    session: AsyncSession,
    *,
    token: str,
    request: dict[str, object],
    digests: dict[str, str],
    rules_version: int,
    actor: str | None,
) -> None:
    """Keep a dry run's request and input digests under its token (7 days)."""
    await session.execute(
        _SAVE_PLAN,
        {
            "token": token,
            "request": json.dumps(request),
            "digests": json.dumps(digests),
            "version": rules_version,
            "actor": actor,
        },
    )


async def get_plan(session: AsyncSession, token: str) -> StoredPlan | None:
    """The reviewed plan kept under ``token`` (younger than 7 days), locked for the apply."""
    row = (
        (
            await session.execute(
                text(
                    "SELECT token, request, digests, rules_version FROM placement_plans "
                    "WHERE token = :token AND created_at >= now() - interval '7 days' "
                    "FOR UPDATE"
                ),
                {"token": token},
            )
        )
        .mappings()
        .first()
    )
    return None if row is None else row_as(StoredPlan, row)


async def delete_plan(session: AsyncSession, token: str) -> None:
    """A plan is applied once."""
    await session.execute(
        text("DELETE FROM placement_plans WHERE token = :token"), {"token": token}
    )


async def rotation(session: AsyncSession) -> tuple[tuple[str, uuid.UUID], ...]:
    """Where each round-robin pool's turn stopped: (pool, last manager), by pool."""
    rows = await session.execute(
        text("SELECT pool, last_manager_id FROM rotation_cursors ORDER BY pool")
    )
    return tuple((r[0], r[1]) for r in rows.all())


async def save_rotation(session: AsyncSession, positions: dict[str, uuid.UUID]) -> None:
    """Record where the pools' turns stopped (placements are serialised, so no race)."""
    if not positions:
        return
    await session.execute(
        text(
            """
            INSERT INTO rotation_cursors (pool, last_manager_id, updated_at)
            SELECT p, m, now() FROM unnest(CAST(:pools AS text[]), CAST(:managers AS uuid[]))
                   AS i(p, m)
            ON CONFLICT (pool) DO UPDATE
               SET last_manager_id = EXCLUDED.last_manager_id, updated_at = now()
            """
        ),
        {"pools": list(positions), "managers": list(positions.values())},
    )


async def rotation_counts(
    session: AsyncSession, *, period_start: datetime
) -> tuple[tuple[str, uuid.UUID, int], ...]:
    """Weighted round robin's memory: (pool, manager, received) counted in the period that
    starts at ``period_start`` (rows of an earlier period count as nothing)."""
    rows = await session.execute(
        text(
            "SELECT pool, manager_id, received FROM rotation_counters "
            "WHERE period_start = :start ORDER BY pool, manager_id"
        ),
        {"start": period_start},
    )
    return tuple((r[0], r[1], int(r[2])) for r in rows.all())


async def save_rotation_counts(
    session: AsyncSession, counts: dict[str, dict[uuid.UUID, int]], *, period_start: datetime
) -> None:
    """Record what each pool's managers received in the period, one statement (placements
    are serialised, so no race); a row of an earlier period is replaced."""
    pools = [p for p, got in counts.items() for _ in got]
    managers = [m for got in counts.values() for m in got]
    received = [n for got in counts.values() for n in got.values()]
    if not pools:
        return
    await session.execute(
        text(
            """
            INSERT INTO rotation_counters (pool, manager_id, period_start, received, updated_at)
            SELECT p, m, :start, n, now()
              FROM unnest(CAST(:pools AS text[]), CAST(:managers AS uuid[]),
                          CAST(:received AS int[])) AS i(p, m, n)
            ON CONFLICT (pool, manager_id) DO UPDATE
               SET period_start = EXCLUDED.period_start, received = EXCLUDED.received,
                   updated_at = now()
            """
        ),
        {"pools": pools, "managers": managers, "received": received, "start": period_start},
    )


async def advisory_lock(session: AsyncSession, key: int) -> None:
    """Take a transaction-level advisory lock."""
    await session.execute(select(func.pg_advisory_xact_lock(key)))


async def active_among(session: AsyncSession, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Which of ``ids`` are active customers."""
    stmt = select(Customer.id).where(Customer.id.in_(ids), Customer.status == "active")
    return set((await session.scalars(stmt)).all())


async def active_customer_ids(
    session: AsyncSession,
    *,
    tier: str | None,
    region: str | None,
    manager_id: uuid.UUID | None,
    unassigned: bool | None,
) -> list[uuid.UUID]:
    """Active customers by id, filtered; ``unassigned`` True: in the pool, False: owned."""
    stmt = select(Customer.id).where(Customer.status == "active").order_by(Customer.id)
    if tier is not None:
        stmt = stmt.where(Customer.tier_code == tier)
    if region is not None:
        stmt = stmt.where(Customer.region == region)
    if manager_id is not None:
        stmt = stmt.where(Customer.manager_id == manager_id)
    if unassigned:
        stmt = stmt.where(Customer.manager_id.is_(None))
    elif unassigned is False:
        stmt = stmt.where(Customer.manager_id.is_not(None))
    return list((await session.scalars(stmt)).all())


async def customer_status(session: AsyncSession, customer_id: uuid.UUID) -> str | None:
    """The customer's status, or None when there is no such customer."""
    return await session.scalar(select(Customer.status).where(Customer.id == customer_id))


_WORKLOAD = text(
    """
    SELECT m.id, m.name, m.team, m.region, m.status, m.level, m.capacity,
           l.tier_code, COALESCE(l.customers, 0) AS customers,
           COALESCE(l.customers * t.weight, 0) AS workload
      FROM managers AS m
      LEFT JOIN (SELECT manager_id, tier_code, sum(customers) AS customers
                   FROM manager_loads GROUP BY manager_id, tier_code) AS l
             ON l.manager_id = m.id AND l.customers <> 0
      LEFT JOIN tiers AS t ON t.code = l.tier_code
     WHERE m.status <> 'departed'
       AND (CAST(:team AS text) IS NULL OR m.team = :team)
       AND (CAST(:region AS text) IS NULL OR m.region = :region)
       AND (CAST(:level AS int) IS NULL OR m.level = :level)
       AND (CAST(:status AS text) IS NULL OR m.status = :status)
     ORDER BY m.id, l.tier_code
    """
)
_POOL = text("SELECT count(*) FROM customers WHERE status = 'active' AND manager_id IS NULL")


async def workload_rows(session: AsyncSession, filters: dict[str, Any]) -> list[RowMapping]:
    """Managers (not departed, filtered by team, region, level, status) with their load per
    tier, one row per manager and tier (a manager with nobody: one row, no tier)."""
    return list((await session.execute(_WORKLOAD, filters)).mappings())


async def pool_size(session: AsyncSession) -> int:
    """The number of active customers without an owner."""
    return int((await session.scalar(_POOL)) or 0)


async def hold_owner_changes(session: AsyncSession, *, wait: str) -> None:
    """No customer changes owner until this transaction ends, and none is half-way through a
    change when this returns: waits (at most ``wait``, e.g. ``'5s'``; then Postgres raises
    ``lock_not_available``) for every transaction that locked or wrote customers — each
    writer locks the customers it moves before deciding — and holds new writers back until
    commit. Plain reads go on. For a change of what the rules decide (a new rule set, a
    tier's minimum level): the scan that follows then sees every move decided under the old
    facts, and every later move decides under the new ones."""
    await session.execute(text("SELECT set_config('lock_timeout', :wait, true)"), {"wait": wait})
    await session.execute(text("LOCK TABLE customers IN EXCLUSIVE MODE"))
    await session.execute(text("SELECT set_config('lock_timeout', '0', true)"))
