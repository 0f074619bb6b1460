"""Short typed dependencies used by every router."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.auth import CurrentKey
from app.db.reads import Reader, SessionReader
from app.db.session import SessionFactory


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed before the response is sent."""
    factory: SessionFactory = request.app.state.session_factory
    async with factory() as session:
        request.state.db_session = session  # BatonRoute stores idempotent responses and audit
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


DbSession = Annotated[AsyncSession, Depends(_session, scope="function")]


async def _reader(request: Request) -> Reader:
    """The service's read pool; the request's session factory when the app has none."""
    reader: Reader | None = getattr(request.app.state, "reader", None)
    return reader if reader is not None else SessionReader(request.app.state.session_factory)


Reads = Annotated[Reader, Depends(_reader)]


class Caller:
    """Who is calling: the actor recorded on the ledger and in audits (the API key's name)."""

    def __init__(self, name: str, role: str | None = None) -> None:
        self.name = name
        self.role = role


async def _caller(key: CurrentKey) -> Caller:
    return Caller(key.name, key.role.value)


CurrentCaller = Annotated[Caller, Depends(_caller)]
