"""Where a manual-assignment PATCH spends its CPU, in process (no HTTP server, no wrk).

Seeds the same data as ``bench/load.py``, then drives ``PATCH /v1/customers/{id}?force=true``
(a real move per request, as the load benchmark does) straight through the ASGI app from
``--concurrency`` coroutines, and prints:

- CPU per PATCH (process time over the requests, no profiler attached) next to the CPU per
  raw-asyncpg move (the same statements as ``bench/raw_app.py``'s write, on one asyncpg pool in
  this process), measured interleaved, medians of ``--rounds``;
- statements per PATCH (from ``pg_stat_statements``-free counting: the asyncpg protocol's
  round trips, counted on the pool's connections);
- a breakdown by section: the Python stack is sampled every half millisecond of CPU time
  (``ITIMER_PROF``) while PATCHes run; a section's share is the share of samples whose stack
  passes through it, applied to the CPU per PATCH. Sections nest (the
  guard is inside the update service). cProfile is not used: it misattributes time across
  suspended coroutines.

    python -m bench.patch_profile [--requests 2000] [--concurrency 16] [--customers 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import asyncpg

from bench.load import make_room, prepare

# Sections of the breakdown: a label and the (file suffix, function name) pairs any of which
# on a sampled stack puts the sample in the section.
SECTIONS: list[tuple[str, list[tuple[str, str]]]] = [
    ("in the app (any request frame)", [("starlette/applications.py", "__call__")]),
    ("middleware (request id, limits, metrics, retries)", [("app/api/middleware.py", "__call__")]),
    ("routing to the endpoint", [("starlette/routing.py", "__call__")]),
    ("route handler (dependencies, endpoint, audit)", [("app/api/routing.py", "handler")]),
    ("  dependencies", [("fastapi/dependencies/utils.py", "solve_dependencies")]),
    (
        "    authenticate + role",
        [
            ("app/api/auth.py", "authenticate"),
            ("app/api/auth.py", "__call__"),
            ("app/api/auth.py", "authorize"),
        ],
    ),
    (
        "    body validation",
        [
            ("fastapi/dependencies/utils.py", "request_body_to_args"),
            ("fastapi/routing.py", "_read_body"),
        ],
    ),
    ("    session (turn, BEGIN)", [("app/api/deps.py", "_session")]),
    ("  endpoint: update service", [("app/customers/service.py", "update_customer")]),
    (
        "    customer lock",
        [("app/customers/repository.py", "get"), ("app/customers/repository.py", "lock")],
    ),
    (
        "    guard.check_move",
        [
            ("app/assignments/guard.py", "check_move"),
            ("app/assignments/guard.py", "check_move_reading"),
        ],
    ),
    (
        "    move",
        [
            ("app/assignments/repository.py", "move_customers"),
            ("app/assignments/repository.py", "move_one_customer"),
        ],
    ),
    ("    final read", [("app/customers/service.py", "get_customer")]),
    ("  response serialisation", [("fastapi/routing.py", "serialize_response")]),
    ("  audit record", [("app/api/routing.py", "_record")]),
    ("  commit", [("sqlalchemy/ext/asyncio/session.py", "commit")]),
    ("event loop, asyncpg protocol, sockets (outside any request frame)", []),
]


def scope_for(path: str, query: str, key: str, body: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "PATCH",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }


async def call(app: Any, path: str, query: str, key: str, body: bytes) -> int:
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope_for(path, query, key, body), receive, send)
    return status


async def drive(requests: int, concurrency: int, one: Callable[[int], Any]) -> tuple[float, float]:
    """Run ``one(i)`` for i < requests from ``concurrency`` coroutines; (CPU s, wall s)."""
    counter = iter(range(requests))

    async def worker() -> None:
        for i in counter:
            await one(i)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.process_time() - cpu, time.perf_counter() - wall


# bench/raw_app.py's move (on the clock rather than the transaction's start: a PATCH that
# committed meanwhile may have opened the period this one closes a moment ago).
RAW_MOVE = """
    WITH moved AS (
        UPDATE customers SET manager_id = $2, version = version + 1, updated_at = clock_timestamp(),
               owner_since = clock_timestamp()
         WHERE id = $1 AND manager_id IS DISTINCT FROM $2
        RETURNING *
    ), closed AS (
        UPDATE assignments SET ended_at = clock_timestamp()
         WHERE customer_id = $1 AND ended_at IS NULL AND EXISTS (SELECT FROM moved)
        RETURNING 1
    ), opened AS (
        INSERT INTO assignments (customer_id, manager_id, started_at, reason, actor)
        SELECT id, manager_id, clock_timestamp(), 'manual', 'bench' FROM moved
         WHERE (SELECT count(*) FROM closed) >= 0
    )
    SELECT * FROM moved
