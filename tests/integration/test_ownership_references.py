"""The owners' and the ledger's references (customers.manager_id, assignments.customer_id,
assignments.manager_id) are checked once per statement by triggers (migration 0017): the same
refusals, constraint names and locking as the foreign keys they replaced, through the API and
against concurrent deletes."""

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


async def _fk_error(session, statement: str, params: dict) -> str | None:
    """Run ``statement`` in a savepoint; the constraint its foreign-key violation names."""
    savepoint = await session.begin_nested()
    with pytest.raises(IntegrityError) as raised:
        await session.execute(text(statement), params)
    await savepoint.rollback()
    cause = raised.value.orig.__cause__
    assert cause.sqlstate == "23503", cause
    return cause.constraint_name


async def test_every_reference_is_checked_with_the_constraint_names_of_before(api, client):
    await create_tiers(client)
    owner = await create_manager(client, level=3)
    customer = await create_customer(client, tier="standard", manager_id=owner["id"])
    nobody = str(uuid.uuid4())
    async with api.factory() as session:
        fk = await _fk_error(
            session,
            "UPDATE customers SET manager_id = :m WHERE id = :c",
            {"m": nobody, "c": customer["id"]},
        )
        assert fk == "fk_customers_manager_id_managers"
        fk = await _fk_error(
            session,
            "INSERT INTO customers (name, tier_code, manager_id) VALUES ('x', 'standard', :m)",
            {"m": nobody},
        )
        assert fk == "fk_customers_manager_id_managers"
        for column, constraint in (
            ("customer_id", "fk_assignments_customer_id_customers"),
            ("manager_id", "fk_assignments_manager_id_managers"),
        ):
            values = {"customer_id": customer["id"], "manager_id": owner["id"], column: nobody}
            fk = await _fk_error(
                session,
                "INSERT INTO assignments"
                " (customer_id, manager_id, started_at, ended_at, reason, actor)"
                " VALUES (:customer_id, :manager_id, now(), now(), 'manual', 'tests')",
                values,
            )
            assert fk == constraint
            fk = await _fk_error(
                session,
                f"UPDATE assignments SET {column} = :k WHERE customer_id = :c",
                {"k": nobody, "c": customer["id"]},
            )
            assert fk == constraint
        # The referenced side: an owner, a manager in the ledger, a customer in the ledger.
        fk = await _fk_error(session, "DELETE FROM managers WHERE id = :m", {"m": owner["id"]})
        assert fk == "fk_customers_manager_id_managers"
        await session.execute(
            text("UPDATE customers SET manager_id = NULL WHERE id = :c"), {"c": customer["id"]}
        )
        fk = await _fk_error(session, "DELETE FROM managers WHERE id = :m", {"m": owner["id"]})
        assert fk == "fk_assignments_manager_id_managers"
        fk = await _fk_error(session, "DELETE FROM customers WHERE id = :c", {"c": customer["id"]})
        assert fk == "fk_assignments_customer_id_customers"
        fk = await _fk_error(
            session, "UPDATE managers SET id = :n WHERE id = :m", {"n": nobody, "m": owner["id"]}
        )
        assert fk == "fk_assignments_manager_id_managers"
        await session.rollback()


async def test_a_customer_the_ledger_names_keeps_its_id_and_an_unnamed_one_may_change_it(
    api, client
):
    """Re-keying a customer is checked row by row, only for a row whose id changes: refused
    with the ledger's constraint name while a period names it, allowed for a customer never
    owned, and an update that sets other columns of the same rows changes them."""
    await create_tiers(client)
    owner = await create_manager(client, level=3)
    owned = await create_customer(client, tier="standard", manager_id=owner["id"])
    pooled = await create_customer(client, tier="standard")
    new_id = uuid.uuid4()
    async with api.factory() as session:
        fk = await _fk_error(
            session,
            "UPDATE customers SET id = :n WHERE id = :c",
            {"n": new_id, "c": owned["id"]},
        )
        assert fk == "fk_assignments_customer_id_customers"
        # The same id set to itself, beside a rename: no id changed, nothing refused.
        await session.execute(
            text("UPDATE customers SET id = id, name = 'same id' WHERE id = ANY(:ids)"),
            {"ids": [uuid.UUID(owned["id"]), uuid.UUID(pooled["id"])]},
        )
        await session.execute(
            text("UPDATE customers SET id = :n WHERE id = :c"), {"n": new_id, "c": pooled["id"]}
        )
        names = (
            await session.execute(
                text("SELECT id, name FROM customers WHERE id = ANY(:ids) ORDER BY name"),
                {"ids": [new_id, uuid.UUID(owned["id"]), uuid.UUID(pooled["id"])]},
            )
        ).all()
        assert sorted(names) == sorted([(new_id, "same id"), (uuid.UUID(owned["id"]), "same id")])
        await session.rollback()


