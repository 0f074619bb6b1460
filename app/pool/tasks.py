"""The pool's work for the worker: reclaim customers left without follow-up, drain the backlog."""

from __future__ import annotations

from datetime import datetime

from app.db.session import SessionFactory, session_scope
from app.jobs.registry import Registry
from app.pool import service as pool

registry = Registry()


@registry.sweep
async def reclaim_inactive_customers(factory: SessionFactory, now: datetime) -> int:
    """Return to the pool the customers whose reclaim policy says so."""
    async with session_scope(factory) as session:
        done = await pool.sweep_reclaims(session, now=now)
    return done.reclaimed


@registry.sweep
async def drain_backlog(factory: SessionFactory, now: datetime) -> int:
    """Place waiting pool customers when the rule set turns draining on."""
    async with session_scope(factory) as session:
        return await pool.drain_backlog(session, now=now)
