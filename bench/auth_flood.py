"""Bad-key flood: how much does a flood of invalid API keys slow authenticated reads?

Starts Baton (one uvicorn worker, no job worker) on a private seeded Postgres, then measures
the p50/p99 of authenticated `GET /v1/customers/{id}` from a probe process: alone, and while
flood processes send random well-formed keys as fast as they can from the same machine. It
does so with the failed-authentication limiter on (the default) and off, and prints the
ratio of the p50 under flood to the p50 alone for each (medians of interleaved rounds, so
other load on the machine weighs on both sides).

    python -m bench.auth_flood [--duration 8] [--rounds 3] [--flood-connections 32]

The probe and the flood are separate processes with a minimal keep-alive HTTP/1.1 client
(asyncio streams), so neither the client library nor the other client's CPU is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import statistics
import time
from collections import Counter

from app.auth.keys import generate_key
from bench.load import prepare, serve_baton, stop


async def _get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, key: str
) -> int:
    writer.write(
        f"GET {path} HTTP/1.1\r\nhost: bench\r\nx-api-key: {key}\r\n\r\n".encode("latin-1")
    )
    await writer.drain()
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(status_line.split()[1])


async def _connection(
    port: int, paths: list[str], key: str | None, until: float, latencies: list, statuses: Counter
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() < until:
            started = time.perf_counter()
            status = await _get(reader, writer, random.choice(paths), key or generate_key())
            latencies.append(time.perf_counter() - started)
            statuses[status] += 1
    finally:
        writer.close()


def _client(
    port: int, paths: list[str], key: str | None, connections: int, duration: float, out
) -> None:
    """One process: ``connections`` keep-alive connections for ``duration`` seconds."""
    latencies: list[float] = []
    statuses: Counter = Counter()

    async def run() -> None:
        until = time.monotonic() + duration
        await asyncio.gather(
            *(_connection(port, paths, key, until, latencies, statuses) for _ in range(connections))
        )

    asyncio.run(run())
    out.put((latencies, dict(statuses)))


def _spawn(port, paths, key, connections, duration, queue) -> multiprocessing.Process:
    process = multiprocessing.Process(
        target=_client, args=(port, paths, key, connections, duration, queue)
    )
    process.start()
    return process


def measure(port: int, paths: list[str], key: str, args, *, flood: bool) -> dict:
    """Probe latencies, optionally under a flood of bad keys started a second earlier."""
    queue: multiprocessing.Queue = multiprocessing.Queue()
    flooders = []
    if flood:
        for _ in range(args.flood_processes):
            flooders.append(
                _spawn(port, paths, None, args.flood_connections, args.duration + 2, queue)
            )
        time.sleep(1)
    probe_queue: multiprocessing.Queue = multiprocessing.Queue()
    probe = _spawn(port, paths, key, args.probe_connections, args.duration, probe_queue)
    latencies, statuses = probe_queue.get()
    probe.join()
    flood_requests: Counter = Counter()
    for process in flooders:
        _, flood_statuses = queue.get()
        flood_requests.update(flood_statuses)
        process.join()
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "requests": len(latencies),
        "statuses": statuses,
        "flood_rps": sum(flood_requests.values()) / (args.duration + 2),
        "flood_statuses": dict(flood_requests),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=8)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--probe-connections", type=int, default=4)
    parser.add_argument("--flood-connections", type=int, default=32)
    parser.add_argument("--flood-processes", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    url, ids, _, key = asyncio.run(prepare(args.customers))
    paths = [f"/v1/customers/{i}" for i in ids[:500]]
    results = {}
    for limiter in ("on", "off"):
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "BATON_LOG_LEVEL": "WARNING",
            "BATON_RATE_LIMIT": "",
            "BATON_AUTH_FAILURE_LIMIT": "30/minute" if limiter == "on" else "",
        }
        server, base = serve_baton(1, env)
        port = int(base.rsplit(":", 1)[1])
        try:
            measure(port, paths, key, args, flood=False)  # warm-up: key cache, pools
            rounds = []
            for _ in range(args.rounds):  # interleaved, so a busy machine weighs on both
                alone = measure(port, paths, key, args, flood=False)
                flooded = measure(port, paths, key, args, flood=True)
                assert set(flooded["statuses"]) == {200}, "the authenticated probe was refused"
                rounds.append((alone, flooded))
        finally:
            stop(server)
        alone_p50 = statistics.median(a["p50_ms"] for a, _ in rounds)
        flood_p50 = statistics.median(f["p50_ms"] for _, f in rounds)
        results[limiter] = (alone_p50, flood_p50)
        last = rounds[-1][1]
        print(
            f"limiter {limiter:>3}: authenticated GET p50 {alone_p50:.2f} ms alone, "
            f"{flood_p50:.2f} ms under a bad-key flood (ratio {flood_p50 / alone_p50:.2f}; "
            f"median of {args.rounds} interleaved rounds); per round "
            f"{[round(f['p50_ms'] / a['p50_ms'], 2) for a, f in rounds]}; "
            f"flood {last['flood_rps']:.0f} req/s {last['flood_statuses']}"
        )
    print(json.dumps({k: {"alone_p50_ms": a, "flood_p50_ms": f} for k, (a, f) in results.items()}))


if __name__ == "__main__":
    main()
