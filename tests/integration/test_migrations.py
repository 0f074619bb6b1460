"""Migrations: empty → head → base → head, and the models agree with what they build."""

import uuid

import anyio
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.db import migrate
from app.db.base import Base
from app.db.migrate import include_name
from tests.conftest import _admin, database_url


@pytest.fixture
async def empty_database(server_url):
    name = f"baton_m_{uuid.uuid4().hex[:12]}"
    await _admin(server_url, f'CREATE DATABASE "{name}"')
    yield database_url(server_url, name)
    await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _state(url: str) -> tuple[set[str], str | None]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            tables = set(
                (
                    await conn.execute(
                        text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                    )
                ).scalars()
            )
            version = None
            if "alembic_version" in tables:
                version = (
                    await conn.execute(text("SELECT version_num FROM alembic_version"))
                ).scalar()
            return tables - {"alembic_version"}, version
    finally:
        await engine.dispose()


async def _model_drift(url: str) -> list[object]:
    def compare(sync_conn):
        context = MigrationContext.configure(
            sync_conn,
            opts={"include_name": include_name},  # the job queue's tables are its own
        )
        return compare_metadata(context, Base.metadata)

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(compare)
    finally:
        await engine.dispose()


async def test_upgrade_downgrade_upgrade(empty_database):
    model_tables = set(Base.metadata.tables)
    assert await _state(empty_database) == (set(), None)

    await anyio.to_thread.run_sync(migrate.upgrade, empty_database)
    tables, version = await _state(empty_database)
    assert version == migrate.head_revision()
    assert model_tables <= tables

    await anyio.to_thread.run_sync(migrate.downgrade, empty_database)
    tables, version = await _state(empty_database)
    assert tables == set() and version is None

    await anyio.to_thread.run_sync(migrate.upgrade, empty_database)
    tables, version = await _state(empty_database)
    assert version == migrate.head_revision() and model_tables <= tables


async def test_models_match_the_migrated_schema(template_url, engine):
    await engine.dispose()  # leave the template free of sessions for clones
    drift = await _model_drift(template_url)
    assert drift == [], f"models and migrations differ; add a migration: {drift}"