async def test_an_id_the_ledger_names_may_pass_to_another_customer_in_the_same_statement(
    api, client
):
    """As a foreign key checks at the end of the statement: a customer the ledger names may
    give up its id when another row of the same statement takes it (the ledger's rows then
    name that customer). The statement updates the rows in the order of its list (each found
    by key in turn), so the owned customer gives up its id before the other takes it."""
    await create_tiers(client)
    owner = await create_manager(client, level=3)
    owned = await create_customer(client, tier="standard", manager_id=owner["id"])
    pooled = await create_customer(client, tier="standard", name="takes the id")
    elsewhere = uuid.uuid4()
    async with api.factory() as session:
        for setting in ("enable_seqscan", "enable_hashjoin", "enable_mergejoin"):
            await session.execute(text(f"SET LOCAL {setting} = off"))
        await session.execute(
            text(
                "UPDATE customers SET id = CASE v.id WHEN :owned THEN :elsewhere ELSE :owned END"
                " FROM (VALUES (CAST(:owned AS uuid)), (CAST(:pooled AS uuid))) AS v (id)"
                " WHERE customers.id = v.id"
            ),
            {"owned": owned["id"], "pooled": pooled["id"], "elsewhere": elsewhere},
        )
        named = await session.scalar(
            text(
                "SELECT c.name FROM assignments AS a JOIN customers AS c ON c.id = a.customer_id"
                " WHERE a.customer_id = :owned"
            ),
            {"owned": owned["id"]},
        )
        assert named == "takes the id"
        await session.rollback()


async def test_only_the_references_a_statement_sets_are_checked_and_locked(
    committed_client, factory
):
    """Editing customers and closing ledger periods lock no manager; a move key-share locks its
    new owner once, as a foreign key checks (and locks) only the keys a statement changes."""
    client = committed_client
    await create_tiers(client)
    owner = await create_manager(client, level=3)
    taking = await create_manager(client, level=3)
    customer = await create_customer(client, tier="standard", manager_id=owner["id"])
    locked_by_us = text("SELECT xmax = pg_current_xact_id()::xid FROM managers WHERE id = :m")
    async with factory() as session:
        await session.execute(
            text("UPDATE customers SET name = 'renamed' WHERE id = :c"), {"c": customer["id"]}
        )
        await session.execute(
            text("UPDATE assignments SET note = 'n' WHERE customer_id = :c"),
            {"c": customer["id"]},
        )
        assert not (await session.execute(locked_by_us, {"m": owner["id"]})).scalar_one()
        await session.execute(
            text("UPDATE customers SET manager_id = :m WHERE id = :c"),
            {"m": taking["id"], "c": customer["id"]},
        )
        assert (await session.execute(locked_by_us, {"m": taking["id"]})).scalar_one()
        await session.rollback()


async def test_moving_to_a_manager_being_deleted_waits_and_then_fails(
    committed_client, fresh_database
):
    """The delete holds the manager's row; the move's check waits for it, and when the delete
    commits the move fails and changes nobody."""
    client = committed_client
    await create_tiers(client)
    owner = await create_manager(client, level=3)
    leaving = await create_manager(client, level=3)
    customer = await create_customer(client, tier="standard", manager_id=owner["id"])

    deleter = await asyncpg.connect(asyncpg_dsn(fresh_database))
    try:
        deleting = deleter.transaction()
        await deleting.start()
        await deleter.execute("DELETE FROM managers WHERE id = $1", uuid.UUID(leaving["id"]))
        move = asyncio.create_task(
            client.patch(f"/v1/customers/{customer['id']}", json={"manager_id": leaving["id"]})
        )
        await _wait_for_lock_wait(deleter)
        await deleting.commit()
        response = await move
    finally:
        await deleter.close()

    # The service's own check (404/422) or the reference check (409), never a 5xx.
    assert response.status_code in (404, 409, 422), response.text
    assert_problem(response, response.status_code)
    after = await ok(await client.get(f"/v1/customers/{customer['id']}"))
    assert after["manager_id"] == owner["id"]
    history = await ok(await client.get(f"/v1/customers/{customer['id']}/history"))
    assert [row["manager_id"] for row in history["items"]] == [owner["id"]]


