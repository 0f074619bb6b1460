"""A pooled connection handed back in a state a request must not inherit is never reused."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.session import create_engine, create_session_factory, session_scope
from app.settings import Settings


async def test_a_connection_returned_inside_a_transaction_is_not_handed_out_again(
    fresh_database,
):
    """A BEGIN whose wait was cancelled can leave the driver inside a transaction that
    SQLAlchemy does not know of; a session given that connection would write into it as a
    savepoint and its commit would be lost."""
    engine = create_engine(fresh_database, Settings(db_pool_size=1, db_max_overflow=0))
    factory = create_session_factory(engine)
    other = create_async_engine(fresh_database)
    try:
        async with other.begin() as conn:
            await conn.execute(text("CREATE TABLE pool_probe (n int)"))
        async with engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            left = driver.transaction()
            await left.start()  # never committed nor rolled back: back to the pool as is
        async with session_scope(factory) as session:
            await session.execute(text("INSERT INTO pool_probe VALUES (1)"))
        async with other.connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM pool_probe")) == 1
            idle_in_transaction = await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND state LIKE 'idle in transaction%'"
                )
            )
            assert idle_in_transaction == 0
    finally:
        await engine.dispose()
        await other.dispose()
