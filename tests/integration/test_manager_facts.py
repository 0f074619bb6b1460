"""Every manager read with the whole book is the same fact as the manager read alone."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from app.assignments import loading
from app.db.session import transaction_connection
from tests.integration.factories import create_customer, create_manager, create_tiers, ok


async def test_managers_read_together_equal_each_manager_read_alone(api, client):
    await create_tiers(client)
    now = datetime.now(UTC)
    plain = await create_manager(client)
    varied = await create_manager(
        client,
        level=5,
        capacity=80,
        region="east",
        languages=["zh", "en"],
        industries=["retail", "mining"],
        team="north",
        max_new_per_day=3,
        rotation_weight=2,
    )
    away = await create_manager(client, status="on_leave")
    window = {
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(days=2)).isoformat(),
        "kind": "leave",
    }
    await ok(await client.post(f"/v1/managers/{plain['id']}/absences", json=window), 201)
    for tier in ("key", "standard"):
        await create_customer(client, tier=tier, manager_id=varied["id"])
    await ok(await client.patch(f"/v1/managers/{varied['id']}", json={"accepting_new": False}))
    async with api.factory() as session:
        together = await loading.load_managers(session)
        alone = [await loading.load_manager(session, m.id) for m in together]
        await session.rollback()
    assert together == alone
    by_id = {str(m.id): m for m in together}
    assert {plain["id"], varied["id"], away["id"]} <= set(by_id)
    assert by_id[plain["id"]].absent and by_id[varied["id"]].intake_room == 1
    assert by_id[varied["id"]].languages == ("zh", "en") and by_id[varied["id"]].workload == 6
    assert not by_id[varied["id"]].accepting_new and by_id[varied["id"]].rotation_weight == 2
    assert by_id[away["id"]].status == "on_leave" and uuid.UUID(away["id"]) == by_id[away["id"]].id


def _scans(node: dict, relation: str) -> list[dict]:
    found = [node] if node.get("Relation Name") == relation else []
    for child in node.get("Plans", []):
        found += _scans(child, relation)
    return found


async def test_the_guard_reads_no_ledger_rows_of_an_uncapped_managers_week(api, client):
    """The guard's facts count a manager's new customers of the week only when it has an
    intake cap, also in the plan cached for the prepared statement (a generic plan), which
    read every such row before looking at the caps: a cost that grew with each customer."""
    await create_tiers(client)
    manager = await create_manager(client, level=5, capacity=100)
    customers = [await create_customer(client, tier="standard") for _ in range(3)]
    for customer in customers:
        url = f"/v1/customers/{customer['id']}"
        await ok(await client.patch(url, json={"manager_id": manager["id"]}))
    async with api.factory() as session:
        raw = await transaction_connection(session)
        await raw.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await raw.execute(f"PREPARE move_facts(uuid, uuid, text[]) AS {loading._MOVE_FACTS}")
        plan = await raw.fetchval(
            "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE move_facts("
            f"'{customers[0]['id']}', '{manager['id']}', '{{manual}}')"
        )
        await raw.execute("DEALLOCATE move_facts")
        await session.rollback()
    found = json.loads(plan) if isinstance(plan, str) else plan
    ledger = _scans(found[0]["Plan"], "assignments")
    by_manager = [s for s in ledger if "manager_id" in json.dumps(s)]
    assert by_manager and all(s["Actual Loops"] == 0 for s in by_manager)
    assert any(s["Actual Loops"] == 1 for s in ledger)  # the customer's former owners


async def test_a_one_customer_write_plans_its_statements_once_and_leaves_no_setting(
    committed_api, committed_client
):
    """The first statement of a manual move (and of the guard on every other one-customer
    write) keeps the rest of its transaction on the plans made once per connection rather
    than planning each statement again for its values; the setting ends with the transaction,
    so the pooled connection's next transaction (a report, a bulk move) chooses as usual."""
    from app.customers import repository as customers

    await create_tiers(committed_client)
    manager = await create_manager(committed_client, level=5, capacity=100)
    customer = await create_customer(committed_client, tier="standard")
    ids = uuid.UUID(customer["id"]), uuid.UUID(manager["id"])
    async with committed_api.factory() as session:
        raw = await transaction_connection(session)
        assert await raw.fetchval("SHOW plan_cache_mode") == "auto"
        locked = await customers.lock_for_move(session, *ids)
        assert locked is not None and locked[0].id == ids[0]
        assert await raw.fetchval("SHOW plan_cache_mode") == "force_generic_plan"
        await session.commit()
        raw = await transaction_connection(session)
        assert await raw.fetchval("SHOW plan_cache_mode") == "auto"
        await loading.lock_manager_for_move(session, ids[1])
        assert await raw.fetchval("SHOW plan_cache_mode") == "force_generic_plan"
        await session.rollback()
        raw = await transaction_connection(session)
        assert await raw.fetchval("SHOW plan_cache_mode") == "auto"
        await session.rollback()