"""


async def main_async(args: argparse.Namespace) -> None:
    url, _ids, managers, key = await prepare(args.customers)
    movers = await make_room(url, managers)
    os.environ.update(
        {
            "DATABASE_URL": url,
            "BATON_LOG_LEVEL": "WARNING",
            "BATON_RATE_LIMIT": "100000000/minute",
        }
    )
    from app.db.session import asyncpg_dsn
    from app.main import create_app
    from app.settings import get_settings

    get_settings.cache_clear()
    app = create_app()
    rng = random.Random(7)

    def patch(i: int) -> Any:
        body = f'{{"manager_id": "{rng.choice(managers)}"}}'.encode()
        return call(app, f"/v1/customers/{rng.choice(movers)}", "force=true", key, body)

    pool = await asyncpg.create_pool(asyncpg_dsn(url), min_size=10, max_size=10)

    async def raw(i: int) -> None:
        import uuid

        customer, manager = uuid.UUID(rng.choice(movers)), uuid.UUID(rng.choice(managers))
        async with pool.acquire() as conn, conn.transaction():
            await conn.fetchrow("SELECT * FROM customers WHERE id = $1 FOR UPDATE", customer)
            await conn.fetchrow(RAW_MOVE, customer, manager)

    async with app.router.lifespan_context(app):
        statuses: list[int] = []

        async def checked(i: int) -> None:
            statuses.append(await patch(i))

        await drive(300, args.concurrency, checked)  # warm up: caches, prepared statements
        await drive(300, args.concurrency, raw)
        bad = [s for s in statuses if s != 200]
        if bad:
            raise SystemExit(f"{len(bad)} PATCHes did not answer 200: {sorted(set(bad))}")
        per_patch, per_raw = [], []
        for _ in range(args.rounds):
            cpu, _ = await drive(args.requests, args.concurrency, patch)
            per_patch.append(cpu / args.requests * 1000)
            cpu, _ = await drive(args.requests, args.concurrency, raw)
            per_raw.append(cpu / args.requests * 1000)
        trips = await round_trips(patch)
        sampler = Sampler()
        sampler.start()
        await drive(args.requests, args.concurrency, patch)
        sampler.stop()
    await pool.close()
    p, r = statistics.median(per_patch), statistics.median(per_raw)
    print(
        f"CPU per request, this process (median of {args.rounds} interleaved rounds of "
        f"{args.requests}, {args.concurrency} at once):"
    )
    print(f"  PATCH manual assignment   {p:6.2f} ms")
    print(f"  raw asyncpg move (floor)  {r:6.2f} ms   PATCH / floor: {p / r:.2f}×")
    print(f"round trips per PATCH: {trips:.1f}")
    print_sections(sampler, p, args.top)


async def round_trips(patch: Callable[[int], Any], requests: int = 200) -> float:
    """Round trips per PATCH: statements sent through asyncpg (the driver's own calls, the
    prepared statements SQLAlchemy runs; BEGIN and COMMIT are ``execute``s), counted while PATCHes run one
    at a time."""
    from asyncpg.connection import Connection
    from asyncpg.prepared_stmt import PreparedStatement

    counted = [
        (Connection, "fetchrow"),
        (Connection, "fetchval"),
        (Connection, "fetch"),
        (Connection, "execute"),
        (Connection, "executemany"),
        (PreparedStatement, "fetch"),
    ]
    count = 0

    def counting(fn: Any) -> Any:
        async def wrapper(self: Any, *a: Any, **kw: Any) -> Any:
            nonlocal count
            count += 1
            return await fn(self, *a, **kw)

        return wrapper

    originals = [(cls, name, getattr(cls, name)) for cls, name in counted]
    for cls, name, fn in originals:
        setattr(cls, name, counting(fn))
    try:
        for i in range(requests):
            await patch(i)
    finally:
        for cls, name, fn in originals:
            setattr(cls, name, fn)
    return count / requests


class Sampler:
    """Samples the main thread's Python stack (as (file, function) pairs, innermost first)
    every ``interval`` seconds of the process's CPU time (``ITIMER_PROF``), so samples fall
    in proportion to CPU spent and none while the loop waits."""

    def __init__(self, interval: float = 0.0005) -> None:
        self.interval = interval
        self.samples: list[tuple[tuple[str, str], ...]] = []

    def _sample(self, signum: int, frame: FrameType | None) -> None:
        stack = []
        while frame is not None:
            stack.append((frame.f_code.co_filename, frame.f_code.co_name))
            frame = frame.f_back
        self.samples.append(tuple(stack))

    def start(self) -> None:
        signal.signal(signal.SIGPROF, self._sample)
        signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)

    def stop(self) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, signal.SIG_DFL)


def print_sections(sampler: Sampler, cpu_ms: float, top: int) -> None:
    samples = sampler.samples
    total = len(samples) or 1
    print(f"\nbreakdown ({len(samples)} samples; share of the {cpu_ms:.2f} ms per PATCH):")
    in_app = 0
    for label, wanted in SECTIONS:
        if not wanted:
            share = 1 - in_app / total
        else:
            hits = sum(
                1
                for stack in samples
                if any(
                    f.endswith(suffix) and n == name for f, n in stack for suffix, name in wanted
                )
            )
            share = hits / total
            if label.startswith("in the app"):
                in_app = hits
        print(f"  {label:66} {share * cpu_ms:6.2f} ms  {share * 100:5.1f} %")
    print("\nby library (samples with one of its frames on the stack):")
    for library in ("sqlalchemy/", "fastapi/", "starlette/", "asyncpg/", "pydantic", "limits/"):
        hits = sum(1 for stack in samples if any(library in f for f, _ in stack))
        print(f"  {library:66} {hits / total * cpu_ms:6.2f} ms  {hits / total * 100:5.1f} %")
    if top:
        own: dict[tuple[str, str], int] = {}
        for stack in samples:
            own[stack[0]] = own.get(stack[0], 0) + 1
        print(f"\ntop {top} functions by own samples:")
        for (file, name), n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
            print(f"  {n / total * 100:5.1f} %  {name}  {file.split('site-packages/')[-1]}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--top", type=int, default=0, help="also print the top functions")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
