"""Which errors mean the database went away (a 503 with Retry-After, a worker that rides it
out with a warning) and which are faults to see with their traceback."""

from __future__ import annotations

import asyncio
import gc

import asyncpg
import pytest
from asyncpg import exceptions

from app.db.session import is_disconnect
from app.settings import Settings
from app.webhooks.outbound import dispatcher


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.InterfaceError("connection is closed"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.CannotConnectNowError("the database system is shutting down"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        ConnectionRefusedError(111, "Connect call failed"),
        TimeoutError(),
    ],
)
def test_the_database_going_away_is_a_disconnect(error):
    assert is_disconnect(error)


@pytest.mark.parametrize(
    "error",
    [
        # asyncpg's own DataError, a value it cannot encode (only its _base module names it:
        # ``asyncpg.DataError`` is Postgres' class 22)
        exceptions._base.DataError("invalid input for query argument $1: 'x'"),
        asyncpg.DataError("invalid input syntax for type integer"),
        exceptions.OutdatedSchemaCacheError("cache lookup failed for type 16384"),
        asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
        asyncpg.UniqueViolationError("duplicate key value violates unique constraint"),
        KeyError("manager_id"),
    ],
)
def test_a_fault_is_not_a_disconnect(error):
    assert not is_disconnect(error)


def test_a_driver_error_behind_a_wrapper_of_sqlalchemy_is_looked_through():
    class AdapterError(Exception):  # as SQLAlchemy's asyncpg adapter raises its own
        pass

    for cause, lost in ((asyncpg.AdminShutdownError("terminating"), True), (KeyError(1), False)):
        try:
            try:
                raise cause
            except Exception as exc:
                raise AdapterError(str(exc)) from exc
        except AdapterError as wrapped:
            assert is_disconnect(wrapped) is lost


async def test_a_drain_that_fails_leaves_no_claim_behind_for_asyncio_to_report(monkeypatch):
    """The next batch is claimed while one is sent; when the send fails and that claim fails
    too (the database away), the claim is awaited, not left for asyncio to log as an error
    nobody retrieved."""
    claims = 0

    async def claim_batch(factory, *, settings, now, limit):
        nonlocal claims
        claims += 1
        if claims == 1:
            return [object()]
        raise ConnectionRefusedError(111, "Connect call failed")

    async def send_batch(client, claimed, *, settings):
        await asyncio.sleep(0.05)  # the next claim fails meanwhile
        raise RuntimeError("the sender broke")

    monkeypatch.setattr(dispatcher, "_claim_batch", claim_batch)
    monkeypatch.setattr(dispatcher, "_send_batch", send_batch)
    loop = asyncio.get_running_loop()
    reported: list[dict] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        with pytest.raises(RuntimeError, match="sender broke"):
            await dispatcher.drain(object(), settings=Settings(), client=object())  # type: ignore[arg-type]
        gc.collect()
        await asyncio.sleep(0.05)
    finally:
        loop.set_exception_handler(previous)
    assert claims == 2
    assert [c.get("message") for c in reported] == []
