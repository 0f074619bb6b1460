"""The book loaded into the engine's columns says what the customers table says."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from app.assignments import columnar, loading
from app.engine import NO_TIME
from tests.integration.factories import (
    assert_problem,
    create_customer,
    create_manager,
    create_tiers,
    ok,
)


async def test_columns_match_the_rows(api, client):
    await create_tiers(client)
    owner = await create_manager(client, level=5, capacity=500, region="east")
    made = [
        await create_customer(
            client,
            tier=tier,
            region=region,
            language="zh",
            annual_value=value,
            manager_id=owner["id"],
        )
        for tier, region, value in (
            ("key", "east", "1200.50"),
            ("standard", None, None),
            ("long_tail", "west", "3.00"),
        )
    ]
    async with api.factory() as session:
        # instants before 1970 and without fractions, and one without an owner date
        await session.execute(
            text(
                "UPDATE customers SET owner_since = CASE id "
                "WHEN :a THEN timestamptz '1969-12-31 23:59:59.5+00' "
                "WHEN :b THEN timestamptz '2026-12-01 09:30:00+00' ELSE NULL END, "
                "pinned = (id = :b)"
            ),
            {"a": uuid.UUID(made[0]["id"]), "b": uuid.UUID(made[1]["id"])},
        )
        tiers = await loading.load_tiers(session)
        managers = await loading.load_managers(session, workloads=False)
        before = (await session.execute(text("SHOW parallel_tuple_cost"))).scalar_one()
        columns = await columnar.load_owned_customer_columns(
            session, tiers=tiers, managers=managers
        )
        # the load lifts the planner's charge for parallel rows for its COPY alone
        assert (await session.execute(text("SHOW parallel_tuple_cost"))).scalar_one() == before
        expected = {
            row[0]: row[1:]
            for row in (
                await session.execute(
                    text(
                        "SELECT id, tier_code, region, floor(extract(epoch FROM owner_since)), "
                        "annual_value, pinned FROM customers"
                    )
                )
            ).all()
        }
        await session.rollback()
    assert len(columns) == 3
    assert columns.pinned.sum() == 1
    for i in range(3):
        cid = columns.customer_id(i)
        tier, region, since, value, pinned = expected[cid]
        assert columns.tier_codes[columns.tier[i]] == tier
        assert (columns.regions[columns.region[i]] if columns.region[i] >= 0 else None) == region
        assert columns.last_moved_at[i] == (NO_TIME if since is None else int(since))
        assert columns.owner_ids[columns.owner[i]] == uuid.UUID(owner["id"])
        assert bool(columns.pinned[i]) is pinned
        if value is None:
            assert columns.annual_value[i] != columns.annual_value[i]  # NaN
        else:
            assert columns.annual_value[i] == float(value)


async def test_a_combination_created_after_a_load_is_loaded(api, client, monkeypatch):
    """The attribute combinations are kept from one load to the next; a customer whose
    region, language and industry form a combination not seen before is still loaded with
    its own attributes, and a combination no longer in use is not among the categories.
    (Slices of one row: the COPY is parsed in several pieces, as a large book is.)"""
    monkeypatch.setattr(columnar, "_SLICE", 1)
    await create_tiers(client)
    owner = await create_manager(client, level=5, capacity=500, region="east")
    first = await create_customer(
        client, region="east", language="zh", industry="retail", manager_id=owner["id"]
    )

    async def load() -> dict[uuid.UUID, tuple[str | None, str | None, str | None]]:
        async with api.factory() as session:
            tiers = await loading.load_tiers(session)
            managers = await loading.load_managers(session, workloads=False)
            columns = await columnar.load_owned_customer_columns(
                session, tiers=tiers, managers=managers
            )
            await session.rollback()
        assert columns.regions == tuple(sorted(set(columns.regions)))
        return {
            columns.customer_id(i): (
                columns.regions[columns.region[i]] if columns.region[i] >= 0 else None,
                columns.languages[columns.language[i]] if columns.language[i] >= 0 else None,
                columns.industries[columns.industry[i]] if columns.industry[i] >= 0 else None,
            )
            for i in range(len(columns))
        }

    assert await load() == {uuid.UUID(first["id"]): ("east", "zh", "retail")}
    assert ("standard", "north", "", "mining") not in (columnar._known_combinations or [])
    later = await create_customer(
        client, region="north", industry="mining", tier="standard", manager_id=owner["id"]
    )
    await ok(await client.patch(f"/v1/customers/{first['id']}", json={"region": "south"}))

    loaded = await load()
    assert loaded == {
        uuid.UUID(first["id"]): ("south", "zh", "retail"),
        uuid.UUID(later["id"]): ("north", None, "mining"),
    }
    kept = columnar._known_combinations
    assert kept is not None, "read again on the miss"
    assert ("standard", "north", "", "mining") in kept
    assert await load() == loaded
    assert columnar._known_combinations is kept, "nothing new: served by the kept list"


async def test_a_rebalance_after_a_load_places_a_new_combination_by_its_rules(client):
    """From the wire: a rebalance reads the book, then customers of a region no customer had
    arrive; the next rebalance moves them only to a manager of their region."""
    await create_tiers(client)
    rule = {
        "id": "same_region",
        "conditions": [{"field": "manager.region", "op": "eq", "value": "$customer.region"}],
    }
    await ok(await client.put("/v1/rules", json={"rules": {"eligibility": [rule]}}))
    north_busy = await create_manager(client, region="north")
    await create_manager(client, region="north")
    for _ in range(4):
        await create_customer(client, region="north", manager_id=north_busy["id"])
    body = {"dry_run": True, "target_utilization": 0.5, "min_days_since_move": 0}
    await ok(await client.post("/v1/rebalance", json=body))

    south_busy = await create_manager(client, region="south")
    south_idle = await create_manager(client, region="south")
    south = {
        (await create_customer(client, region="south", manager_id=south_busy["id"]))["id"]
        for _ in range(8)
    }
    plan = await ok(await client.post("/v1/rebalance", json=body))
    moved = [
        d
        for d in plan["decisions"]
        if d["customer_id"] in south and d["manager_id"] != d["from_manager_id"]
    ]
    assert len(moved) == 3, "16 of 20 down to 10: three weight-2 customers"
    assert {d["manager_id"] for d in moved} == {south_idle["id"]}


async def test_a_book_whose_combinations_keep_changing_is_refused_with_a_conflict(
    client, monkeypatch
):
    """If every read of the combinations misses some (attributes changing faster than the
    book is read), the load gives up after a few attempts with a 409, not a 500."""
    await create_tiers(client)
    owner = await create_manager(client, region="east")
    await create_customer(client, region="east", manager_id=owner["id"])
    monkeypatch.setattr(columnar, "_known_combinations", None)
    monkeypatch.setattr(columnar, "_COMBINATIONS", "SELECT '', '', '', '' WHERE false")
    body = {"dry_run": True, "target_utilization": 0.5, "min_days_since_move": 0}
    assert_problem(await client.post("/v1/rebalance", json=body), 409)


async def _load_attributes(
    api, managers_kept=None, tiers_kept=None
) -> dict[uuid.UUID, tuple[str, str | None, str | None, str | None, uuid.UUID]]:
    """Each loaded customer's tier, region, language, industry and owner, as the columns say."""
    async with api.factory() as session:
        tiers = await loading.load_tiers(session)
        managers = await loading.load_managers(session, workloads=False)
        if managers_kept is not None:
            managers = [m for m in managers if str(m.id) in managers_kept]
        if tiers_kept is not None:
            tiers = [t for t in tiers if t.code in tiers_kept]
        columns = await columnar.load_owned_customer_columns(
            session, tiers=tiers, managers=managers
        )
        await session.rollback()

    def category(names: tuple[str, ...], code: int) -> str | None:
        return names[code] if code >= 0 else None

    return {
        columns.customer_id(i): (
            columns.tier_codes[columns.tier[i]],
            category(columns.regions, columns.region[i]),
            category(columns.languages, columns.language[i]),
            category(columns.industries, columns.industry[i]),
            columns.owner_ids[columns.owner[i]],
        )
        for i in range(len(columns))
    }


