"""Engine runs off the event loop, within a time budget.

A plan over a million customers takes seconds of CPU; on the event loop it would stop every
other request, health checks included, for as long. It runs in a worker thread instead (numpy
releases the GIL for much of it) with a deadline `BATON_ENGINE_BUDGET_S` away: the engine stops
itself at its next checkpoint past the deadline, and the request stops waiting shortly after in
any case (a solver call or a numpy pass between checkpoints cannot be interrupted); either way
the client gets 503 ``plan_over_budget`` and nothing is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

from app import engine
from app.errors import InvalidInput, PlanOverBudget
from app.observability.metrics import time_engine
from app.settings import get_settings

T = TypeVar("T")

_GRACE_S = 1.0
"""How long past the deadline the request waits for the engine to reach a checkpoint."""


def engine_deadline() -> float:
    """The ``time.monotonic()`` instant a plan started now must finish by."""
    return time.monotonic() + get_settings().engine_budget_s


async def run_engine(operation: str, compute: Callable[[], T], *, deadline: float) -> T:
    """``compute()`` (an engine call whose options carry ``deadline``) in a worker thread.

    Engine errors are bad input (422); a plan past its deadline is 503 ``plan_over_budget``.
    """
    wait = max(0.0, deadline - time.monotonic()) + _GRACE_S
    with time_engine(operation), anyio.move_on_after(wait):
        try:
            return await anyio.to_thread.run_sync(compute, abandon_on_cancel=True)
        except engine.OverBudget as exc:
            raise _over_budget() from exc
        except engine.EngineError as exc:
            raise InvalidInput(str(exc)) from exc
    # Still running at the deadline (between checkpoints): the thread stops at its next one.
    raise _over_budget()


def _over_budget() -> PlanOverBudget:
    budget = get_settings().engine_budget_s
    return PlanOverBudget(
        f"The plan did not finish within its {budget:g} s budget and was abandoned; nothing "
        "was changed. Plan fewer customers at once (a filter or a customer list), or raise "
        "BATON_ENGINE_BUDGET_S.",
        budget_s=budget,
    )
