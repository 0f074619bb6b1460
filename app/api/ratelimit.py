"""Per-API-key rate limiting with the ``limits`` library (sliding window counter, in process
memory).

Why in memory: a shared counter in Postgres would add a write to every request on the hot
key row, and the database is the one shared resource Baton protects. The price is that each
API process counts on its own, so N replicas allow up to N times the limit; set the limit
per process accordingly.

Why a sliding window counter: two counters per key whatever the limit, where a moving window
keeps (and sorts, off the event loop) one timestamp per request of the window. It weighs the
previous window's count by how much of it still overlaps, which is within a few percent of
the exact moving window.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from app.errors import RateLimited


class KeyRateLimiter:
    """Counts requests per key; ``check`` raises 429 with ``Retry-After`` past the limit."""

    def __init__(self, spec: str) -> None:
        self.item: RateLimitItem = parse(spec)
        self.limiter = SlidingWindowCounterRateLimiter(MemoryStorage())

    async def check(self, key_id: str) -> None:
        """Count one request for ``key_id``; RateLimited when over the limit."""
        if await self.limiter.hit(self.item, key_id):
            return
        stats = await self.limiter.get_window_stats(self.item, key_id)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(
            f"Rate limit of {self.item.amount} per {self.item.get_expiry()} s exceeded for this "
            f"API key; retry in {retry_after} s.",
            retry_after=retry_after,
        )


def build_rate_limiter(spec: str) -> KeyRateLimiter | None:
    """The limiter for a ``limits`` spec (``"1200/minute"``); None when the spec is empty."""
    return KeyRateLimiter(spec) if spec.strip() else None