async def test_an_attribute_value_created_after_a_load_and_null_attributes_are_loaded(
    api, client, monkeypatch
):
    """A region, a language and an industry no customer had when the attributes were last
    read are loaded as themselves, as are customers with none of the three."""
    monkeypatch.setattr(columnar, "_known_combinations", None)
    await create_tiers(client)
    owner = await create_manager(client, level=5, capacity=500)
    first = await create_customer(
        client, region="east", language="zh", industry="retail", manager_id=owner["id"]
    )
    owner_id = uuid.UUID(owner["id"])
    assert await _load_attributes(api) == {
        uuid.UUID(first["id"]): ("standard", "east", "zh", "retail", owner_id)
    }
    bare = await create_customer(client, tier="key", manager_id=owner["id"])
    new = await create_customer(
        client, region="west", language="fr", industry="mining", manager_id=owner["id"]
    )
    assert await _load_attributes(api) == {
        uuid.UUID(first["id"]): ("standard", "east", "zh", "retail", owner_id),
        uuid.UUID(bare["id"]): ("key", None, None, None, owner_id),
        uuid.UUID(new["id"]): ("standard", "west", "fr", "mining", owner_id),
    }
    # a tier change makes a combination of its own too
    await ok(await client.patch(f"/v1/customers/{first['id']}", json={"tier": "long_tail"}))
    loaded = await _load_attributes(api)
    assert loaded[uuid.UUID(first["id"])] == ("long_tail", "east", "zh", "retail", owner_id)