async def test_a_set_based_move_racing_a_delete_fails_with_the_constraint(
    committed_client, fresh_database, factory
):
    """The writing path itself (``move_customers``, what handovers and rebalances run) against
    a delete that commits while it waits: a foreign-key violation, not a dangling owner."""
    client = committed_client
    await create_tiers(client)
    owner = await create_manager(client, level=3)
    leaving = await create_manager(client, level=3)
    customers = [
        await create_customer(client, tier="standard", manager_id=owner["id"]) for _ in range(3)
    ]

    deleter = await asyncpg.connect(asyncpg_dsn(fresh_database))
    try:
        deleting = deleter.transaction()
        await deleting.start()
        await deleter.execute("DELETE FROM managers WHERE id = $1", uuid.UUID(leaving["id"]))

        async def move() -> None:
            async with factory() as session:
                await move_customers(
                    session,
                    customer_ids=[uuid.UUID(c["id"]) for c in customers],
                    manager_ids=[uuid.UUID(leaving["id"])] * len(customers),
                    reason="rebalance",
                    actor="tests",
                    at=datetime.now(UTC),
                )
                await session.commit()

        moving = asyncio.create_task(move())
        await _wait_for_lock_wait(deleter)
        await deleting.commit()
        with pytest.raises(IntegrityError) as raised:
            await moving
    finally:
        await deleter.close()

    assert raised.value.orig.__cause__.constraint_name == "fk_customers_manager_id_managers"
    for c in customers:
        after = await ok(await client.get(f"/v1/customers/{c['id']}"))
        assert after["manager_id"] == owner["id"]


async def test_deleting_a_manager_a_move_is_giving_customers_to_waits_and_is_refused(
    committed_client, fresh_database, factory
):
    """The move holds its new owner's key lock; the delete waits for it, and once the move
    commits the delete sees the owner's customers and is refused with 409."""
    client = committed_client
    await create_tiers(client)
    owner = await create_manager(client, level=3)
    taking = await create_manager(client, level=3)
    customer = await create_customer(client, tier="standard", manager_id=owner["id"])

    async with factory() as session:
        await move_customers(
            session,
            customer_ids=[uuid.UUID(customer["id"])],
            manager_ids=[uuid.UUID(taking["id"])],
            reason="manual",
            actor="tests",
            at=datetime.now(UTC),
        )
        pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        delete = asyncio.create_task(client.delete(f"/v1/managers/{taking['id']}"))
        await _wait_for_lock_wait_on(session, pid)
        await session.commit()
    response = await delete

    assert_problem(response, 409)
    m = await ok(await client.get(f"/v1/managers/{taking['id']}"))
    assert m["customer_count"] == 1


async def test_a_delete_under_repeatable_read_is_refused_not_checked_against_a_stale_snapshot(
    committed_client, fresh_database
):
    client = committed_client
    await create_tiers(client)
    idle = await create_manager(client, level=3)
    conn = await asyncpg.connect(asyncpg_dsn(fresh_database))
    try:
        async with conn.transaction(isolation="repeatable_read"):
            with pytest.raises(asyncpg.SerializationError):
                await conn.execute("DELETE FROM managers WHERE id = $1", uuid.UUID(idle["id"]))
    finally:
        await conn.close()
    await ok(await client.get(f"/v1/managers/{idle['id']}"))


async def _wait_for_lock_wait(conn: asyncpg.Connection) -> None:
    """Until some other session of this database waits for a lock (the one ``conn`` holds)."""
    for _ in range(3000):
        # Activity is read once per transaction unless the snapshot is cleared.
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        if await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND datname = current_database()"
        ):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("nobody waited for the lock")


async def _wait_for_lock_wait_on(session, holder: int) -> None:
    """Until a session waits for a lock held by backend ``holder``."""
    for _ in range(3000):
        await session.execute(text("SELECT pg_stat_clear_snapshot()"))
        waiting = (
            await session.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE :holder = ANY(pg_blocking_pids(pid))"
                ),
                {"holder": holder},
            )
        ).scalar_one()
        if waiting:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("nobody waited for the move's lock")


async def test_a_one_customer_move_waiting_for_another_closes_the_period_that_one_opened(
    committed_client, factory
):
    """A move of one customer whose caller did not lock it (an import's last batch, a
    handover's cancel) waits for a concurrent move of the same customer, then closes the
    period that move opened: one open period, for the last owner."""
    client = committed_client
    await create_tiers(client)
    first, second, third = [await create_manager(client, level=3) for _ in range(3)]
    customer = await create_customer(client, tier="standard", manager_id=first["id"])
    customer_id = uuid.UUID(customer["id"])

    async with factory() as session:
        await move_customers(
            session,
            customer_ids=[customer_id],
            manager_ids=[uuid.UUID(second["id"])],
            reason="manual",
            actor="tests",
            at=datetime.now(UTC),
        )
        pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()

        async def later_move() -> int:
            async with factory() as other:
                moved = await move_customers(
                    other,
                    customer_ids=[customer_id],
                    manager_ids=[uuid.UUID(third["id"])],
                    reason="import",
                    actor="tests",
                    at=datetime.now(UTC),
                )
                await other.commit()
                return moved

        later = asyncio.create_task(later_move())
        await _wait_for_lock_wait_on(session, pid)
        await session.commit()
    assert await later == 1

    after = await ok(await client.get(f"/v1/customers/{customer['id']}"))
    assert after["manager_id"] == third["id"]
    async with factory() as session:
        periods = (
            await session.execute(
                text(
                    "SELECT manager_id::text, ended_at IS NULL AS open FROM assignments"
                    " WHERE customer_id = :id ORDER BY started_at, open"
                ),
                {"id": customer_id},
            )
        ).all()
    assert [(p.manager_id, p.open) for p in periods] == [
        (first["id"], False),
        (second["id"], False),
        (third["id"], True),
    ]


