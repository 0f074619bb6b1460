"""``Idempotency-Key`` on POST (IETF httpapi draft; Stripe's practice).

The fingerprint is a SHA-256 of method, path, query and body, fed as the body is read: a
route that streams its body (imports) reads it through ``streamed_body``, so a keyed
request is never held whole in memory.

Atomic with the request: the first request takes a transaction-scoped advisory lock on
(API key, Idempotency-Key) in the request's own transaction, and its 2xx response is stored
in that same transaction just before it commits (``BatonRoute``). So the change and the
stored response commit together or not at all; a request that fails stores nothing and may
simply be retried. A duplicate that arrives while the first holds the lock gets 409; one
that arrives later gets the stored response; the same key with another body gets 422.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Header, Request, Response
from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.auth import CurrentKey
from app.api.deps import DbSession
from app.db.models import IdempotencyRecord
from app.errors import IdempotencyInFlight, IdempotencyKeyReused

_STORED_HEADERS = ("content-type", "location", "etag")


@dataclass
class PendingKey:
    """A first request with this key: its response is to be stored."""

    api_key_id: object
    key: str
    # fed with method, path and query; the body is added as it is read
    digest: hashlib._Hash
    body_streamed: bool = False
    body_complete: bool = False


class IdempotentReplay(Exception):
    """Raised by the dependency to answer with a stored response instead of running again."""

    def __init__(self, response: Response) -> None:
        self.response = response


def _request_digest(request: Request) -> hashlib._Hash:
    digest = hashlib.sha256()
    for part in (request.method, request.url.path, request.url.query):
        digest.update(part.encode() + b"\n")
    return digest


async def _fingerprint(request: Request) -> bytes:
    """The whole request's fingerprint, reading the body chunk by chunk."""
    digest = _request_digest(request)
    async for chunk in request.stream():
        digest.update(chunk)
    return digest.digest()


async def streamed_body(request: Request) -> AsyncIterator[bytes]:
    """The request body as it arrives, fed into a pending key's fingerprint.

    Routes that stream their body use this instead of ``request.stream()``: the body is then
    fingerprinted without being held, and the response is stored only if it was read whole.
    """
    pending: PendingKey | None = getattr(request.state, "idempotency", None)
    if pending is None:
        async for chunk in request.stream():
            yield chunk
        return
    pending.body_streamed = True
    async for chunk in request.stream():
        pending.digest.update(chunk)
        yield chunk
    pending.body_complete = True


async def idempotency(
    request: Request,
    session: DbSession,
    key: CurrentKey,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            pattern=r"^[\x21-\x7e]+$",
            description="A unique value (a UUID) per intended change; a retry with the same "
            "key and body returns the first response instead of doing it again (24 h).",
        ),
    ] = None,
) -> None:
    """Replay, refuse (409/422) or register the request for storing its response."""
    if idempotency_key is None:
        return
    lock_id = func.hashtextextended(f"{key.id}:{idempotency_key}", 0)
    if not await session.scalar(select(func.pg_try_advisory_xact_lock(lock_id))):
        raise IdempotencyInFlight(
            "A request with this Idempotency-Key is still in progress; retry shortly."
        )
    stored = (
        await session.execute(
            select(IdempotencyRecord).where(
                IdempotencyRecord.api_key_id == key.id,
                IdempotencyRecord.key == idempotency_key,
                IdempotencyRecord.expires_at > func.now(),
            )
        )
    ).scalar_one_or_none()
    if stored is not None:
        # Only a repeat reads the body here; a first request's body is hashed as it is read.
        if stored.fingerprint != await _fingerprint(request):
            raise IdempotencyKeyReused(
                "This Idempotency-Key was used with a different request; use a new key.",
                errors=[
                    {
                        "loc": ["header", "Idempotency-Key"],
                        "msg": "already used with a different request",
                        "type": "idempotency_key_reused",
                    }
                ],
            )
        headers = {k: str(v) for k, v in stored.headers.items()}
        headers["Idempotent-Replayed"] = "true"
        raise IdempotentReplay(
            Response(content=stored.body, status_code=stored.status_code, headers=headers)
        )
    request.state.idempotency = PendingKey(key.id, idempotency_key, _request_digest(request))


async def store_response(
    session: AsyncSession, request: Request, pending: PendingKey, response: Response
) -> None:
    """Keep a 2xx response for replays, in the request's transaction."""
    if pending.body_streamed and not pending.body_complete:
        return  # no fingerprint of the whole body; a retry runs again
    if not pending.body_streamed:
        # FastAPI has read and cached a JSON body already; a route without one reads b"".
        pending.digest.update(await request.body())
    ttl = timedelta(hours=request.app.state.settings.idempotency_ttl_hours)
    values = {
        "api_key_id": pending.api_key_id,
        "key": pending.key,
        "fingerprint": pending.digest.digest(),
        "method": request.method,
        "path": request.url.path,
        "status_code": response.status_code,
        "headers": {k: v for k, v in response.headers.items() if k in _STORED_HEADERS},
        "body": bytes(response.body),
        "expires_at": datetime.now(UTC) + ttl,
    }
    stmt = insert(IdempotencyRecord).values(**values)
    # an expired record with the same key is replaced
    stmt = stmt.on_conflict_do_update(
        index_elements=[IdempotencyRecord.api_key_id, IdempotencyRecord.key],
        set_={k: stmt.excluded[k] for k in values if k not in ("api_key_id", "key")},
    )
    await session.execute(stmt)


async def delete_expired(session: AsyncSession) -> int:
    """Drop records past their time (the worker's sweep)."""
    result = await session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= func.now())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
