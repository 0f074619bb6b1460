"""Load benchmark: Baton served as in the README, against ceilings measured in the same run.
The writes run beside a ``baton worker``, as in production: it folds the workload journal each
move appends to (``BATON_WORKER_TICK_S``), which every placement and manual move reads.

Needs `wrk` (Debian: `apt-get install wrk`). Starts a private Postgres, seeds demo data, then
for 1 and 2 uvicorn workers measures with wrk (64 connections unless told otherwise):
a bare endpoint (/healthz), a FastAPI endpoint doing one raw asyncpg fetch (bench/raw_app.py),
and Baton's GET /v1/customers/{id}, a filtered list page, a manual-assignment PATCH and
POST /v1/customers/{id}/assign. Prints req/s, p50/p99 and ratios to the ceilings.

The PATCH is measured interleaved with two raw endpoints of bench/raw_app.py: a raw write, the
minimal statements of a manual move in one transaction with no guard (the floor of a write on
the same schema; the target: PATCH ≥ 0.5× of it), and the raw GET. Every PATCH is a real
move: each request gives a random active customer of the two lower tiers to a random active
manager of level 2 or more, given room first (``make_room``) so that moves pass the guard;
``force=true`` turns any other rule a move breaks into a recorded override rather than a 409. ``--patch-only`` measures just
those three. Beside req/s each of them prints the CPU per request of its server process and of
the Postgres server (postmaster and every backend), over the same wrk run: on a 2-core machine
the two share the cores, so a PATCH's cost is the sum.

``POST /v1/customers/{id}/assign`` (``balanced``, default rules) is measured interleaved with
the raw GET (its floor) and Baton's GET of a customer, one worker: as a dry run, and for real
(every request places a different customer waiting in the pool, so each is a move; each run
has customers of its own). Besides req/s it prints the CPU per request of the server process
and of the Postgres server (user + system, over the wrk run). ``--assign-only`` measures just
those four.

    python -m bench.load [--duration 10] [--connections 64] [--customers 20000]
                         [--patch-only | --assign-only] [--no-worker]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.migrate import upgrade
from app.db.session import create_session_factory, session_scope
from app.seed import seed_demo
from bench._db import server_url

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def prepare(customers: int) -> tuple[str, list[str], list[str], str]:
    """A seeded database; returns (url, customer ids, manager ids, an admin API key)."""
    admin_url = server_url()
    name = f"load_{os.getpid()}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    await admin.dispose()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    await asyncio.to_thread(upgrade, url)
    engine = create_async_engine(url)
    factory = create_session_factory(engine)
    async with session_scope(factory) as session:
        await seed_demo(session, customers=customers, managers=max(10, customers // 100))
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        ids = [str(r[0]) for r in await raw.fetch("SELECT id FROM customers LIMIT 5000")]
        # Manual moves: active customers of the tiers a level-2 manager may own, to any
        # active manager of level 2 or more (about 9 in 10 of the demo managers).
        managers = [
            str(r[0])
            for r in await raw.fetch(
                "SELECT id FROM managers WHERE level >= 2 AND status = 'active' "
                "AND accepting_new ORDER BY id"
            )
        ]

    key = await _admin_key(factory)
    await engine.dispose()
    return url, ids, managers, key


async def _admin_key(factory) -> str:
    from app.auth import service as auth
    from app.auth.roles import Role

    async with session_scope(factory) as session:
        created = await auth.create_key(session, name="load-bench", role=Role.admin, actor="bench")
    return created.key


def start(cmd: list[str], env: dict[str, str], port: int, ready: str) -> subprocess.Popen:
    # Output goes to a file: a pipe nobody reads would block the server once it fills.
    log = tempfile.NamedTemporaryFile("w+", prefix="baton-load-", suffix=".log", delete=False)  # noqa: SIM115 (lives as long as the server)
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{ready}", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    log.seek(0)
    raise RuntimeError(f"server did not start: {log.read()[-2000:]}")


def lua(requests: list[tuple[str, str, str | None]], key: str | None) -> str:
    """A wrk script picking one of ``requests`` (method, path, body) at random per request."""
    lines = ['wrk.headers["Content-Type"] = "application/json"']
    if key:
        lines.append(f'wrk.headers["Authorization"] = "Bearer {key}"')
    lines.append("reqs = {")
    for method, path, body in requests:
        lines.append(f"  {{{json.dumps(method)}, {json.dumps(path)}, {json.dumps(body or '')}}},")
    lines.append("}")
    lines.append(
        "request = function()\n"
        "  local r = reqs[math.random(#reqs)]\n"
        "  local body = nil\n"
        "  if r[3] ~= '' then body = r[3] end\n"
        "  return wrk.format(r[1], r[2], nil, body)\n"
        "end"
    )
    return "\n".join(lines)


def lua_moves(prefix: str, ids: list[str], managers: list[str], key: str | None) -> str:
    """A wrk script giving a random customer of ``ids`` to a random manager of ``managers`` per
    request (``PATCH {prefix}{id}``): almost every request moves a customer."""
    lines = ['wrk.headers["Content-Type"] = "application/json"']
    if key:
        lines.append(f'wrk.headers["Authorization"] = "Bearer {key}"')
    lines.append(f"ids = {{{', '.join(json.dumps(i) for i in ids)}}}")
    lines.append(f"managers = {{{', '.join(json.dumps(m) for m in managers)}}}")
    lines.append(
        # each thread its own sequence (a table's address differs per thread)
        'math.randomseed(tonumber(string.match(tostring({}), "0x(%x+)") or "1", 16) % 2147483647)\n'
        "request = function()\n"
        "  local path = " + json.dumps(prefix) + " .. ids[math.random(#ids)]\n"
        "  local body = '{\"manager_id\": \"' .. managers[math.random(#managers)] .. '\"}'\n"
        '  return wrk.format("PATCH", path, nil, body)\n'
        "end"
    )
    return "\n".join(lines)


def lua_sequence(requests: list[tuple[str, str, str | None]], key: str | None) -> str:
    """A wrk script sending ``requests`` (method, path, body) in order, each once while they
    last: wrk's two threads take every other one (then start again)."""
    lines = [lua(requests, key).split("request = function()")[0]]
    lines.append(
        "n = 0\n"
        "step = 1\n"
        "setup = function(thread)\n"
        "  thread:set('n', n)\n"
        "  n = n + 1\n"
        "end\n"
        "init = function(args)\n"
        "  step = 2\n"
        "end\n"
        "request = function()\n"
        "  n = n + step\n"
        "  local r = reqs[(n % #reqs) + 1]\n"
        "  local body = nil\n"
        "  if r[3] ~= '' then body = r[3] end\n"
        "  return wrk.format(r[1], r[2], nil, body)\n"
        "end"
    )
    return "\n".join(lines)


