"""Short typed dependencies used by every router."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.session import SessionFactory


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed before the response is sent."""
    factory: SessionFactory = request.app.state.session_factory
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


DbSession = Annotated[AsyncSession, Depends(_session, scope="function")]


class Caller:
    """Who is calling: the actor recorded on the ledger and in audits."""

    def __init__(self, name: str) -> None:
        self.name = name


async def _caller(request: Request) -> Caller:
    return Caller(request.headers.get("x-actor", "api")[:200] or "api")


CurrentCaller = Annotated[Caller, Depends(_caller)]
