"""API fixtures: the ASGI app over a connection whose outer transaction is rolled back."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.db.reads import PoolReader
from app.db.session import asyncpg_dsn, session_scope
from app.main import create_app
from app.settings import Settings, get_settings


def build_app(session_factory: async_sessionmaker[AsyncSession], engine: AsyncEngine) -> Any:
    app = create_app(Settings(environment="test", rate_limit=""))
    app.state.session_factory = session_factory
    app.state.db_engine = engine
    return app


async def create_api_key(
    factory: async_sessionmaker[AsyncSession], role: str = "admin", name: str | None = None
) -> str:
    """A new API key with ``role`` in the database behind ``factory``; returns the key."""
    from app.auth import service as api_keys
    from app.auth.roles import Role

    async with session_scope(factory) as session:
        created = await api_keys.create_key(
            session,
            name=name or f"test-{role}-{uuid.uuid4().hex[:8]}",
            role=Role(role),
            actor="tests",
        )
    return created.key


class Api:
    """The app under test and a way to get clients that authenticate with a given role."""

    def __init__(self, app: Any, factory: async_sessionmaker[AsyncSession]) -> None:
        self.app = app
        self.factory = factory
        self.transport = httpx.ASGITransport(app=app)
        self._clients: list[httpx.AsyncClient] = []

    def anonymous(self) -> httpx.AsyncClient:
        """A client that sends no API key."""
        http = httpx.AsyncClient(transport=self.transport, base_url="http://test")
        self._clients.append(http)
        return http

    async def client(self, role: str = "admin", name: str | None = None) -> httpx.AsyncClient:
        """A client whose requests carry a new key with ``role`` (as ``Authorization: Bearer``)."""
        key = await create_api_key(self.factory, role, name)
        http = self.anonymous()
        http.headers["Authorization"] = f"Bearer {key}"
        return http

    async def close(self) -> None:
        for http in self._clients:
            await http.aclose()


@pytest.fixture
async def api(engine: AsyncEngine) -> AsyncIterator[Api]:
    """The app over a connection whose outer transaction is rolled back at the end of the
    test; each request's commit only releases a savepoint."""
    async with engine.connect() as conn:
        outer = await conn.begin()
        factory = async_sessionmaker(
            bind=conn,
            expire_on_commit=False,
            autoflush=False,
            join_transaction_mode="create_savepoint",
        )
        api = Api(build_app(factory, engine), factory)
        yield api
        await api.close()
        await outer.rollback()


@pytest.fixture
async def client(api: Api) -> httpx.AsyncClient:
    """An admin HTTP client over the rolled-back connection (see ``api``)."""
    return await api.client("admin", name="test-admin")


@pytest.fixture
async def committed_api(fresh_database: str) -> AsyncIterator[Api]:
    """The app over a database of its own where requests really commit; GETs that read
    outside a transaction use the service's read pool, as in production."""
    engine = create_async_engine(fresh_database, pool_size=10)
    factory = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
    app = build_app(factory, engine)
    app.state.reader = await PoolReader.connect(asyncpg_dsn(fresh_database), Settings())
    api = Api(app, factory)
    yield api
    await api.close()
    await app.state.reader.close()
    await engine.dispose()


@pytest.fixture
async def committed_client(committed_api: Api) -> httpx.AsyncClient:
    """An admin HTTP client over a database of its own where requests really commit."""
    return await committed_api.client("admin", name="test-admin")


@pytest.fixture
async def factory(fresh_database: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the test's own database (as the worker has them), beside ``committed_api``."""
    engine = create_async_engine(fresh_database, pool_size=5)
    yield async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
    await engine.dispose()


@pytest.fixture
def allow_loopback(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Webhook subscriptions may target loopback (the test receiver) while the test runs."""
    monkeypatch.setenv("BATON_WEBHOOKS_ALLOW_PRIVATE_TARGETS", "true")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()
