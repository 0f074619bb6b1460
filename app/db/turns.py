"""``Turns``: at most N holders at once, the others served in arrival order, counted.

asyncpg's pool queue and SQLAlchemy's (an ``asyncio.Queue``) let a newcomer take a connection
just released to a waiter, which sends the waiter to the back; under load some requests
waited ten times the median. A semaphore in front of the pool, sized to it, makes requests
wait here instead, first come first served (``asyncio.Semaphore`` lets no newcomer pass a
waiter), and counts who waits for ``/metrics``.
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class Turns:
    """An async context manager: enter when one of ``size`` turns is free."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.waiting = 0
        self.held = 0
        self._semaphore = asyncio.Semaphore(size)

    async def __aenter__(self) -> None:
        self.waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self.waiting -= 1
        self.held += 1

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.held -= 1
        self._semaphore.release()
