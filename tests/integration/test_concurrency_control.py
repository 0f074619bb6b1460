"""Optimistic concurrency: ETag on reads, If-Match on PATCH/DELETE (412), 428 when required."""

import httpx
import pytest

from app.settings import Settings
from tests.integration.conftest import Api
from tests.integration.factories import (
    assert_problem,
    create_customer,
    create_manager,
    create_tiers,
    ok,
)


@pytest.mark.parametrize("kind", ["tiers", "managers", "customers"])
async def test_a_stale_if_match_is_412_and_a_fresh_one_succeeds(client, kind):
    await create_tiers(client)
    if kind == "tiers":
        url, change = "/v1/tiers/key", {"name": "Key accounts"}
    elif kind == "managers":
        url, change = f"/v1/managers/{(await create_manager(client))['id']}", {"capacity": 30}
    else:
        url, change = f"/v1/customers/{(await create_customer(client))['id']}", {"region": "EU"}
    read = await client.get(url)
    etag = read.headers["etag"]
    assert etag == f'"{read.json()["version"]}"'
    # someone else changes it
    other = await client.patch(url, json=change)
    await ok(other)
    assert other.headers["etag"] != etag
    stale = assert_problem(await client.patch(url, json=change, headers={"If-Match": etag}), 412)
    assert stale["code"] == "stale_version" and stale["current_version"] == other.json()["version"]
    assert_problem(await client.delete(url, headers={"If-Match": etag}), 412)
    # the fresh ETag (weak or strong form, or *) is accepted
    fresh = other.headers["etag"]
    updated = await ok(await client.patch(url, json=change, headers={"If-Match": f"W/{fresh}"}))
    assert updated["version"] == other.json()["version"] + 1
    await ok(await client.patch(url, json=change, headers={"If-Match": "*"}))
    assert_problem(await client.patch(url, json=change, headers={"If-Match": '"abc"'}), 412)
    current = (await client.get(url)).headers["etag"]
    if kind != "tiers":  # the standard tiers are in use by nobody, but keep them for others
        assert (await client.delete(url, headers={"If-Match": current})).status_code == 204


async def test_two_writers_with_the_same_etag_one_wins(committed_client):
    await create_tiers(committed_client)
    customer = await create_customer(committed_client)
    url = f"/v1/customers/{customer['id']}"
    etag = (await committed_client.get(url)).headers["etag"]
    import asyncio

    results = await asyncio.gather(
        *(
            committed_client.patch(url, json={"region": r}, headers={"If-Match": etag})
            for r in ("EU", "US", "APAC")
        )
    )
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 412, 412], [r.text for r in results]


async def test_if_match_can_be_required(engine):
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from app.main import create_app

    async with engine.connect() as conn:
        outer = await conn.begin()
        factory = async_sessionmaker(
            bind=conn, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        app = create_app(Settings(environment="test", rate_limit="", require_if_match=True))
        app.state.session_factory = factory
        app.state.db_engine = engine
        api = Api(app, factory)
        client = await api.client("admin")
        await create_tiers(client)
        body = assert_problem(await client.patch("/v1/tiers/key", json={"name": "K"}), 428)
        assert body["code"] == "precondition_required"
        assert_problem(await client.delete("/v1/tiers/key"), 428)
        etag = (await client.get("/v1/tiers/key")).headers["etag"]
        await ok(
            await client.patch("/v1/tiers/key", json={"name": "K"}, headers={"If-Match": etag})
        )
        await api.close()
        await outer.rollback()
    assert isinstance(client, httpx.AsyncClient)
