"""Turns: requests waiting for a connection are served in arrival order, and counted."""

import asyncio

from app.db.turns import Turns


async def test_a_waiter_is_served_before_a_newcomer_and_waiting_is_counted():
    turns = Turns(1)
    order: list[str] = []
    release = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    async def take(name: str) -> None:
        async with turns:
            order.append(name)

    async def holder() -> None:
        async with turns:
            await release.wait()
            # A newcomer scheduled before the turn is released runs before the woken waiter
            # does: a gate that lets it take the free turn (as the pools' queues do) fails.
            tasks.append(asyncio.create_task(take("newcomer")))

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(take("waiter"))
    await asyncio.sleep(0)
    assert (turns.held, turns.waiting) == (1, 1)

    release.set()
    await first
    await asyncio.gather(waiter, *tasks)
    assert order == ["waiter", "newcomer"]
    assert (turns.held, turns.waiting) == (0, 0)


async def test_a_cancelled_waiter_leaves_the_count():
    turns = Turns(1)
    async with turns:
        waiter = asyncio.create_task(turns.__aenter__())
        await asyncio.sleep(0)
        assert turns.waiting == 1
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        assert turns.waiting == 0
    assert turns.held == 0
