"""Test fixtures: one real Postgres per run, migrated once; every test isolated."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

TEMPLATE_DB = "baton_template"

# Tests change keys behind the API's back (SQL, CLI, bootstrap) and expect the next request to
# see it; the verified-key cache has a test of its own.
os.environ.setdefault("BATON_AUTH_CACHE_SECONDS", "0")


def _server_url() -> str:
    """A URL to a maintenance database on the test server (embedded unless told otherwise)."""
    explicit = os.environ.get("TEST_DATABASE_URL")
    if explicit:
        return make_url(explicit).set(drivername="postgresql+asyncpg").render_as_string(False)
    from app.db.embedded import start_embedded_postgres

    pgdata = Path(tempfile.mkdtemp(prefix="baton-test-")) / "pgdata"
    return start_embedded_postgres(pgdata, database="postgres", throwaway=True)


@pytest.fixture(scope="session")
def server_url() -> str:
    return _server_url()


async def _admin(server_url: str, *statements: str) -> None:
    engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        for statement in statements:
            await conn.exec_driver_sql(statement)
    await engine.dispose()


def database_url(server_url: str, name: str) -> str:
    """The URL of database ``name`` on the test server."""
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
async def template_url(server_url: str) -> str:
    """A database migrated to head once per run; tests use it or clone it."""
    import anyio

    from app.db.migrate import upgrade

    await _admin(
        server_url,
        f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)',
        f'CREATE DATABASE "{TEMPLATE_DB}"',
    )
    url = database_url(server_url, TEMPLATE_DB)
    await anyio.to_thread.run_sync(upgrade, url)
    return url


@pytest.fixture(scope="session")
async def engine(template_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(template_url, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture
async def fresh_database(
    server_url: str, template_url: str, engine: AsyncEngine
) -> AsyncIterator[str]:
    """A database of its own cloned from the migrated template, for tests that need real commits
    seen by several connections (concurrency, migrations). Dropped afterwards."""
    name = f"baton_t_{uuid.uuid4().hex[:12]}"
    await engine.dispose()  # CREATE DATABASE … TEMPLATE needs no other session on the template
    await _admin(server_url, f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
    yield database_url(server_url, name)
    await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
