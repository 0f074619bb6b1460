"""The worker's ticks: a tick that keeps failing is retried less and less often."""

from __future__ import annotations

import asyncio
from datetime import datetime

import asyncpg
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


async def test_a_tick_or_sweep_cut_off_by_the_database_going_away_is_a_warning_without_traceback(
    monkeypatch, caplog
):
    # A statement cut off by a restart, then a connection refused while Postgres stops.
    errors = iter(
        [
            asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
            asyncpg.CannotConnectNowError("the database system is shutting down"),
        ]
    )

    async def away(factory: object, now: datetime) -> int:
        raise next(errors)

    async def bug(factory: object, now: datetime) -> int:
        raise KeyError("customer_id")

    monkeypatch.setattr(worker, "TICKS", [away, bug])
    monkeypatch.setattr(worker, "SWEEPS", [away, bug])
    assert await worker.run_ticks(object()) == {}  # type: ignore[arg-type]
    assert await worker.run_due_work(object()) == {}  # type: ignore[arg-type]
    failed = [r for r in caplog.records if r.getMessage() in ("tick_failed", "sweep_failed")]
    assert [(r.getMessage(), r.levelname, r.exc_info is not None) for r in failed] == [
        ("tick_failed", "WARNING", False),
        ("tick_failed", "ERROR", True),
        ("sweep_failed", "WARNING", False),
        ("sweep_failed", "ERROR", True),
    ]
    assert "ConnectionDoesNotExistError" in failed[0].__dict__["error"]
    assert "shutting down" in failed[2].__dict__["error"]
