"""Waiting, in a test, for a request to be held back by a lock."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine


async def lock_waited_or_done(url: str, request: asyncio.Task[Any]) -> None:
    """Until a backend of the database at ``url`` waits for a lock, or ``request`` finished
    without one waiting (the test's assertions then say what went wrong)."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            while not request.done():
                waiting = await conn.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                    )
                )
                if waiting:
                    return
                await asyncio.sleep(0.01)
    finally:
        await engine.dispose()
