"""API fixtures: the ASGI app over a connection whose outer transaction is rolled back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.main import create_app
from app.settings import Settings


def build_app(session_factory: async_sessionmaker[AsyncSession], engine: AsyncEngine) -> Any:
    app = create_app(Settings(environment="test"))
    app.state.session_factory = session_factory
    app.state.db_engine = engine
    return app


@pytest.fixture
async def client(engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client whose every request runs inside one outer transaction, rolled back at the
    end of the test; each request's commit only releases a savepoint."""
    async with engine.connect() as conn:
        outer = await conn.begin()
        factory = async_sessionmaker(
            bind=conn,
            expire_on_commit=False,
            autoflush=False,
            join_transaction_mode="create_savepoint",
        )
        app = build_app(factory, engine)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http
        await outer.rollback()


@pytest.fixture
async def committed_client(fresh_database: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client over a database of its own where requests really commit."""
    engine = create_async_engine(fresh_database, pool_size=10)
    factory = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
    app = build_app(factory, engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http
    await engine.dispose()
