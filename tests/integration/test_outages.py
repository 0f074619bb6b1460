"""The database going away under a request: a 503 with Retry-After whichever statement meets it
first (never a 500, never a 200 cut short), and no traceback in the log for an outage."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from sqlalchemy import event
from sqlalchemy.util import await_only

from app.api.auth import KeyCache
from app.db.session import asyncpg_dsn, create_engine, create_session_factory
from app.main import create_app
from app.settings import Settings
from tests.integration.conftest import Api
from tests.integration.factories import (
    assert_problem,
    create_customer,
    create_manager,
    create_tiers,
    ok,
)


async def _closed(connection: asyncpg.Connection) -> None:
    for _ in range(200):
        if connection.is_closed():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the client never saw its connection closed")


async def test_a_move_whose_connection_the_server_drops_before_it_begins_is_a_503(
    fresh_database, caplog
):
    """A manual move starts with its locks on the driver, behind a BEGIN that SQLAlchemy does
    not wrap: a connection the server dropped after the pool handed it out fails there."""
    settings = Settings(environment="test", rate_limit="", auth_cache_seconds=60)
    engine = create_engine(fresh_database, settings)
    factory = create_session_factory(engine)
    app = create_app(settings)  # a verified key is trusted for a minute: no lookup below
    app.state.session_factory, app.state.db_engine = factory, engine
    api = Api(app, factory)
    admin = await asyncpg.connect(asyncpg_dsn(fresh_database))
    drop_next = False

    def drop(dbapi_connection, record, proxy) -> None:  # after the service's own checks
        nonlocal drop_next
        if drop_next:
            drop_next = False
            raw = dbapi_connection.driver_connection
            await_only(admin.execute("SELECT pg_terminate_backend($1)", raw.get_server_pid()))
            await_only(_closed(raw))

    event.listen(engine.sync_engine, "checkout", drop)
    try:
        client = await api.client("admin")
        await create_tiers(client)
        manager = await create_manager(client)
        customer = await create_customer(client)
        drop_next = True
        with caplog.at_level(logging.WARNING):
            moved = await client.patch(
                f"/v1/customers/{customer['id']}", json={"manager_id": manager["id"]}
            )
        body = assert_problem(moved, 503)
        assert "unreachable" in body["detail"] and moved.headers["retry-after"] == "2"
        assert not drop_next, "the move met the dropped connection"
        assert [r.getMessage() for r in caplog.records if r.exc_info] == []
        assert "database_unreachable" in [r.getMessage() for r in caplog.records]
        # The service goes on with a new connection; nothing was changed.
        after = await ok(await client.get(f"/v1/customers/{customer['id']}"))
        assert after["manager_id"] is None
        moved = await client.patch(
            f"/v1/customers/{customer['id']}", json={"manager_id": manager["id"]}
        )
        assert (await ok(moved))["manager_id"] == manager["id"]
    finally:
        event.remove(engine.sync_engine, "checkout", drop)
        await api.close()
        await admin.close()
        await engine.dispose()


async def test_an_export_with_the_database_away_is_a_503_not_a_cut_off_file(api, client, caplog):
    api.app.state.key_cache = KeyCache(60)  # a verified key is trusted: no lookup below
    await create_tiers(client)
    await create_customer(client)
    exported = await client.get("/v1/exports/customers")
    assert exported.status_code == 200 and len(exported.text.splitlines()) == 2
    kept = api.app.state.session_factory
    dead = create_engine("postgresql+asyncpg://nobody@127.0.0.1:9/nowhere", Settings())
    api.app.state.session_factory = create_session_factory(dead)
    try:
        for path in ("/v1/exports/customers", "/v1/exports/managers?format=ndjson"):
            with caplog.at_level(logging.WARNING):
                down = await client.get(path)
            body = assert_problem(down, 503)
            assert "unreachable" in body["detail"] and down.headers["retry-after"] == "2"
            assert "content-disposition" not in down.headers
        assert [r.getMessage() for r in caplog.records if r.exc_info] == []
    finally:
        api.app.state.session_factory = kept
        await dead.dispose()
    again = await client.get("/v1/exports/customers", params={"format": "ndjson"})
    assert again.status_code == 200 and len(again.text.splitlines()) == 1
