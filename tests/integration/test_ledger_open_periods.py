"""One open ledger period per customer, without an index on ``ended_at`` (migration 0018):
closing a period is an update in place, and the ledger's check refuses a second open period
with the SQLSTATE and the name of the unique index it replaced, in every form a writer can
try, against concurrent writers, and through the API's error translation."""

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest
from fastapi import Request
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from app.assignments.repository import move_customers
from app.db.session import asyncpg_dsn, transaction_connection
from app.main import create_app
from app.settings import Settings
from tests.integration.factories import (
    assert_problem,
    create_customer,
    create_manager,
    create_tiers,
    ok,
)

CONSTRAINT = "uq_assignments_open_per_customer"


async def _wait_until_someone_waits_for(session) -> None:
    """Until another session waits for a lock this session's transaction holds."""
    for _ in range(3000):
        await session.execute(text("SELECT pg_stat_clear_snapshot()"))
        waiting = await session.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))"
            )
        )
        if waiting.scalar_one():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("nobody waited for the lock")


async def _periods(session, customer_id) -> list[tuple[str, bool]]:
    rows = await session.execute(
        text(
            "SELECT manager_id::text, ended_at IS NULL AS open FROM assignments"
            " WHERE customer_id = :c ORDER BY id"
        ),
        {"c": customer_id},
    )
    return [(r.manager_id, r.open) for r in rows]


async def test_moves_close_periods_in_place(api, client):
    """A move through the API (one customer: one statement) and a set-based move close their
    periods with heap-only-tuple updates: no index of the ledger names ``ended_at``."""
    await create_tiers(client)
    first, second, third = [await create_manager(client, level=3) for _ in range(3)]
    customers = [
        await create_customer(client, tier="standard", manager_id=first["id"]) for _ in range(3)
    ]
    await ok(
        await client.patch(f"/v1/customers/{customers[0]['id']}", json={"manager_id": second["id"]})
    )
    async with api.factory() as session:
        await move_customers(
            session,
            customer_ids=[uuid.UUID(c["id"]) for c in customers[1:]],
            manager_ids=[uuid.UUID(third["id"])] * 2,
            reason="rebalance",
            actor="tests",
            at=datetime.now(UTC),
        )
        updated, in_place = (
            await session.execute(
                text(
                    "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables"
                    " WHERE relname = 'assignments'"
                )
            )
        ).one()
        naming = (
            await session.execute(
                text(
                    "SELECT count(*) FROM pg_indexes WHERE tablename = 'assignments'"
                    " AND (indexdef LIKE '%ended_at%' OR indexdef LIKE '%end_reason%')"
                )
            )
        ).scalar_one()
        await session.commit()
    assert (updated, in_place, naming) == (3, 3, 0)
    history = await ok(await client.get(f"/v1/customers/{customers[0]['id']}/history"))
    assert [(r["manager_id"], r["ended_at"] is None) for r in history["items"]] == [
        (second["id"], True),
        (first["id"], False),
    ]


async def _refused(session, statement: str, params: dict) -> None:
    savepoint = await session.begin_nested()
    with pytest.raises(IntegrityError) as raised:
        await session.execute(text(statement), params)
    await savepoint.rollback()
    cause = raised.value.orig.__cause__
    assert (cause.sqlstate, cause.constraint_name) == ("23505", CONSTRAINT), cause


async def test_a_second_open_period_is_refused_in_every_form(api, client):
    await create_tiers(client)
    owner = await create_manager(client, level=3)
    held, other = [
        await create_customer(client, tier="standard", manager_id=owner["id"]) for _ in range(2)
    ]
    pooled = await create_customer(client, tier="standard")
    params = {"c": held["id"], "o": other["id"], "p": pooled["id"], "m": owner["id"]}
    async with api.factory() as session:
        await session.execute(
            text(
                "INSERT INTO assignments (customer_id, manager_id, started_at, ended_at,"
                " reason, actor) VALUES (:c, :m, now() - interval '2 days',"
                " now() - interval '1 day', 'manual', 'tests')"
            ),
            params,
        )
        insert = (
            "INSERT INTO assignments (customer_id, manager_id, started_at, reason, actor) VALUES "
        )
        # beside an open period; two in one statement
        await _refused(session, insert + "(:c, :m, now(), 'manual', 'tests')", params)
        await _refused(
            session,
            insert + "(:p, :m, now(), 'manual', 'tests'), (:p, :m, now(), 'manual', 'tests')",
            params,
        )
        # reopening a closed period; moving an open period onto a customer with one
        await _refused(
            session,
            "UPDATE assignments SET ended_at = NULL WHERE customer_id = :c",
            params,
        )
        await _refused(
            session,
            "UPDATE assignments SET customer_id = :c WHERE customer_id = :o",
            params,
        )
        # one open period for a customer without one, and closed periods, are fine
        await session.execute(text(insert + "(:p, :m, now(), 'manual', 'tests')"), params)
        await session.execute(
            text("UPDATE assignments SET note = 'checked' WHERE customer_id = :c"), params
        )
        assert await _periods(session, held["id"]) == [(owner["id"], True), (owner["id"], False)]
        await session.rollback()


