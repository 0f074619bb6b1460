"""The worker's ticks: a tick that keeps failing is retried less and less often."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from app import worker


async def test_a_failing_tick_backs_off_up_to_a_minute_and_recovers(monkeypatch, caplog):
    outcomes = iter([False] * 8 + [True, False])
    waits: list[float] = []

    async def tick(factory: object, now: datetime) -> int:
        if not next(outcomes):
            raise RuntimeError("the database is away")
        return 0

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 10:
            raise asyncio.CancelledError

    monkeypatch.setattr(worker, "TICKS", [tick])
    monkeypatch.setattr(worker.asyncio, "sleep", sleep)
    with pytest.raises(asyncio.CancelledError):
        await worker._tick(object(), 2.0)  # type: ignore[arg-type]
    assert waits == [4, 8, 16, 32, 60, 60, 60, 60, 2, 4]
    assert len([r for r in caplog.records if r.getMessage() == "tick_failed"]) == 9
