"""A stop signal is kept even when the exit its handler raises is dropped: Python runs a signal
handler between any two bytecodes, also inside a weakref callback or a finaliser, where an
exception is printed ("Exception ignored in …") and lost. A worker told to stop while it was
starting must stop, not run on."""

from __future__ import annotations

import asyncio
import gc
import signal
import weakref

import pytest

from app import cli


class _Object:
    pass


async def test_a_stop_signal_whose_exit_was_dropped_still_stops_the_worker(monkeypatch):
    monkeypatch.setattr(cli, "_stop_requested", False)
    unraisable: list[BaseException | None] = []
    monkeypatch.setattr("sys.unraisablehook", lambda hook: unraisable.append(hook.exc_value))
    # The handler runs inside a weakref callback: its SystemExit is reported and dropped.
    obj = _Object()
    weakref.finalize(obj, cli._exit_cleanly, signal.SIGTERM, None)
    del obj
    gc.collect()
    assert [type(e) for e in unraisable] == [SystemExit]

    seen: list[bool] = []

    async def run_worker(url, settings, stop: asyncio.Event) -> None:
        seen.append(stop.is_set())

    monkeypatch.setattr("app.worker.run_worker", run_worker)
    try:
        await asyncio.wait_for(cli._work_until_signalled("postgresql://unused"), 5)
    finally:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    assert seen == [True]  # the worker is told to stop before it takes a job
    with pytest.raises(SystemExit):
        cli._exit_if_stop_requested()  # and `baton serve` exits before it serves
