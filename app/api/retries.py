"""Transparent retries of a request whose transaction lost a deadlock or a serialization race.

Postgres breaks a deadlock by aborting one of the transactions (SQLSTATE 40P01) and refuses to
commit one that cannot be serialised (40001); run again a moment later, the loser almost
always goes through. A request is one transaction (``app.api.deps``) and everything it
changes is written in it (ledger, outbox, audit, idempotency record), so the whole request is
run again: the database error handler marks the request (``mark_retryable``) and answers 503
with ``Retry-After``; this middleware drops that answer before any byte of it is sent and runs
the app again with the same body, up to ``MAX_RETRIES`` times with a short random back-off.
The client sees the 503 only when every attempt lost.

Hand-written: Starlette and FastAPI have no retry of a whole request, and a retry inside the
handler could not replay the request body or the dependencies that own the transaction.
"""

from __future__ import annotations

import asyncio
import logging
import random

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure
MAX_RETRIES = 4
_BACKOFF_S = 0.02  # the n-th retry waits up to _BACKOFF_S * 2**n
_MARK = "retry_transaction"

log = logging.getLogger("baton")


def mark_retryable(request: Request) -> None:
    """Ask for the request to be run again: its transaction lost a race and was rolled back."""
    request.scope.setdefault("state", {})[_MARK] = True


class TransactionRetryMiddleware:
    """Run a request again when its transaction lost a deadlock or serialization race.

    The body is recorded as the app reads it and replayed on a retry; requests under
    ``exclude`` (streamed bulk bodies, too large to keep) are never retried.
    """

    def __init__(
        self, app: ASGIApp, *, retries: int = MAX_RETRIES, exclude: tuple[str, ...] = ()
    ) -> None:
        self.app = app
        self.retries = retries
        self.exclude = exclude

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exclude):
            await self.app(scope, receive, send)
            return
        initial = dict(scope)
        initial_state = dict(scope.get("state", {}))
        body: list[Message] = []

        async def recording_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                body.append(message)
            return message

        for attempt in range(self.retries + 1):
            if attempt:
                # A fresh scope (routing, state) as the server gave it, the body replayed.
                for key in set(scope) - set(initial):
                    del scope[key]
                scope.update(initial)
                scope["state"] = dict(initial_state)
                await asyncio.sleep(random.uniform(0, _BACKOFF_S * 2**attempt))
            replay = _replay(body, recording_receive)
            if attempt == self.retries:
                await self.app(scope, replay, send)  # the last one answers, whatever it is
            elif not await self._attempt(scope, replay, send):
                return
            else:
                log.info("transaction_retried", extra={"path": scope["path"], "retry": attempt + 1})

    async def _attempt(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Run the app once; True when it asked for a retry and its answer was dropped."""
        dropped = False

        async def guarded_send(message: Message) -> None:
            nonlocal dropped
            if message["type"] == "http.response.start" and scope.get("state", {}).get(_MARK):
                dropped = True
            if not dropped:
                await send(message)

        await self.app(scope, receive, guarded_send)
        return dropped


def _replay(recorded: list[Message], receive: Receive) -> Receive:
    """``receive`` that first gives back the body messages earlier attempts read."""
    pending = list(recorded)  # a copy: what this attempt reads anew is recorded behind it

    async def replaying_receive() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replaying_receive
