"""Limits: body size (413), page size caps, per-key rate limit (429 + Retry-After), and the
database statement timeout (a clear 503, nothing changed, the service keeps answering)."""

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.reads import PoolReader
from app.db.session import asyncpg_dsn, create_engine, create_session_factory
from app.main import create_app
from app.settings import Settings
from tests.integration.conftest import Api
from tests.integration.factories import assert_problem, create_customer, create_tiers, ok


def _app(engine, **settings):
    app = create_app(Settings(environment="test", **settings))
    app.state.session_factory = create_session_factory(engine)
    app.state.db_engine = engine
    return app


async def test_a_body_over_the_limit_is_413_before_it_is_read(client):
    big = {"name": "x" * 2_000_000, "tier": "standard"}
    body = assert_problem(await client.post("/v1/customers", json=big), 413)
    assert "too large" in body["title"].lower()

    async def chunks():  # no Content-Length: counted while it streams
        yield b'{"name": "'
        for _ in range(40):
            yield b"x" * 50_000
        yield b'", "tier": "standard"}'

    streamed = await client.post(
        "/v1/customers", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(streamed, 413)
    assert (await ok(await client.get("/v1/customers")))["items"] == []


async def test_page_size_is_capped(client):
    problem = assert_problem(await client.get("/v1/customers", params={"limit": 501}), 422)
    assert problem["errors"][0]["loc"][-1] == "limit"


async def test_the_rate_limit_is_per_key_with_retry_after(fresh_database):
    engine = create_async_engine(fresh_database)
    api = Api(_app(engine, rate_limit="5/minute"), create_session_factory(engine))
    try:
        first, second = await api.client("viewer"), await api.client("viewer")
        for _ in range(5):
            await ok(await first.get("/v1/tiers"))
        limited = await first.get("/v1/tiers")
        body = assert_problem(limited, 429)
        assert body["code"] == "rate_limited"
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        await ok(await second.get("/v1/tiers"))  # another key has its own budget
        assert (await api.anonymous().get("/healthz")).status_code == 200  # probes are not limited
    finally:
        await api.close()
        await engine.dispose()


@pytest.fixture
async def short_timeout(fresh_database):
    """An app whose statements (the read pool's too) time out after 300 ms, an operator client
    with one customer, and another engine to hold locks with."""
    settings = Settings(environment="test", rate_limit="", db_statement_timeout_ms=300)
    engine = create_engine(fresh_database, settings)
    app = _app(engine, rate_limit="", db_statement_timeout_ms=300)
    app.state.reader = await PoolReader.connect(asyncpg_dsn(fresh_database), settings)
    api = Api(app, create_session_factory(engine))
    blocker = create_async_engine(fresh_database)
    try:
        client = await api.client("operator")
        await create_tiers(client)
        yield client, await create_customer(client), blocker
    finally:
        await api.close()
        await app.state.reader.close()
        await engine.dispose()
        await blocker.dispose()


async def test_a_statement_past_the_timeout_is_a_clear_503_and_changes_nothing(short_timeout):
    client, customer, blocker = short_timeout
    async with blocker.connect() as conn:
        await conn.execute(
            text("SELECT 1 FROM customers WHERE id = :id FOR UPDATE"), {"id": customer["id"]}
        )
        held = await client.patch(f"/v1/customers/{customer['id']}", json={"region": "EU"})
        body = assert_problem(held, 503)
        assert body["code"] == "statement_timeout" and "Traceback" not in held.text
        await conn.rollback()
    after = await ok(await client.get(f"/v1/customers/{customer['id']}"))
    assert after["region"] is None and after["version"] == customer["version"]
    await ok(await client.patch(f"/v1/customers/{customer['id']}", json={"region": "EU"}))


async def test_a_read_past_the_timeout_is_a_clear_503(short_timeout):
    """GET by id runs on asyncpg directly (the read pool); its errors get the same problem
    responses as those raised through SQLAlchemy."""
    client, customer, blocker = short_timeout
    async with blocker.connect() as conn:
        await conn.execute(text("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE"))
        held = await client.get(f"/v1/customers/{customer['id']}")
        body = assert_problem(held, 503)
        assert body["code"] == "statement_timeout" and "Traceback" not in held.text
        await conn.rollback()
    read = await ok(await client.get(f"/v1/customers/{customer['id']}"))
    assert read["id"] == customer["id"]


async def test_an_unreachable_read_pool_is_a_503_with_retry_after(api, client):
    dead = "postgresql://nobody@127.0.0.1:9/nowhere"  # the discard port: nothing listens
    api.app.state.reader = await PoolReader.connect(dead, Settings(environment="test"))
    await create_tiers(client)
    customer = await create_customer(client)
    down = await client.get(f"/v1/customers/{customer['id']}")
    body = assert_problem(down, 503)
    assert "unreachable" in body["detail"] and down.headers["retry-after"] == "2"


async def test_nothing_can_be_written_through_the_read_pool(fresh_database):
    reader = await PoolReader.connect(asyncpg_dsn(fresh_database), Settings())
    try:
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await reader.fetchrow("INSERT INTO tiers (code, name, rank) VALUES ('x', 'x', 9)")
        assert await reader.fetchrow("SELECT count(*) AS n FROM tiers") is not None
    finally:
        await reader.close()


async def test_a_database_out_of_connections_is_a_503_with_retry_after(fresh_database, api, client):
    """Postgres refusing a connection (too many clients) means "retry shortly", not a 500."""
    admin = await asyncpg.connect(asyncpg_dsn(fresh_database))
    role = "baton_no_connections"
    try:
        await admin.execute(f"DROP ROLE IF EXISTS {role}")
        await admin.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 0")
        refused = make_url(fresh_database).set(username=role, password=None)
        api.app.state.reader = await PoolReader.connect(
            asyncpg_dsn(refused.render_as_string(hide_password=False)), Settings()
        )
        await create_tiers(client)
        customer = await create_customer(client)
        busy = await client.get(f"/v1/customers/{customer['id']}")
        body = assert_problem(busy, 503)
        assert "out of connections" in body["detail"] and busy.headers["retry-after"] == "2"
    finally:
        await api.app.state.reader.close()
        await admin.execute(f"DROP ROLE IF EXISTS {role}")
        await admin.close()
