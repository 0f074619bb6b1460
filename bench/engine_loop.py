"""Benchmark: does a big plan stop other requests? `/healthz` latency while a rebalance of the
whole book runs, against the same probe with nothing else running, in one run.

Serves Baton (one uvicorn worker, as `baton serve --workers 1`) over a generated book, probes
`GET /healthz` every few milliseconds on one keep-alive connection, first alone, then while a
`POST /v1/rebalance` of every customer runs (read the book, plan, write the moves), and prints
p50 / p99 / max of each. Goal: p99 under 50 ms while the plan runs.

Probes go out on a fixed schedule, each on a new connection, whether or not earlier ones were
answered: a server that stalls for a second delays every probe due in that second (as it
would every client), not only the one in flight.

    python -m bench.engine_loop                      # 1M customers × 10k managers, applied
    python -m bench.engine_loop --customers 200000   # a smaller book
    python -m bench.engine_loop --dry-run            # plan only, nothing written
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import statistics
import sys
import threading
import time

from sqlalchemy.ext.asyncio import create_async_engine

from app.db.session import create_session_factory
from bench._db import scratch_database
from bench.load import _admin_key, free_port, start, stop


async def probe(port: int, until: threading.Event, interval: float) -> list[float]:
    """Latencies (ms) of GET /healthz sent every `interval` s until `until` is set, each on a
    new connection (as a load balancer probes) whether or not earlier ones were answered."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []

    async def one(due: float) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        response = await reader.read()
        latencies.append((loop.time() - due) * 1000)
        writer.close()
        assert response.startswith(b"HTTP/1.1 200"), response[:100]

    probes = []
    due = loop.time()
    while not until.is_set():
        await asyncio.sleep(max(0.0, due - loop.time()))
        probes.append(asyncio.create_task(one(due)))
        due += interval
    await asyncio.gather(*probes)
    return latencies


def summary(latencies: list[float]) -> str:
    cuts = statistics.quantiles(latencies, n=100)
    return (
        f"p50 {cuts[49]:6.1f} ms   p99 {cuts[98]:6.1f} ms   max {max(latencies):7.1f} ms   "
        f"({len(latencies):,} probes)"
    )


def probe_for(port: int, seconds: float, interval: float) -> list[float]:
    until = threading.Event()
    threading.Timer(seconds, until.set).start()
    return asyncio.run(probe(port, until, interval))


def rebalance(port: int, key: str, body: dict, out: dict) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    started = time.perf_counter()
    connection.request(
        "POST",
        "/v1/rebalance",
        body=json.dumps(body),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    response = connection.getresponse()
    out["body"] = json.loads(response.read())
    out["status"] = response.status
    out["seconds"] = time.perf_counter() - started


async def prepare(customers: int, managers: int) -> tuple[str, str]:
    url, engine = await scratch_database(customers=customers, managers=managers)
    await engine.dispose()
    engine = create_async_engine(url)
    key = await _admin_key(create_session_factory(engine))
    await engine.dispose()
    return url, key


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--managers", type=int, default=0, help="default: customers / 100")
    parser.add_argument("--dry-run", action="store_true", help="plan only, write nothing")
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between probes")
    parser.add_argument("--baseline", type=float, default=10.0, help="seconds probed alone")
    args = parser.parse_args()
    managers = args.managers or max(10, args.customers // 100)
    url, key = asyncio.run(prepare(args.customers, managers))
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "BATON_LOG_LEVEL": "WARNING",
        "BATON_RATE_LIMIT": "",
        "BATON_ENGINE_BUDGET_S": "600",
        "BATON_DB_STATEMENT_TIMEOUT_MS": "600000",
    }
    port = free_port()
    command = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "1", "--no-worker"]
    server = start(command, env, port, "/readyz")
    try:
        alone = probe_for(port, args.baseline, args.interval)
        body = {
            "dry_run": args.dry_run,
            "target_utilization": 0.9,
            "explain": "none",
            "decisions_limit": 0,
        }
        result: dict = {}
        worker = threading.Thread(target=rebalance, args=(port, key, body, result))
        done = threading.Event()
        worker.start()
        watcher = threading.Thread(target=lambda: (worker.join(), done.set()))
        watcher.start()
        during = asyncio.run(probe(port, done, args.interval))
        watcher.join()
    finally:
        stop(server)
    if result.get("status") != 200:
        sys.exit(f"rebalance failed: {result}")
    plan = result["body"]
    what = "planned (dry run)" if args.dry_run else "applied"
    print(
        f"rebalance of {args.customers:,} customers × {managers:,} managers {what} in "
        f"{result['seconds']:.1f} s: {plan['moved'] or plan['metrics']['moved']:,} moves, "
        f"peak utilization {plan['metrics']['peak_utilization']:.3f}"
    )
    print(f"GET /healthz alone         {summary(alone)}")
    print(f"GET /healthz during plan   {summary(during)}   (goal: p99 < 50 ms)")


if __name__ == "__main__":
    main()
