"""Failed-authentication limiting: per client address for API keys, per source and sender
address for inbound webhook signatures.

A caller that keeps presenting bad keys (or a sender that keeps signing badly) is refused
with 429 and ``Retry-After`` before any key lookup or signature check. For API keys the
refusal happens in a pure ASGI middleware in front of everything else (no routing, no
dependency resolution, no log line per request: a counter instead), and is held back for
half a second first (a tarpit: a client that waits for each answer, as HTTP/1.1 clients do,
then sends two requests a second per connection instead of thousands; a sleeping request costs
the server almost nothing, and at most ``_MAX_HELD`` are held at once, beyond which the 429
goes out at once). So a flood of bad keys costs a dictionary lookup per request and
authenticated traffic keeps its latency (``bench/auth_flood.py`` measures it). A key this
process has verified before (within a day) is still let through from a blocked address, on to
the normal check, so one bad client behind a shared NAT does not lock out the good ones; a
flood cannot forge such a key.

Counted with the ``limits`` library (a fixed window in process memory, like the per-key rate
limit, and for the same reason: no write to the shared database on the hot path); the
blocked keys and their window ends are kept in a dict, so the refusal itself is one lookup.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import time

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter
from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import PROBLEM_CONTENT_TYPE, RateLimited

log = logging.getLogger("baton.auth")

AUTH_REFUSED = Counter(
    "baton_auth_failures_refused",
    "Requests refused with 429 because their address or webhook source failed "
    "authentication too often.",
    ["kind"],
)
_MAX_BLOCKED = 100_000
_MAX_TRUSTED = 10_000
_TARPIT_S = 0.5
_MAX_HELD = 1_000
_TRUST_SECONDS = 24 * 3600


class FailedAuthLimiter:
    """Counts failures per key (``ip:…``, ``webhook:<source>:ip:…``); a key past the limit is
    blocked until its window ends."""

    def __init__(self, spec: str) -> None:
        self.item: RateLimitItem = parse(spec)
        self.limiter = FixedWindowRateLimiter(MemoryStorage())
        self._blocked: dict[str, float] = {}  # key -> unix time its window ends
        self._trusted: dict[bytes, float] = {}  # digest of a verified API key -> when

    @staticmethod
    def _digest(presented: str) -> bytes:
        return hashlib.sha256(presented.encode()).digest()

    def trust(self, presented: str) -> None:
        """Remember that ``presented`` was a valid API key (by digest, never the key)."""
        if len(self._trusted) >= _MAX_TRUSTED:
            self._trusted.clear()
        self._trusted[self._digest(presented)] = time.time()

    def trusted(self, presented: str | None) -> bool:
        """Whether ``presented`` was verified as a valid key within the last day."""
        if not presented:
            return False
        at = self._trusted.get(self._digest(presented))
        return at is not None and time.time() - at < _TRUST_SECONDS

    def retry_after(self, key: str) -> int | None:
        """Seconds until ``key`` may try again, or None when it is not blocked."""
        until = self._blocked.get(key)
        if until is None:
            return None
        left = until - time.time()
        if left <= 0:
            del self._blocked[key]
            return None
        return max(1, math.ceil(left))

    def check(self, key: str, *, what: str) -> None:
        """RateLimited when ``key`` has failed too often in the current window."""
        retry_after = self.retry_after(key)
        if retry_after is not None:
            AUTH_REFUSED.labels(key.split(":", 1)[0]).inc()
            raise RateLimited(
                f"Too many failed {what}; retry in {retry_after} s.", retry_after=retry_after
            )

    def failed(self, key: str) -> None:
        """Count one failure for ``key``; block it once it reaches the limit."""
        self.limiter.hit(self.item, key)
        if self.limiter.test(self.item, key):
            return
        if len(self._blocked) >= _MAX_BLOCKED:
            now = time.time()
            self._blocked = {k: u for k, u in self._blocked.items() if u > now}
        self._blocked[key] = self.limiter.get_window_stats(self.item, key).reset_time
        log.warning("authentication_failures_blocked", extra={"client": key})


def build_failed_auth_limiter(spec: str) -> FailedAuthLimiter | None:
    """The limiter for a ``limits`` spec (``"30/minute"``); None when the spec is empty."""
    return FailedAuthLimiter(spec) if spec.strip() else None


def client_key(scope: Scope) -> str:
    """The limiter key of the request's client address."""
    client = scope.get("client")
    return f"ip:{client[0] if client else '-'}"


class FailedAuthMiddleware:
    """Refuse, before anything else runs, an API request from an address blocked for failed
    authentications, unless it carries a key this process verified recently."""

    def __init__(self, app: ASGIApp, *, prefix: str, exempt: tuple[str, ...] = ()) -> None:
        self.app = app
        self.prefix = prefix
        self.exempt = exempt
        self.held = 0  # refusals waiting out the tarpit now

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            state = scope["app"].state
            failures: FailedAuthLimiter | None = getattr(state, "auth_failures", None)
            if failures is not None and not scope["path"].startswith(self.exempt):
                retry_after = failures.retry_after(client_key(scope))
                if retry_after is not None and not failures.trusted(_presented_key(scope)):
                    AUTH_REFUSED.labels("ip").inc()
                    if self.held < _MAX_HELD:
                        self.held += 1
                        try:
                            await asyncio.sleep(_TARPIT_S)
                        finally:
                            self.held -= 1
                    await _refuse(send, retry_after)
                    return
        await self.app(scope, receive, send)


def _presented_key(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return value[7:].decode("latin-1").strip()
        if name == b"x-api-key":
            return value.decode("latin-1").strip()
    return None


async def _refuse(send: Send, retry_after: int) -> None:
    body = json.dumps(
        {
            "type": "https://baton.dev/problems/rate_limited",
            "title": "Too many requests",
            "status": 429,
            "detail": "Too many failed authentications from this address; "
            f"retry in {retry_after} s.",
            "code": "rate_limited",
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(retry_after).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
