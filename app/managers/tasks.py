"""The managers' work for the worker: fold the load journal into managers' workloads."""

from __future__ import annotations

from datetime import datetime

from app.db.session import SessionFactory, session_scope
from app.jobs.registry import Registry
from app.managers.repository import fold_loads

registry = Registry()


@registry.sweep
async def fold_manager_loads(factory: SessionFactory, now: datetime) -> int:
    """Fold pending load changes into the managers' stored workloads."""
    async with session_scope(factory) as session:
        return await fold_loads(session)