async def test_a_second_open_period_written_on_the_driver_answers_409_naming_it(api, client):
    """The hot paths run on asyncpg directly; the refusal is the 409 problem an index gave."""
    await create_tiers(client)
    owner = await create_manager(client, level=3)
    customer = await create_customer(client, tier="standard", manager_id=owner["id"])
    app = create_app(Settings(environment="production", rate_limit=""))
    app.state.session_factory = api.factory
    app.state.db_engine = api.app.state.db_engine

    async def second_period(request: Request) -> None:
        async with api.factory() as session:
            connection = await transaction_connection(session)
            await connection.execute(
                "INSERT INTO assignments (customer_id, manager_id, started_at, reason, actor)"
                " VALUES ($1, $2, now(), 'manual', 'tests')",
                uuid.UUID(customer["id"]),
                uuid.UUID(owner["id"]),
            )

    app.add_api_route("/second-period", second_period, methods=["POST"])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.post("/second-period")

    problem = assert_problem(response, 409)
    assert (problem["code"], problem["constraint"]) == ("constraint_violation", CONSTRAINT)


async def test_a_period_opened_while_a_move_holds_the_customer_waits_and_is_refused(
    committed_client, fresh_database, factory
):
    """A writer opening a period for a customer a move holds waits for the move (as the index
    made it wait), then sees the period the move opened and is refused; the move stands."""
    client = committed_client
    await create_tiers(client)
    first, second = [await create_manager(client, level=3) for _ in range(2)]
    customers = [
        await create_customer(client, tier="standard", manager_id=first["id"]) for _ in range(2)
    ]
    writer = await asyncpg.connect(asyncpg_dsn(fresh_database))
    try:
        async with factory() as session:
            await move_customers(
                session,
                customer_ids=[uuid.UUID(c["id"]) for c in customers],
                manager_ids=[uuid.UUID(second["id"])] * 2,
                reason="rebalance",
                actor="tests",
                at=datetime.now(UTC),
            )
            opening = asyncio.create_task(
                writer.execute(
                    "INSERT INTO assignments (customer_id, manager_id, started_at, reason, actor)"
                    " VALUES ($1, $2, now(), 'manual', 'tests')",
                    uuid.UUID(customers[1]["id"]),
                    uuid.UUID(first["id"]),
                )
            )
            await _wait_until_someone_waits_for(session)
            await session.commit()
        with pytest.raises(asyncpg.UniqueViolationError) as raised:
            await opening
    finally:
        await writer.close()

    assert raised.value.constraint_name == CONSTRAINT
    for c in customers:
        history = await ok(await client.get(f"/v1/customers/{c['id']}/history"))
        assert [(r["manager_id"], r["ended_at"] is None) for r in history["items"]] == [
            (second["id"], True),
            (first["id"], False),
        ]


async def test_concurrent_set_based_moves_of_the_same_customers_leave_one_open_period(
    committed_client, factory
):
    """The second move waits for the first, then closes the periods the first opened."""
    client = committed_client
    await create_tiers(client)
    first, second, third = [await create_manager(client, level=3) for _ in range(3)]
    customers = [
        await create_customer(client, tier="standard", manager_id=first["id"]) for _ in range(3)
    ]
    ids = [uuid.UUID(c["id"]) for c in customers]

    async def move(session, to) -> int:
        return await move_customers(
            session,
            customer_ids=ids,
            manager_ids=[uuid.UUID(to["id"])] * len(ids),
            reason="rebalance",
            actor="tests",
            at=datetime.now(UTC),
        )

    async with factory() as session:
        assert await move(session, second) == 3

        async def later() -> int:
            async with factory() as other:
                moved = await move(other, third)
                await other.commit()
                return moved

        waiting = asyncio.create_task(later())
        await _wait_until_someone_waits_for(session)
        await session.commit()
    assert await waiting == 3

    for c in customers:
        after = await ok(await client.get(f"/v1/customers/{c['id']}"))
        assert after["manager_id"] == third["id"]
        history = await ok(await client.get(f"/v1/customers/{c['id']}/history"))
        assert [(r["manager_id"], r["ended_at"] is None) for r in history["items"]] == [
            (third["id"], True),
            (second["id"], False),
            (first["id"], False),
        ]


