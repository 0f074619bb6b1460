"""Outbound webhooks: deliveries drained per second by one worker to a local receiver.

    .venv/bin/python -m bench.webhooks [--events 5000] [--batched 100000]

One transaction emits ``--events`` ``customer.assigned`` events (as a bulk move would) to one
subscription; one dispatcher (``drain``: claim a batch, sign each with Standard Webhooks,
POST concurrently, record the attempts set-based) then delivers them to a receiver running
in another process (uvicorn, answers 200). The floor, measured in the same run against the
same receiver: a bare aiohttp client posting the same number of bodies of the same size with
the same concurrency, no database, no signing. Prints both, and Baton's share of the floor.
Then ``--batched`` customers are moved in one transaction to new owners (as a handover
does) with one ``ownership.changed.batch`` subscriber: prints move + emit and delivery time.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time
import uuid
from datetime import UTC, datetime

import aiohttp
import httpx
from sqlalchemy import text

from app.assignments.repository import move_customers
from app.db.session import create_session_factory, session_scope
from app.events import outbox
from app.settings import Settings
from app.webhooks.outbound import dispatcher
from bench._db import scratch_database


async def receiver_app(scope, receive, send) -> None:
    """The receiving end: read the body, answer 200."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _wait_up(url: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(100):
            try:
                await client.post(url, content=b"{}")
                return
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    raise RuntimeError("receiver did not start")


async def aiohttp_floor(url: str, requests: int, *, body: bytes, concurrency: int) -> float:
    """Requests/s of a plain aiohttp client: the most one process can post to ``url``."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as client:
        gate = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with gate, client.post(url, data=body) as response:
                await response.read()
                assert response.status == 200

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(requests)))
        return requests / (time.perf_counter() - started)


async def batched(url: str, settings: Settings, changes: int) -> None:
    """A bulk move of ``changes`` customers, as one handover writes it, to a subscriber of
    ``ownership.changed.batch`` (1 000 changes per delivery): move + emit, then delivery."""
    _, engine = await scratch_database(customers=changes, managers=100)
    factory = create_session_factory(engine)
    async with session_scope(factory) as session:
        await session.execute(
            text(
                "INSERT INTO webhook_subscriptions (url, event_types, secret, batch_size) "
                "VALUES (:url, ARRAY['ownership.changed.batch'], :secret, 1000)"
            ),
            {"url": url, "secret": "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
        )
        rows = (
            await session.execute(
                text(
                    "SELECT c.id, (SELECT m.id FROM managers AS m WHERE m.id <> c.manager_id"
                    " ORDER BY m.id LIMIT 1), c.manager_id FROM customers AS c"
                )
            )
        ).all()
    started = time.perf_counter()
    async with session_scope(factory) as session:
        await move_customers(
            session,
            customer_ids=[r[0] for r in rows],
            manager_ids=[r[1] for r in rows],
            reason="handover",
            actor="bench",
            at=datetime.now(UTC),
        )
    moved = time.perf_counter() - started
    started = time.perf_counter()
    await dispatcher.drain(factory, settings=settings)
    elapsed = time.perf_counter() - started
    async with session_scope(factory) as session:
        delivered = await session.scalar(
            text("SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'")
        )
        await session.execute(text("UPDATE webhook_subscriptions SET enabled = false"))
    # the same move back with nobody subscribed: what the events add to the move
    started = time.perf_counter()
    async with session_scope(factory) as session:
        await move_customers(
            session,
            customer_ids=[r[0] for r in rows],
            manager_ids=[r[2] for r in rows],
            reason="handover",
            actor="bench",
            at=datetime.now(UTC),
        )
    bare = time.perf_counter() - started
    await engine.dispose()
    print(f"batched: changes      {len(rows):>10,}  (1 000 per delivery)")
    print(f"move + emit           {moved * 1000:>10.1f} ms  (the move alone: {bare * 1000:.1f} ms)")
    print(f"deliveries            {delivered:>10,}")
    print(f"delivery time         {elapsed * 1000:>10.1f} ms")
    print(f"move to delivered     {(moved + elapsed) * 1000:>10.1f} ms")


async def main(events: int, changes: int) -> None:
    port = _free_port()
    receiver = await asyncio.create_subprocess_exec(
        *[
            sys.executable,
            "-m",
            "uvicorn",
            "bench.webhooks:receiver_app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
    )
    try:
        url = f"http://127.0.0.1:{port}/hooks"
        await _wait_up(url)
        _, engine = await scratch_database(customers=10, managers=2)
        factory = create_session_factory(engine)
        settings = Settings(environment="test", webhooks_allow_private_targets=True)
        async with session_scope(factory) as session:
            await session.execute(
                text(
                    "INSERT INTO webhook_subscriptions (url, event_types, secret) "
                    "VALUES (:url, ARRAY['*'], :secret)"
                ),
                {"url": url, "secret": "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" * 1},
            )
        started = time.perf_counter()
        async with session_scope(factory) as session:
            await outbox.emit_many(
                session,
                [
                    (
                        "customer.assigned",
                        {
                            "customer_id": uuid.uuid4(),
                            "manager_id": uuid.uuid4(),
                            "reason": "bench",
                        },
                        uuid.uuid4(),
                    )
                    for _ in range(events)
                ],
            )
        emitted = time.perf_counter() - started
        async with session_scope(factory) as session:
            body = await session.scalar(text("SELECT payload::text FROM webhook_events LIMIT 1"))

        async def floor_now() -> float:
            return await aiohttp_floor(
                url, events, body=body.encode(), concurrency=settings.webhooks_concurrency
            )

        # the floor before and after Baton's run, so neither gets the warmer receiver
        floors = [await floor_now()]
        started = time.perf_counter()
        sent = await dispatcher.drain(factory, settings=settings)
        elapsed = time.perf_counter() - started
        floors.append(await floor_now())
        async with session_scope(factory) as session:
            delivered = await session.scalar(
                text("SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'")
            )
        await engine.dispose()
        floor = sum(floors) / len(floors)
        rate = delivered / elapsed
        print(f"events                {events:>10,}")
        print(f"emit (one statement)  {emitted * 1000:>10.1f} ms")
        print(f"drained               {sent:>10,}  ({delivered:,} delivered)")
        print(f"drain time            {elapsed * 1000:>10.1f} ms")
        print(f"events/s (1 worker)   {rate:>10,.0f}")
        print(
            f"aiohttp floor (req/s) {floor:>10,.0f}  (before {floors[0]:,.0f}, after "
            f"{floors[1]:,.0f}; concurrency {settings.webhooks_concurrency})"
        )
        print(f"ratio                 {rate / floor:>10.2f}x")
        if changes:
            await batched(url, settings, changes)
    finally:
        receiver.terminate()
        await asyncio.wait_for(receiver.wait(), timeout=10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument(
        "--batched", type=int, default=100_000, help="changes for the batched run (0: skip)"
    )
    args = parser.parse_args()
    asyncio.run(main(args.events, args.batched))
