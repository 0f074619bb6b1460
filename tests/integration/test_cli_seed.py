"""The ``baton`` command and the demo data."""

import json
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from typer.testing import CliRunner

from app.check import find_violations
from app.cli import cli
from app.db.session import create_session_factory, session_scope
from app.seed import database_is_empty, seed_demo
from tests.integration.factories import collect_pages, ok


def test_openapi_command_prints_the_spec():
    result = CliRunner().invoke(cli, ["openapi"])
    assert result.exit_code == 0, result.output
    spec = json.loads(result.stdout)
    assert spec["info"]["title"] == "Baton"
    assert "/v1/customers/{customer_id}/owner" in spec["paths"]


def test_help_lists_the_commands():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "migrate", "seed", "openapi"):
        assert command in result.stdout


async def test_seed_demo_places_customers_within_capacity(fresh_database, committed_client):
    engine = create_async_engine(fresh_database)
    try:
        async with session_scope(create_session_factory(engine)) as session:
            assert await database_is_empty(session)
            result = await seed_demo(session, customers=300, managers=8)
        assert result["tiers"] == 4 and result["managers"] == 8 and result["customers"] == 300
        async with engine.connect() as conn:
            mismatched = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM customers c LEFT JOIN assignments a "
                        "ON a.customer_id = c.id AND a.ended_at IS NULL "
                        "WHERE c.manager_id IS DISTINCT FROM a.manager_id"
                    )
                )
            ).scalar()
            owned, open_rows = (
                await conn.execute(
                    text(
                        "SELECT (SELECT count(*) FROM customers WHERE manager_id IS NOT NULL), "
                        "(SELECT count(*) FROM assignments WHERE ended_at IS NULL)"
                    )
                )
            ).one()
            # A plausible past: nobody changed before being created, owned before existing.
            anachronisms = (
                await conn.execute(
                    text(
                        "SELECT (SELECT count(*) FROM customers WHERE updated_at < created_at)"
                        " + (SELECT count(*) FROM managers WHERE updated_at < created_at)"
                        " + (SELECT count(*) FROM assignments a"
                        "    JOIN customers c ON c.id = a.customer_id"
                        "    JOIN managers m ON m.id = a.manager_id"
                        "    WHERE a.started_at < c.created_at OR a.started_at < m.created_at)"
                    )
                )
            ).scalar()
        assert anachronisms == 0
        async with session_scope(create_session_factory(engine)) as session:
            assert not await database_is_empty(session)
            assert await find_violations(session) == [], "the demo's past breaks an invariant"
    finally:
        await engine.dispose()
    assert mismatched == 0, "a customer's owner and its open ledger row disagree"
    assert owned == open_rows == result["assigned"]
    assert 0.5 * 300 < owned <= 300

    client: httpx.AsyncClient = committed_client
    tiers = (await ok(await client.get("/v1/tiers")))["items"]
    assert [t["code"] for t in tiers] == ["strategic", "key", "standard", "long_tail"]
    # The demo book has a past every report can show.
    kpis = await ok(
        await client.get(
            "/v1/reports/kpis",
            params={
                "group_by": "team",
                "from": (datetime.now(UTC) - timedelta(days=365)).isoformat(),
            },
        )
    )
    assert sum(r["gained"] for r in kpis["items"]) > 0
    assert sum(r["churned"]["customers"] for r in kpis["items"]) > 0
    assert all(r["satisfaction"]["scores"] for r in kpis["items"])
    assert all(r["revenue"] for r in kpis["items"])
    managers = [m for page in await collect_pages(client, "/v1/managers", limit=500) for m in page]
    assert len(managers) == 8
    assert all(m["workload"] <= m["capacity"] for m in managers), "someone is over capacity"
    customers = await collect_pages(client, "/v1/customers", limit=500)
    assert sum(len(p) for p in customers) == 300
    # churned customers keep their last owner but count in nobody's workload
    churned = [c for p in customers for c in p if c["status"] == "churned"]
    assert churned and all(c["manager_id"] for c in churned)
    assert sum(m["customer_count"] for m in managers) == owned - len(churned)
    level = {t["code"]: t["min_manager_level"] for t in tiers}
    by_id = {m["id"]: m for m in managers}
    for page in customers:
        for c in page:
            if c["manager_id"]:
                assert by_id[c["manager_id"]]["level"] >= level[c["tier"]]