async def test_an_open_period_under_repeatable_read_is_refused_not_counted_on_a_stale_snapshot(
    committed_client, fresh_database
):
    client = committed_client
    await create_tiers(client)
    owner = await create_manager(client, level=3)
    customer = await create_customer(client, tier="standard")
    conn = await asyncpg.connect(asyncpg_dsn(fresh_database))
    try:
        async with conn.transaction(isolation="repeatable_read"):
            with pytest.raises(asyncpg.SerializationError):
                await conn.execute(
                    "INSERT INTO assignments (customer_id, manager_id, started_at, reason, actor)"
                    " VALUES ($1, $2, now(), 'manual', 'tests')",
                    uuid.UUID(customer["id"]),
                    uuid.UUID(owner["id"]),
                )
    finally:
        await conn.close()
    history = await ok(await client.get(f"/v1/customers/{customer['id']}/history"))
    assert history["items"] == []


FOREIGN_KEY = "fk_assignments_customer_id_customers"


async def _refused_with(session, statement: str, params: dict) -> tuple[str, str]:
    savepoint = await session.begin_nested()
    with pytest.raises(IntegrityError) as raised:
        await session.execute(text(statement), params)
    await savepoint.rollback()
    cause = raised.value.orig.__cause__
    return cause.sqlstate, cause.constraint_name


async def test_the_lock_on_an_open_periods_customer_proves_it_exists(api, client):
    """Migration 0019: the customer of an open period is locked once, and that lock is its
    reference check: a missing one is refused with the foreign key's SQLSTATE and name, in
    every mix of open and closed periods; two open periods are still refused first."""
    await create_tiers(client)
    owner = await create_manager(client, level=3)
    pooled = await create_customer(client, tier="standard")
    params = {"p": pooled["id"], "m": owner["id"], "x": str(uuid.uuid4())}
    insert = (
        "INSERT INTO assignments (customer_id, manager_id, started_at, ended_at, reason, actor)"
    )
    open_, closed = "now(), NULL, 'manual', 'tests'", "now(), now(), 'manual', 'tests'"
    async with api.factory() as session:
        for values in (
            f"(:x, :m, {open_})",
            f"(:p, :m, {open_}), (:x, :m, {closed})",
            f"(:x, :m, {open_}), (:p, :m, {closed})",
            f"(:x, :m, {closed}), (:x, :m, {open_})",
        ):
            assert await _refused_with(session, f"{insert} VALUES {values}", params) == (
                "23503",
                FOREIGN_KEY,
            ), values
        assert await _refused_with(
            session, f"{insert} VALUES (:x, :m, {open_}), (:x, :m, {open_})", params
        ) == ("23505", CONSTRAINT)

        # One open period for a customer that exists passes.
        await session.execute(text(f"{insert} VALUES (:p, :m, {open_})"), params)
        assert await _periods(session, pooled["id"]) == [(owner["id"], True)]
        await session.rollback()


async def test_a_period_opened_for_a_customer_being_deleted_waits_and_fails(
    committed_client, fresh_database, factory
):
    """The delete holds the customer's row; opening a period for it waits on the check's lock,
    and once the delete commits it is refused as a missing reference, leaving nothing."""
    client = committed_client
    await create_tiers(client)
    owner = await create_manager(client, level=3)
    customer = await create_customer(client, tier="standard")
    deleter = await asyncpg.connect(asyncpg_dsn(fresh_database))
    try:
        deleting = deleter.transaction()
        await deleting.start()
        await deleter.execute("DELETE FROM customers WHERE id = $1", uuid.UUID(customer["id"]))

        async def open_period() -> None:
            async with factory() as session:
                await session.execute(
                    text(
                        "INSERT INTO assignments (customer_id, manager_id, started_at, reason,"
                        " actor) VALUES (:c, :m, now(), 'manual', 'tests')"
                    ),
                    {"c": customer["id"], "m": owner["id"]},
                )
                await session.commit()

        opening = asyncio.create_task(open_period())
        for _ in range(3000):
            await deleter.execute("SELECT pg_stat_clear_snapshot()")
            if await deleter.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))"
            ):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("nobody waited for the delete")
        await deleting.commit()
        with pytest.raises(IntegrityError) as raised:
            await opening
    finally:
        await deleter.close()

    cause = raised.value.orig.__cause__
    assert (cause.sqlstate, cause.constraint_name) == ("23503", FOREIGN_KEY)
    async with factory() as session:
        left = await session.execute(
            text("SELECT count(*) FROM assignments WHERE customer_id = :c"), {"c": customer["id"]}
        )
        assert left.scalar_one() == 0