async def test_only_the_given_managers_customers_and_tiers_are_loaded(api, client):
    """The customers of managers left out of the list are not loaded, whether the list is
    most of the managers (the rows are dropped while parsed) or a few of them (the query
    filters them); nor are the customers of a tier left out."""
    await create_tiers(client)
    managers = [await create_manager(client, level=5, capacity=500) for _ in range(4)]
    owned = {
        m["id"]: {
            (await create_customer(client, tier=tier, manager_id=m["id"]))["id"]: tier
            for tier in ("key", "standard")
        }
        for m in managers
    }
    everyone = {m["id"] for m in managers}
    for kept in (everyone - {managers[0]["id"]}, {managers[1]["id"]}):
        loaded = await _load_attributes(api, managers_kept=kept)
        assert {str(k) for k in loaded} == {c for m in kept for c in owned[m]}
        assert all(str(v[4]) in kept for v in loaded.values())
    loaded = await _load_attributes(api, tiers_kept={"key"})
    assert {str(k) for k in loaded} == {
        c for m in everyone for c, tier in owned[m].items() if tier == "key"
    }
    assert {v[0] for v in loaded.values()} == {"key"}


async def test_the_book_is_loaded_in_id_order_whatever_order_the_table_holds_it_in(api, client):
    """The engine breaks ties by row and a plan's token digests the columns: the same book
    must load the same, whichever plan the server picks or wherever updates moved rows."""
    await create_tiers(client)
    owners = [await create_manager(client, level=5, capacity=500) for _ in range(3)]
    for i in range(40):
        await create_customer(
            client,
            tier=("key", "standard", "long_tail")[i % 3],
            region=("east", "west", None, "north")[i % 4],
            manager_id=owners[i % 3]["id"],
        )
    async with api.factory() as session:
        # Rows rewritten in descending id order: the table no longer holds them as inserted.
        await session.execute(
            text(
                "UPDATE customers SET name = name || ' ' FROM (SELECT id FROM customers "
                "ORDER BY id DESC LIMIT 20) AS last WHERE customers.id = last.id"
            )
        )
        tiers = await loading.load_tiers(session)
        managers = await loading.load_managers(session, workloads=False)
        loads = [
            await columnar.load_owned_customer_columns(session, tiers=tiers, managers=chosen)
            for chosen in (managers, managers[:1])  # parsed-out owners, then a server filter
        ]
        # A parallel scan, as a large book gets: workers hand rows over in no fixed order.
        await session.execute(text("SET LOCAL min_parallel_table_scan_size = 0"))
        await session.execute(text("SET LOCAL parallel_setup_cost = 0"))
        # The workers alone scan (the leader only gathers), so rows arrive as they hand them.
        await session.execute(text("SET LOCAL parallel_leader_participation = off"))
        parallel = await columnar.load_owned_customer_columns(
            session, tiers=tiers, managers=managers
        )
        await session.rollback()
    for name in ("ids", "tier", "region", "owner", "pinned", "last_moved_at"):
        assert (getattr(parallel, name) == getattr(loads[0], name)).all(), name
    for columns in (*loads, parallel):
        ids = [columns.customer_id(i) for i in range(len(columns))]
        assert ids == sorted(ids, key=lambda u: u.bytes)
        assert len(ids) == len(set(ids))
    assert len(loads[0]) == 40


async def test_a_load_that_fails_on_this_side_puts_the_planner_setting_back(
    api, client, monkeypatch
):
    """The load lifts the charge for parallel rows for its COPY; a failure while its rows are
    assembled leaves the transaction usable, and must not leave the setting lifted in it."""
    await create_tiers(client)
    owner = await create_manager(client, level=5, capacity=50)
    await create_customer(client, tier="key", manager_id=owner["id"])

    def broken(*args: object) -> None:
        raise RuntimeError("assembly failed")

    monkeypatch.setattr(columnar, "_assemble", broken)
    async with api.factory() as session:
        before = (await session.execute(text("SHOW parallel_tuple_cost"))).scalar_one()
        tiers = await loading.load_tiers(session)
        managers = await loading.load_managers(session, workloads=False)
        with pytest.raises(RuntimeError):
            await columnar.load_owned_customer_columns(session, tiers=tiers, managers=managers)
        # The same transaction, still open: the next statement plans as before the load.
        assert (await session.execute(text("SHOW parallel_tuple_cost"))).scalar_one() == before
        await session.rollback()
