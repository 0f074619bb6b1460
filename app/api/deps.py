"""Short typed dependencies used by every router."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.api import audit_trail
from app.api.auth import authenticate
from app.db.reads import Reader, SessionReader
from app.db.session import SessionFactory
from app.db.turns import Turns


@asynccontextmanager
async def _transaction(request: Request) -> AsyncIterator[AsyncSession]:
    factory: SessionFactory = request.app.state.session_factory
    session = factory()
    committed = False
    try:
        request.state.db_session = session  # BatonRoute stores idempotent responses and audit
        audit_trail.expect(request, session)
        try:
            yield session
            await session.commit()
            committed = True
        except BaseException:
            await session.rollback()
            raise
    finally:
        if committed and session.sync_session.get_transaction() is None:
            # Committed, its connection back in the pool: closing only forgets the loaded
            # objects, with no I/O, so it needs no task of its own (as the async close has).
            session.sync_session.close()
        else:
            async with session:  # the async close, run to completion even if cancelled
                pass


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed before the response is sent; requests take
    their turn for it first come first served (``app.state.db_turns``)."""
    turns: Turns = request.app.state.db_turns
    async with turns, _transaction(request) as session:
        yield session


async def _long_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's transaction without taking a turn: for requests that last minutes
    (streamed imports), which would otherwise hold back every short request behind them."""
    async with _transaction(request) as session:
        yield session


DbSession = Annotated[AsyncSession, Depends(_session, scope="function")]
LongSession = Annotated[AsyncSession, Depends(_long_session, scope="function")]


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


async def _caller(request: Request) -> Caller:
    # The route's role decision authenticated the request already (``authenticate`` answers
    # from the request's state then): no second dependency on the key.
    key = await authenticate(request)
    return Caller(key.name, key.role.value)


CurrentCaller = Annotated[Caller, Depends(_caller)]