async def test_the_guard_counts_a_capped_tier_from_its_managers_ledger_rows_alone(api, client):
    """The guard counts a manager's new customers of a capped tier by that manager's ledger
    rows, also in the plan cached for every value (the one-customer writes run on those): the
    statement it used, with an optional manager filter, read every manager's rows of the week."""
    await create_tiers(client)
    busy = await create_manager(client, level=5, capacity=100)
    quiet = await create_manager(client, level=5, capacity=100)
    for _ in range(3):
        await create_customer(client, tier="standard", manager_id=busy["id"])
    sql = (
        loading._TIER_INTAKE_OF_ONE.text.replace("CAST(:reasons", "CAST($1")
        .replace("CAST(:tiers", "CAST($2")
        .replace("CAST(:manager", "CAST($3")
    )
    async with api.factory() as session:
        raw = await transaction_connection(session)
        await raw.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        # A small table is read whole whatever the statement: without that, the plan shows
        # whether it can find one manager's rows by the index.
        await raw.execute("SET LOCAL enable_seqscan = off")
        await raw.execute(f"PREPARE tier_intake(text[], text[], uuid) AS {sql}")
        plans = [
            await raw.fetchval(
                "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE tier_intake("
                f"'{{manual}}', '{{standard}}', '{manager['id']}')"
            )
            for manager in (quiet, busy)
        ]
        await raw.execute("DEALLOCATE tier_intake")
        await session.rollback()
    visited = []
    for plan in plans:
        found = json.loads(plan) if isinstance(plan, str) else plan
        scans = _scans(found[0]["Plan"], "assignments")
        assert scans
        visited.append(sum(s["Actual Rows"] + s.get("Rows Removed by Filter", 0) for s in scans))
    assert visited == [0, 3]  # the quiet manager's count reads none of the busy one's rows


async def test_behind_pgbouncer_a_one_customer_write_leaves_postgres_to_plan(
    committed_client, fresh_database
):
    """Without a statement cache (PgBouncer in transaction mode) every statement is planned
    once anyway, best for its values: the one-customer writes set nothing."""
    from app.customers import repository as customers
    from app.db.session import create_engine, create_session_factory
    from app.settings import Settings

    await create_tiers(committed_client)
    manager = await create_manager(committed_client, level=5, capacity=100)
    customer = await create_customer(committed_client, tier="standard")
    settings = Settings(database_url=fresh_database, db_statement_cache=False)
    engine = create_engine(fresh_database, settings)
    try:
        async with create_session_factory(engine)() as session:
            raw = await transaction_connection(session)
            ids = uuid.UUID(customer["id"]), uuid.UUID(manager["id"])
            locked = await customers.lock_for_move(session, *ids)
            assert locked is not None and locked[0].id == ids[0]
            await loading.lock_manager_for_move(session, ids[1])
            assert await raw.fetchval("SHOW plan_cache_mode") == "auto"
            await session.rollback()
    finally:
        await engine.dispose()
