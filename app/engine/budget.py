"""A time budget for one plan, checked by the engine between its steps.

The service runs the engine in a worker thread, which nothing can interrupt from outside; the
engine stops itself instead, at the first checkpoint past its deadline (between classes,
shed-and-place rounds, lookahead levels, spread moves), raising `OverBudget`. The deadline is a
`time.monotonic()` instant in the options: the clock decides only whether to go on, never what
the plan is (the solver's own budget is counted in nodes, see ``PlanOptions.solver_node_limit``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_deadline: ContextVar[float | None] = ContextVar("engine_deadline", default=None)


class OverBudget(Exception):
    """The plan ran past its deadline and was abandoned; nothing was decided."""


@contextmanager
def budget(deadline: float | None) -> Iterator[None]:
    """Checkpoints inside the block raise `OverBudget` once `time.monotonic()` passes
    `deadline` (None: no budget)."""
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


def checkpoint() -> None:
    """Raise `OverBudget` if the current plan is past its deadline."""
    deadline = _deadline.get()
    if deadline is not None and time.monotonic() > deadline:
        raise OverBudget("the plan ran past its time budget")
