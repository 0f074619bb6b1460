"""What a domain gives the worker: tasks (run when a job of their name is dequeued), sweeps
(run every minute to find due work that no job announced, so nothing is lost if a job is) and
ticks (short upkeep run every few seconds, ``BATON_WORKER_TICK_S``).

Each domain declares a ``Registry`` beside the code it runs and decorates its functions;
``app.worker`` composes the registries in the order the sweeps should run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from app.db.session import SessionFactory

Sweep = Callable[[SessionFactory, datetime], Awaitable[int]]
"""Find and do due work as of ``now``; answer how much was done."""
TaskRun = Callable[[SessionFactory, bytes], Awaitable[None]]
"""Do the work one job announced (its payload)."""


@dataclass(frozen=True)
class Task:
    """A job entrypoint: its name, what it runs, and how often a failed run is retried
    (None: once, pgqueuer's default)."""

    name: str
    run: TaskRun
    max_attempts: int | None = None


@dataclass
class Registry:
    """The tasks and sweeps of one domain (or, composed, of the whole worker)."""

    tasks: dict[str, Task] = field(default_factory=dict)
    sweeps: list[Sweep] = field(default_factory=list)
    ticks: list[Sweep] = field(default_factory=list)

    def task(self, name: str, *, max_attempts: int | None = None) -> Callable[[TaskRun], TaskRun]:
        """Register the decorated function as the task for jobs named ``name``."""

        def register(run: TaskRun) -> TaskRun:
            if name in self.tasks:
                raise ValueError(f"a task named {name!r} is already registered")
            self.tasks[name] = Task(name, run, max_attempts)
            return run

        return register

    def sweep(self, run: Sweep) -> Sweep:
        """Register the decorated function as a sweep (run in registration order)."""
        self.sweeps.append(run)
        return run

    def tick(self, run: Sweep) -> Sweep:
        """Register the decorated function as a tick: cheap upkeep that cannot wait a minute
        (run every few seconds, in registration order)."""
        self.ticks.append(run)
        return run

    @classmethod
    def compose(cls, *registries: Registry) -> Registry:
        """One registry holding the tasks and sweeps of all, sweeps in the order given."""
        composed = cls()
        for registry in registries:
            for task in registry.tasks.values():
                composed.task(task.name, max_attempts=task.max_attempts)(task.run)
            composed.sweeps.extend(registry.sweeps)
            composed.ticks.extend(registry.ticks)
        return composed
