"""Where ``POST /v1/customers/{id}/assign`` spends its CPU, in process (no HTTP server, no wrk).

Seeds the same data as ``bench/load.py --assign-only`` (the demo book, customers waiting in the
pool, room for them), then drives the request straight through the ASGI app from
``--concurrency`` coroutines, as a dry run and for real (every real request places a different
waiting customer, so each is a move), and prints:

- CPU per request (process time over the requests, no profiler attached) of the dry run, the
  real placement and Baton's ``GET /v1/customers/{id}``, next to the CPU per raw asyncpg fetch
  of a customer (the floor: one statement on one pool in this process), measured interleaved,
  medians of ``--rounds``;
- round trips per request (statements sent through asyncpg, requests one at a time);
- the wall time a real placement holds the lock that serialises it with others (the
  placement lock, or the chosen manager's row lock when it takes no placement lock), from
  taking it to the end of the transaction, requests one at a time;
- a breakdown by section per kind of request, sampled as ``bench/patch_profile.py`` does
  (the Python stack every half millisecond of CPU time; sections nest).

    python -m bench.assign_profile [--requests 1000] [--concurrency 16] [--customers 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg

from bench.load import pool_customers, prepare
from bench.patch_profile import Sampler, drive

SECTIONS: list[tuple[str, list[tuple[str, str]]]] = [
    ("in the app (any request frame)", [("starlette/applications.py", "__call__")]),
    ("middleware (request id, limits, metrics, retries)", [("app/api/middleware.py", "__call__")]),
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
    ("    session (turn, BEGIN)", [("app/api/deps.py", "_session")]),
    ("  endpoint: assign service", [("app/assignments/service.py", "assign_customer")]),
    ("    placement lock", [("app/assignments/placement_repository.py", "lock_placements")]),
    ("    customer facts", [("app/assignments/placement_repository.py", "customer_facts")]),
    ("    rule set parsed", [("app/rules/service.py", "parse_stored")]),
    ("    candidate rows", [("app/assignments/placement_repository.py", "candidates")]),
    ("    placement (engine.single)", [("app/engine/single.py", "place_among")]),
    (
        "    guard.check_move",
        [
            ("app/assignments/guard.py", "check_move"),
            ("app/assignments/guard.py", "check_move_reading"),
        ],
    ),
    ("    move", [("app/assignments/repository.py", "move_customers")]),
    ("    whole engine (fallback)", [("app/assignments/service.py", "_propose")]),
    ("    response model", [("app/assignments/service.py", "_decision_out")]),
    ("  audit record / idempotent response", [("app/api/routing.py", "_record")]),
    ("  commit", [("sqlalchemy/ext/asyncio/session.py", "commit")]),
    ("event loop, asyncpg protocol, sockets (outside any request frame)", []),
]


def scope_for(method: str, path: str, key: str, body: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }


async def call(app: Any, method: str, path: str, key: str, body: bytes = b"") -> int:
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

    await app(scope_for(method, path, key, body), receive, send)
    return status


def counting_round_trips() -> tuple[Callable[[], int], Callable[[], None]]:
    """Count statements sent through asyncpg from now on: (count so far, undo)."""
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

    def undo() -> None:
        for cls, name, fn in originals:
            setattr(cls, name, fn)

    return lambda: count, undo


async def lock_held(real: Callable[[int], Any], requests: int) -> float:
    """Median wall time (ms) from the first lock that serialises placements (the placement
    lock when one is taken, else the chosen manager's row lock, taken by the placement
    guard) to the end of the request's transaction, placements one at a
    time."""
    from app.assignments import guard, placement_repository

    modules = {"lock_placements": placement_repository, "check_move_reading": guard}
    originals = {name: getattr(module, name) for name, module in modules.items()}
    taken: list[float] = []

    def timed(fn: Any) -> Any:
        async def wrapper(*a: Any, **kw: Any) -> Any:
            taken.append(time.perf_counter())
            return await fn(*a, **kw)

        return wrapper

    for name, fn in originals.items():
        setattr(modules[name], name, timed(fn))
    held: list[float] = []
    try:
        for i in range(requests):
            await real(i)
            if taken:
                held.append(time.perf_counter() - taken[0])
                taken.clear()
    finally:
        for name, fn in originals.items():
            setattr(modules[name], name, fn)
    return statistics.median(held) * 1000 if held else 0.0


async def main_async(args: argparse.Namespace) -> None:
    url, ids, _managers, key = await prepare(args.customers)
    needed = args.requests * (args.rounds + 2) + 2000
    waiting = await pool_customers(url, needed * 2)
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
    dry_ids, real_ids = waiting[needed:], iter(waiting[:needed])
    dry_body = json.dumps({"dry_run": True}).encode()
    statuses: dict[str, list[int]] = {"dry": [], "real": [], "get": []}

    async def dry(i: int) -> None:
        path = f"/v1/customers/{rng.choice(dry_ids)}/assign"
        statuses["dry"].append(await call(app, "POST", path, key, dry_body))

    async def real(i: int) -> None:
        path = f"/v1/customers/{next(real_ids)}/assign"
        statuses["real"].append(await call(app, "POST", path, key, b"{}"))

    async def get(i: int) -> None:
        statuses["get"].append(await call(app, "GET", f"/v1/customers/{rng.choice(ids)}", key))

    pool = await asyncpg.create_pool(asyncpg_dsn(url), min_size=10, max_size=10)

    async def raw(i: int) -> None:
        async with pool.acquire() as conn:
            await conn.fetchrow("SELECT * FROM customers WHERE id = $1", uuid.UUID(rng.choice(ids)))

    kinds = {"dry": dry, "real": real, "get": get, "raw": raw}
    cpu: dict[str, list[float]] = {k: [] for k in kinds}
    trips: dict[str, float] = {}
    async with app.router.lifespan_context(app):
        for one in kinds.values():  # warm up: caches, prepared statements
            await drive(200, args.concurrency, one)
        for kind, found in statuses.items():
            bad = [s for s in found if s != 200]
            if bad:
                raise SystemExit(f"{len(bad)} {kind} requests did not answer 200: {set(bad)}")
        for _ in range(args.rounds):
            for kind, one in kinds.items():
                spent, _ = await drive(args.requests, args.concurrency, one)
                cpu[kind].append(spent / args.requests * 1000)
        for kind in ("dry", "real", "get"):
            count, undo = counting_round_trips()
            try:
                for i in range(200):
                    await kinds[kind](i)
            finally:
                undo()
            trips[kind] = count() / 200
        held = await lock_held(real, 200)
        samplers = {}
        for kind in ("dry", "real"):
            sampler = samplers[kind] = Sampler()
            sampler.start()
            await drive(args.requests, args.concurrency, kinds[kind])
            sampler.stop()
    await pool.close()
    medians = {k: statistics.median(v) for k, v in cpu.items()}
    floor = medians["raw"]
    print(
        f"CPU per request, this process (median of {args.rounds} interleaved rounds of "
        f"{args.requests}, {args.concurrency} at once):"
    )
    names = {
        "dry": "POST assign, dry run",
        "real": "POST assign, real placement",
        "get": "GET customer (Baton)",
        "raw": "raw asyncpg fetch (floor)",
    }
    for kind, name in names.items():
        extra = f"   round trips {trips[kind]:.1f}" if kind in trips else ""
        print(f"  {name:30} {medians[kind]:6.2f} ms   {medians[kind] / floor:5.1f}× floor{extra}")
    print(f"serialising lock held per real placement (one at a time): {held:.2f} ms (median)")
    for kind in ("dry", "real"):
        print_sections(f"{names[kind]}", samplers[kind], medians[kind])


def print_sections(title: str, sampler: Sampler, cpu_ms: float) -> None:
    samples = sampler.samples
    total = len(samples) or 1
    print(f"\n{title}: breakdown ({len(samples)} samples; share of {cpu_ms:.2f} ms):")
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
