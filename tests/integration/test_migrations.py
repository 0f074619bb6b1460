"""Migrations: empty → head → base → head, and the models agree with what they build."""

import uuid

import anyio
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
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


async def test_upgrade_from_0008_keeps_a_populated_database(empty_database):
    """From the last release's head: ledger rows survive the new reason constraint; sources
    keep their settings (no mapping: the adapter's defaults); a notification that was only
    ever a flag is reported as not sent rather than sent late; the rewritten ledger keeps its
    rows and its checks."""
    await anyio.to_thread.run_sync(migrate.upgrade, empty_database, "0008")
    manager, customer, handover = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    engine = create_async_engine(empty_database)
    try:
        async with engine.begin() as conn:
            for statement, params in [
                (
                    "INSERT INTO tiers (code, name, rank, weight, min_manager_level)"
                    " VALUES ('t', 'T', 1, 1, 1)",
                    {},
                ),
                (
                    "INSERT INTO managers (id, name, email, level, capacity)"
                    " VALUES (:m, 'M', 'm@example.com', 3, 10)",
                    {"m": manager},
                ),
                (
                    "INSERT INTO customers (id, name, tier_code, manager_id)"
                    " VALUES (:c, 'C', 't', :m)",
                    {"c": customer, "m": manager},
                ),
                (
                    "INSERT INTO assignments (customer_id, manager_id, started_at, reason, actor)"
                    " VALUES (:c, :m, now(), 'manual', 'x')",
                    {"c": customer, "m": manager},
                ),
                (
                    "INSERT INTO handovers (id, from_manager_id, reason, strategy, state,"
                    " prior_manager_status, created_by)"
                    " VALUES (:h, :m, 'departure', 'balanced', 'completed', 'active', 'x')",
                    {"h": handover, "m": manager},
                ),
                (
                    "INSERT INTO handover_items (handover_id, customer_id, status,"
                    " notification_status) VALUES (:h, :c, 'moved', 'pending')",
                    {"h": handover, "c": customer},
                ),
                (
                    "INSERT INTO webhook_sources (name, adapter, secret)"
                    " VALUES ('hs', 'hubspot', 'a-secret-of-sixteen+')",
                    {},
                ),
            ]:
                await conn.execute(text(statement), params)
        await anyio.to_thread.run_sync(migrate.upgrade, empty_database)
        async with engine.connect() as conn:
            item = (
                await conn.execute(
                    text("SELECT notification_status, notification_error FROM handover_items")
                )
            ).one()
            source = (
                await conn.execute(text("SELECT adapter, mapping FROM webhook_sources"))
            ).one()
            ledger = (await conn.execute(text("SELECT reason, manager_id FROM assignments"))).one()
            violations = await conn.scalar(text("SELECT count(*) FROM ownership_violations"))
            # The ledger was rewritten with room to close periods in place (0018), and its
            # open period still refuses a second one.
            options = await conn.scalar(
                text("SELECT reloptions FROM pg_class WHERE relname = 'assignments'")
            )
            with pytest.raises(IntegrityError, match="uq_assignments_open_per_customer"):
                await conn.execute(
                    text(
                        "INSERT INTO assignments (customer_id, manager_id, started_at, reason,"
                        " actor) VALUES (:c, :m, now(), 'manual', 'x')"
                    ),
                    {"c": customer, "m": manager},
                )
            await conn.rollback()
            # The lock on an open period's customer is its reference check (0019).
            with pytest.raises(IntegrityError, match="fk_assignments_customer_id_customers"):
                await conn.execute(
                    text(
                        "INSERT INTO assignments (customer_id, manager_id, started_at, reason,"
                        " actor) VALUES (:c, :m, now(), 'manual', 'x')"
                    ),
                    {"c": uuid.uuid4(), "m": manager},
                )
            await conn.rollback()
            # A customer the ledger names keeps its id: refused by the row check on a
            # re-key (0020), not by a pass over every updated row (the handover's item, a
            # foreign key of its own, goes first).
            await conn.execute(text("DELETE FROM handover_items"))
            with pytest.raises(IntegrityError, match="fk_assignments_customer_id_customers"):
                await conn.execute(
                    text("UPDATE customers SET id = :n WHERE id = :c"),
                    {"n": uuid.uuid4(), "c": customer},
                )
        assert item.notification_status == "not_sent" and item.notification_error
        assert tuple(source) == ("hubspot", None)
        assert tuple(ledger) == ("manual", manager) and violations == 0
        assert options == ["fillfactor=85"]
    finally:
        await engine.dispose()
