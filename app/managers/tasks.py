"""The managers' work for the worker: fold the load journal into managers' workloads."""

from __future__ import annotations

import weakref
from datetime import datetime

from app.db.session import SessionFactory, session_scope
from app.jobs.registry import Registry
from app.managers.repository import fold_loads, fold_recent_loads

registry = Registry()


@registry.sweep
async def fold_manager_loads(factory: SessionFactory, now: datetime) -> int:
    """Fold pending load changes into the managers' stored workloads."""
    async with session_scope(factory) as session:
        return await fold_loads(session)


# The journal id the next tick's fold starts after, per session factory (one per worker run:
# a database the worker has not folded yet starts from 0, everything).
_since: weakref.WeakKeyDictionary[SessionFactory, int] = weakref.WeakKeyDictionary()


@registry.tick
async def fold_recent_manager_loads(factory: SessionFactory, now: datetime) -> int:
    """Fold the load changes appended since the last tick, so that a workload stays a read of
    one row per tier while moves stream in (each move appends rows for both managers)."""
    async with session_scope(factory) as session:
        done = await fold_recent_loads(session, after=_since.get(factory, 0))
    if done is None:  # another worker's fold was running
        return 0
    _since[factory], folded = done
    return folded