async def test_truncating_a_referenced_table_is_refused_unless_its_referrers_go_too(
    committed_client, fresh_database
):
    client = committed_client
    await create_tiers(client)
    owner = await create_manager(client, level=3)
    customer = await create_customer(client, tier="standard", manager_id=owner["id"])
    conn = await asyncpg.connect(asyncpg_dsn(fresh_database))
    try:
        for statement in (
            "TRUNCATE managers CASCADE",
            "TRUNCATE customers CASCADE",
            "TRUNCATE managers, customers CASCADE",
        ):
            with pytest.raises(asyncpg.FeatureNotSupportedError):
                async with conn.transaction():
                    await conn.execute(statement)
        async with conn.transaction():  # every referrer in the same command: allowed
            await conn.execute("TRUNCATE managers, customers, assignments CASCADE")
            assert await conn.fetchval("SELECT count(*) FROM customers") == 0
            raise _Rollback  # rolled back: the customer is read again below
    except _Rollback:
        pass
    finally:
        await conn.close()
    after = await ok(await client.get(f"/v1/customers/{customer['id']}"))
    assert after["manager_id"] == owner["id"]


class _Rollback(Exception):
    """Leaves an ``asyncpg`` transaction block by rolling it back."""


async def test_a_reference_broken_by_a_statement_on_the_driver_answers_409_naming_it(api):
    """The hot paths run some statements on asyncpg directly; a constraint they break is the
    same 409 problem as through SQLAlchemy, never a 503."""
    app = create_app(Settings(environment="production", rate_limit=""))
    app.state.session_factory = api.factory
    app.state.db_engine = api.app.state.db_engine

    async def orphan_period(request: Request) -> None:
        async with api.factory() as session:
            connection = await transaction_connection(session)
            await connection.execute(
                "INSERT INTO assignments (customer_id, manager_id, started_at, reason, actor)"
                " VALUES ($1, $2, now(), 'manual', 'tests')",
                uuid.uuid4(),
                uuid.uuid4(),
            )

    app.add_api_route("/orphan-period", orphan_period, methods=["POST"])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.post("/orphan-period")

    problem = assert_problem(response, 409)
    assert problem["code"] == "constraint_violation"
    assert problem["constraint"] == "fk_assignments_customer_id_customers"


async def test_an_import_waits_for_a_held_customer_before_it_locks_new_owners(
    committed_client, fresh_database
):
    """A manual assignment holds an existing customer the import moves and then locks the
    owner the import gives a new customer: the import must wait for the customer first, not
    hold that owner's key lock while it waits (a deadlock that aborted one of them)."""
    client = committed_client
    await create_tiers(client)
    first, taking, other = [await create_manager(client, level=3) for _ in range(3)]
    existing = await create_customer(
        client, tier="standard", manager_id=first["id"], external_ref="held-1"
    )
    body = f"external_ref,name,tier,manager_id\nnew-1,New,standard,{taking['id']}\n"
    # Only the owner changes, so nothing but the move itself locks the existing customer.
    body += f"held-1,{existing['name']},standard,{other['id']}\n"

    holder = await asyncpg.connect(asyncpg_dsn(fresh_database))
    try:
        holding = holder.transaction()
        await holding.start()
        await holder.execute(
            "SELECT FROM customers WHERE id = $1 FOR UPDATE", uuid.UUID(existing["id"])
        )
        importing = asyncio.create_task(
            client.post("/v1/imports/customers", content=body, headers={"Content-Type": "text/csv"})
        )
        await _wait_for_lock_wait(holder)
        # What the manual assignment's guard does next: lock the owner it gives.
        await holder.execute(
            "SELECT FROM managers WHERE id = $1 FOR UPDATE", uuid.UUID(taking["id"])
        )
        await holding.commit()
        response = await importing
    finally:
        await holder.close()

    result = await ok(response)
    assert (result["created"], result["owners_changed"]) == (1, 2)
    after = await ok(await client.get(f"/v1/customers/{existing['id']}"))
    assert after["manager_id"] == other["id"]