def wrk(url: str, script: str, *, connections: int, duration: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    threads = min(2, connections)
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            # a request slower than wrk's default 2 s would be dropped from the count (a
            # "timeout" socket error), flattering the slower scenario on a loaded machine
            "--timeout",
            "30s",
            "-s",
            f.name,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(f.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return {
        "rps": rps,
        "p50": pct("50"),
        "p99": pct("99"),
        "errors": int(errors.group(1)) if errors else 0,
        "requests": requests,
    }


async def asyncpg_loop(url: str, *, concurrency: int, duration: float, ids: list[str]) -> float:
    """Ceiling without HTTP: single-row fetches per second from ``concurrency`` coroutines on
    one asyncpg pool in this process."""
    import asyncpg

    from app.db.session import asyncpg_dsn

    pool = await asyncpg.create_pool(asyncpg_dsn(url), min_size=20, max_size=20)
    done = 0
    deadline = time.monotonic() + duration

    async def run(offset: int) -> None:
        nonlocal done
        n = offset
        while time.monotonic() < deadline:
            async with pool.acquire() as conn:
                await conn.fetchrow("SELECT * FROM customers WHERE id = $1::uuid", ids[n % 2000])
            n += 1
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(run(i) for i in range(concurrency)))
    elapsed = time.monotonic() - started
    await pool.close()
    return done / elapsed


def median_run(pairs: list[tuple[str, str]], *, rounds: int, **kwargs: int) -> list[dict]:
    """Each (url, script) measured ``rounds`` times, interleaved so that a noisy moment of the
    machine hits every scenario alike; the run with the median req/s of each is kept."""
    runs: list[list[dict[str, float]]] = [[] for _ in pairs]
    for _ in range(rounds):
        for i, (url, script) in enumerate(pairs):
            runs[i].append(wrk(url, script, **kwargs))
    return [sorted(r, key=lambda m: m["rps"])[len(r) // 2] for r in runs]


def serve_baton(workers: int, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """Baton started as in the README (no in-process job worker); returns (process, base URL)."""
    port = free_port()
    command = ["-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers), "--no-worker"]
    return start([sys.executable, *command], env, port, "/readyz"), f"http://127.0.0.1:{port}"


def run_worker(env: dict[str, str], args: argparse.Namespace) -> subprocess.Popen | None:
    """``baton worker`` as in the README, beside the servers of the write scenarios (none with
    ``--no-worker``: the journal then grows for the whole run, as before the worker's ticks)."""
    if args.no_worker:
        return None
    log = tempfile.NamedTemporaryFile("w+", prefix="baton-worker-", suffix=".log", delete=False)  # noqa: SIM115 (lives as long as the worker)
    command = [sys.executable, "-m", "app.cli", "worker"]
    worker = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    asyncio.run(_until_folded(env["DATABASE_URL"]))
    return worker


async def _until_folded(url: str) -> None:
    """Until the worker's first sweep folded the journal the seed left (one row per pair): its
    start-up work is over before the first run."""
    import asyncpg

    from app.db.session import asyncpg_dsn

    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        deadline = time.monotonic() + 120
        while await conn.fetchval(
            "SELECT count(*) > count(DISTINCT (manager_id, tier_code)) FROM manager_loads"
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the worker did not fold the workload journal")
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


def serve_raw(workers: int, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """The raw asyncpg endpoint (bench/raw_app.py) under uvicorn; returns (process, base URL)."""
    port = free_port()
    command = ["-m", "uvicorn", "bench.raw_app:app", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers), "--log-level", "warning"]
    return start([sys.executable, *command], env, port, "/docs"), f"http://127.0.0.1:{port}"


def stop(*processes: subprocess.Popen) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(20)


async def make_room(url: str, managers: list[str]) -> list[str]:
    """Room for every move the PATCH scenario makes, and the customers it moves (active, of
    the tiers every one of ``managers`` may own). Random moves pile customers onto some
    managers, whose capacity would otherwise fill and turn requests into forced overrides (a
    rarer path, which records a violation). The guard still checks every rule of every move."""
    import asyncpg

    from app.db.session import asyncpg_dsn

    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute(
            "UPDATE managers SET capacity = 1000000 WHERE id = ANY($1::uuid[])", managers
        )
        rows = await conn.fetch(
            "SELECT id FROM customers WHERE status = 'active' "
            "AND tier_code IN ('standard', 'long_tail') ORDER BY id DESC LIMIT 3000"
        )
    finally:
        await conn.close()
    return [str(r[0]) for r in rows]


def interleaved(
    scenarios: dict[str, tuple[str, str | list[str], subprocess.Popen]],
    postgres: int,
    args: argparse.Namespace,
) -> dict[str, list[dict[str, float]]]:
    """Each (url, script, server) scenario run ``args.rounds`` times in turns, each run with
    the CPU per request of its server process and of the Postgres server. A scenario given a
    list of scripts runs the n-th in its n-th run (requests that must not repeat across runs)."""
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in scenarios}
    for round_ in range(args.rounds):
        for name, (target, scripts, server) in scenarios.items():
            script = scripts if isinstance(scripts, str) else scripts[round_]
            before, db_before = cpu_seconds(server), process_cpu(postgres)
            m = wrk(target, script, connections=args.connections, duration=args.duration)
            done = max(m["requests"], 1)
            m["cpu_ms"] = (cpu_seconds(server) - before) * 1000 / done
            m["db_cpu_ms"] = cpu_since(postgres, db_before) * 1000 / done
            runs[name].append(m)
    return runs


def measure_writes(
    env: dict[str, str], raw_get: str, raw_patches: str, patches: str, args: argparse.Namespace
) -> dict[str, dict[str, float]]:
    """Baton's PATCH (a real move per request) interleaved with the raw GET and the raw write,
    one worker each; the median run of each, with the CPU per request of the server process
    and of the Postgres server (postmaster and every backend, whoever they serve: on a 2-core
    machine both sides share the cores)."""
    c = args.connections
    postgres = postmaster(env["DATABASE_URL"])
    baton, base = serve_baton(1, env)
    worker = run_worker(env, args)
    try:
        raw, raw_base = serve_raw(1, env)
        try:
            for target, script in ((raw_base, raw_get), (raw_base, raw_patches), (base, patches)):
                wrk(target, script, connections=c, duration=2)  # connect, warm up
            scenarios = {
                "raw asyncpg GET": (raw_base, raw_get, raw),
                "raw asyncpg move": (raw_base, raw_patches, raw),
                "PATCH manual assignment": (base, patches, baton),
            }
            runs = interleaved(scenarios, postgres, args)
        finally:
            stop(raw)
    finally:
        stop(baton, *([worker] if worker else []))
    return {k: sorted(r, key=lambda m: m["rps"])[len(r) // 2] for k, r in runs.items()}


def print_writes(r: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    print(
        f"\nmanual assignment, 1 worker, {args.connections} connections, {args.duration}s each "
        f"(median of {args.rounds} interleaved runs; CPU per request over that run)"
    )
    print(
        f"{'scenario':32} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} "
        f"{'server CPU':>10} {'Postgres CPU':>12}"
    )
    for name, m in r.items():
        print(
            f"{name:32} {m['rps']:9.0f} {m['p50']:8.2f} {m['p99']:8.2f} {m['errors']:8d} "
            f"{m['cpu_ms']:8.2f}ms {m['db_cpu_ms']:10.2f}ms"
        )
    rps = r["PATCH manual assignment"]["rps"]
    print(
        f"PATCH / raw asyncpg move: {rps / r['raw asyncpg move']['rps']:.2f}× (target ≥ 0.5×); "
        f"/ raw asyncpg GET: {rps / r['raw asyncpg GET']['rps']:.2f}×"
    )


def postmaster(url: str) -> int:
    """The process id of the Postgres server behind ``url`` (a backend's parent)."""
    import asyncpg
    import psutil

    from app.db.session import asyncpg_dsn

    async def parent() -> int:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:  # asked while the backend lives
            return psutil.Process(await conn.fetchval("SELECT pg_backend_pid()")).ppid()
        finally:
            await conn.close()

    return asyncio.run(parent())


def process_cpu(root: int) -> dict[int, float]:
    """User + system CPU so far of ``root`` and each of its children, by process id."""
    import psutil

    found: dict[int, float] = {}
    parent = psutil.Process(root)
    for p in (parent, *parent.children(recursive=True)):
        try:
            times = p.cpu_times()
        except psutil.Error:
            continue  # exited meanwhile
        found[p.pid] = times.user + times.system
    return found


def cpu_since(root: int, before: dict[int, float]) -> float:
    """CPU seconds ``root``'s processes spent since ``before`` (``process_cpu``); a process
    started since counts whole, one that ended meanwhile is lost (backends are pooled)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in process_cpu(root).items())


def cpu_seconds(process: subprocess.Popen) -> float:
    """User + system CPU of a server process and its children so far."""
    import psutil

    root = psutil.Process(process.pid)
    total = 0.0
    for p in (root, *root.children(recursive=True)):
        times = p.cpu_times()
        total += times.user + times.system
    return total


async def pool_customers(url: str, count: int) -> list[str]:
    """``count`` new customers waiting in the pool (the two lower tiers), and room for them:
    capacities are raised so that every placement finds an owner (a customer left in the pool
    takes the whole engine's path, the rarer one)."""
    import asyncpg

    from app.db.session import asyncpg_dsn

    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("UPDATE managers SET capacity = capacity * 4")
        rows = await conn.fetch(
            """INSERT INTO customers (name, tier_code, region, language, industry)
               SELECT 'Waiting ' || g, CASE WHEN g % 2 = 0 THEN 'standard' ELSE 'long_tail' END,
                      (ARRAY['north', 'south', 'east', 'west'])[1 + g % 4],
                      (ARRAY['en', 'zh', 'de'])[1 + g % 3], NULL
                 FROM generate_series(1, $1::int) AS g
               RETURNING id""",
            count,
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return [str(r[0]) for r in rows]


def measure_assigns(
    env: dict[str, str], raw_get: str, get: str, waiting: list[str], key: str, args
) -> dict[str, dict[str, float]]:
    """``POST /customers/{id}/assign`` as a dry run and for real, interleaved with the raw GET
    (the floor) and Baton's GET, one worker each; the median run of each, with the CPU per
    request of Baton's process and of the Postgres server."""
    c = args.connections
    half = len(waiting) // 2
    dry = lua(
        [
            ("POST", f"/v1/customers/{i}/assign", json.dumps({"dry_run": True}))
            for i in waiting[half:]
        ],
        key,
    )
    # Every real run places customers of its own: a customer placed by an earlier run would be
    # asked again, already owned, and answered without a move.
    share = half // args.rounds
    real = [
        lua_sequence(
            [
                ("POST", f"/v1/customers/{i}/assign", "{}")
                for i in waiting[n * share : (n + 1) * share]
            ],
            key,
        )
        for n in range(args.rounds)
    ]
    postgres = postmaster(env["DATABASE_URL"])
    baton, base = serve_baton(1, env)
    worker = run_worker(env, args)
    try:
        raw, raw_base = serve_raw(1, env)
        try:
            for target, script in ((raw_base, raw_get), (base, get), (base, dry)):
                wrk(target, script, connections=c, duration=2)  # connect, warm up
            scenarios = {
                "raw asyncpg GET": (raw_base, raw_get, raw),
                "GET customer": (base, get, baton),
                "POST assign (dry run)": (base, dry, baton),
                "POST assign (real move)": (base, real, baton),
            }
            runs = interleaved(scenarios, postgres, args)
        finally:
            stop(raw)
    finally:
        stop(baton, *([worker] if worker else []))
    repeated = [m["requests"] for m in runs["POST assign (real move)"] if m["requests"] > share]
    if repeated:
        # wrk started the list again: later requests asked for customers already placed
        print(f"warning: real runs of {repeated} requests for {share} customers each repeated some")
    return {k: sorted(r, key=lambda m: m["rps"])[len(r) // 2] for k, r in runs.items()}


def print_assigns(r: dict[str, dict[str, float]], args) -> None:
    print(
        f"\nsingle-customer placement, 1 worker, {args.connections} connections, "
        f"{args.duration}s each (median of {args.rounds} interleaved runs)"
    )
    print(
        f"{'scenario':32} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} "
        f"{'server CPU':>10} {'Postgres CPU':>12}"
    )
    for name, m in r.items():
        print(
            f"{name:32} {m['rps']:9.0f} {m['p50']:8.2f} {m['p99']:8.2f} {m['errors']:8d} "
            f"{m['cpu_ms']:8.2f}ms {m['db_cpu_ms']:10.2f}ms"
        )
    floor = r["raw asyncpg GET"]["rps"]
    for name in ("POST assign (dry run)", "POST assign (real move)"):
        rps = r[name]["rps"]
        print(
            f"{name}: {rps:.0f} req/s (target ≥ 400), {rps / floor:.2f}× the raw asyncpg GET, "
            f"{rps / r['GET customer']['rps']:.2f}× Baton's GET; "
            f"{r[name]['cpu_ms']:.2f} ms of server CPU per request"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved runs of GET vs its ceilings"
    )
    parser.add_argument(
        "--patch-only",
        action="store_true",
        help="only the manual-assignment PATCH against the raw GET and the raw write",
    )
    parser.add_argument(
        "--assign-only",
        action="store_true",
        help="only POST assign (dry run and real) against the raw GET and Baton's GET",
    )
    parser.add_argument(
        "--no-worker",
        action="store_true",
        help="no baton worker beside the write scenarios (nothing folds the workload journal)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    url, ids, managers, key = asyncio.run(prepare(args.customers))
    # The limiter runs on every request, as in production, with a limit the load cannot reach.
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "BATON_LOG_LEVEL": "WARNING",
        "BATON_RATE_LIMIT": "100000000/minute",
    }
    c, d = args.connections, args.duration
    bare = lua([("GET", "/healthz", None)], None)
    get = lua([("GET", f"/v1/customers/{i}", None) for i in ids[:2000]], key)
    raw_get = lua([("GET", f"/raw/customers/{i}", None) for i in ids[:2000]], None)
    if args.assign_only:
        waiting = asyncio.run(pool_customers(url, 40_000))
        print_assigns(measure_assigns(env, raw_get, get, waiting, key, args), args)
        return
    movers = asyncio.run(make_room(url, managers))
    patches = lua_moves("/v1/customers/", [f"{i}?force=true" for i in movers], managers, key)
    raw_patches = lua_moves("/raw/customers/", movers, managers, None)
    lists = lua([("GET", "/v1/customers?tier=key&region=east&limit=50", None)], key)
    if args.patch_only:
        print_writes(measure_writes(env, raw_get, raw_patches, patches, args), args)
        return
    loop_qps = asyncio.run(asyncpg_loop(url, concurrency=c, duration=d, ids=ids))
    print(f"single-row asyncpg query loop, {c} coroutines: {loop_qps:,.0f} q/s")
    results: dict[int, dict[str, dict[str, float]]] = {}
    for workers in (1, 2):
        baton, base = serve_baton(workers, env)
        try:
            raw, raw_base = serve_raw(workers, env)
            try:
                for target, script in ((base, get), (raw_base, raw_get)):  # connect, warm up
                    wrk(target, script, connections=c, duration=2)
                healthz, ceiling, our_get = median_run(
                    [(base, bare), (raw_base, raw_get), (base, get)],
                    rounds=args.rounds,
                    connections=c,
                    duration=d,
                )
            finally:
                stop(raw)  # its connections would count against Postgres' max_connections
            r = results[workers] = {
                "bare /healthz": healthz,
                "raw asyncpg endpoint": ceiling,
                "GET customer": our_get,
                "GET customer, 1 connection": wrk(base, get, connections=1, duration=d),
                "list page (filtered)": wrk(base, lists, connections=c, duration=d),
                "PATCH manual assignment": wrk(base, patches, connections=c, duration=d),
            }
        finally:
            stop(baton)
        print(
            f"\n{workers} worker(s), {c} connections, {d}s each "
            f"(bare, raw and GET: median of {args.rounds} interleaved runs)"
        )
        print(f"{'scenario':32} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
        for name, m in r.items():
            print(f"{name:32} {m['rps']:9.0f} {m['p50']:8.2f} {m['p99']:8.2f} {m['errors']:8d}")
        rps = r["GET customer"]["rps"]
        print(
            f"GET customer / bare endpoint: {rps / r['bare /healthz']['rps']:.2f}×; "
            f"/ raw asyncpg endpoint: {rps / r['raw asyncpg endpoint']['rps']:.2f}× "
            f"(target ≥ 0.6×); / asyncpg query loop: {rps / loop_qps:.2f}×"
        )
    # Scaling: both servers up at once, their GET runs interleaved, so the ratio does not
    # depend on how busy the machine was during one part of the run.
    (one_worker, one_base), (two_workers, two_base) = serve_baton(1, env), serve_baton(2, env)
    try:
        for target in (one_base, two_base):
            wrk(target, get, connections=c, duration=2)
        single, double = median_run(
            [(one_base, get), (two_base, get)], rounds=args.rounds, connections=c, duration=d
        )
    finally:
        stop(one_worker, two_workers)
    scale = double["rps"] / single["rps"]
    print(
        f"\nGET customer, interleaved: 1 worker {single['rps']:.0f} req/s, "
        f"2 workers {double['rps']:.0f} req/s"
    )
    writes = measure_writes(env, raw_get, raw_patches, patches, args)
    print_writes(writes, args)
    waiting = asyncio.run(pool_customers(url, 40_000))
    print_assigns(measure_assigns(env, raw_get, get, waiting, key, args), args)
    one = results[1]
    print("\ntargets")
    print(
        f"  GET / raw asyncpg endpoint, 1 worker: "
        f"{one['GET customer']['rps'] / one['raw asyncpg endpoint']['rps']:.2f}× (≥ 0.6×)"
    )
    print(f"  unloaded p99: {one['GET customer, 1 connection']['p99']:.2f} ms (≤ 2 ms)")
    print(f"  p99 at {c} connections: {one['GET customer']['p99']:.1f} ms (≤ 60 ms)")
    print(f"  2 workers / 1 worker (GET customer, interleaved): {scale:.2f}× (≥ 1.6×)")


if __name__ == "__main__":
    main()
