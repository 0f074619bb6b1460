"""Benchmark: bulk import and export of customers, each against a COPY floor in the same run.

Each round imports ``n`` new customers, each naming an owner by ``manager_external_ref``,
through the HTTP endpoint (the CSV body generated lazily and streamed in chunks, so peak RSS
is what the import needs), so the figure includes validation, staging, the upsert, the
placement guard, the ledger (reason ``import``) and the compliance check. Its floor, in the
same round and on the same table: the same rows, already validated and with their owner
resolved, written by binary ``COPY`` into ``customers`` and the ledger (indexes and triggers
included) and rolled back. The export streams the whole table as CSV through the service;
its floor is ``COPY (the same columns) TO STDOUT (FORMAT csv)`` with no formatting, escaping
or order. Floors and subjects alternate; ratios are floor time / subject time (1.0: as fast
as COPY), medians over the rounds.

    python -m bench.imports                 # 3 rounds of 100k customers over 2,000 managers
    python -m bench.imports --rows 20000 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from app.main import create_app
from app.settings import Settings
from bench._db import scratch_database

TIERS = ("strategic", "key", "key", "standard", "standard", "standard", "long_tail", "long_tail")
CHUNK_ROWS = 2_000
CUSTOMER_COLUMNS = [
    "id",
    "external_ref",
    "name",
    "tier_code",
    "region",
    "language",
    "industry",
    "annual_value",
    "manager_id",
    "owner_since",
]
LEDGER_COLUMNS = ["customer_id", "manager_id", "started_at", "reason", "actor"]
EXPORT_FLOOR = """
    SELECT c.id, c.external_ref, c.name, c.tier_code, c.status, c.region, c.language,
           c.industry, c.annual_value, c.satisfaction, c.manager_id, m.external_ref,
           c.pinned, c.version, c.created_at, c.updated_at
      FROM customers AS c LEFT JOIN managers AS m ON m.id = c.manager_id
"""


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _row(prefix: str, i: int, managers: int) -> tuple[str, ...]:
    return (
        f"{prefix}-{i}",
        f"Customer {i}",
        TIERS[i % 8],
        f"r{i % 8}",
        "en" if i % 3 else "zh",
        f"i{i % 6}",
        f"{i % 100000}.50",
        f"m{1 + i % managers}",
    )


async def csv_body(prefix: str, customers: int, managers: int) -> AsyncIterator[bytes]:
    yield b"external_ref,name,tier,region,language,industry,annual_value,manager_external_ref\n"
    for start in range(0, customers, CHUNK_ROWS):
        yield "".join(
            ",".join(_row(prefix, i, managers)) + "\n"
            for i in range(start, min(customers, start + CHUNK_ROWS))
        ).encode()


async def import_floor(engine: AsyncEngine, prefix: str, customers: int, managers: int) -> float:
    """Seconds to COPY the validated rows into customers and the ledger (rolled back)."""
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        owners = dict(await raw.fetch("SELECT external_ref, id FROM managers"))
        at = datetime.now(UTC)
        rows = []
        ledger = []
        for i in range(customers):
            ref, name, tier, region, language, industry, value, owner = _row(prefix, i, managers)
            cid, mid = uuid.uuid4(), owners[owner]
            rows.append((cid, ref, name, tier, region, language, industry, Decimal(value), mid, at))
            ledger.append((cid, mid, at, "import", "bench"))
        transaction = raw.transaction()
        await transaction.start()
        started = time.perf_counter()
        await raw.copy_records_to_table("customers", records=rows, columns=CUSTOMER_COLUMNS)
        await raw.copy_records_to_table("assignments", records=ledger, columns=LEDGER_COLUMNS)
        elapsed = time.perf_counter() - started
        await transaction.rollback()
    return elapsed


async def export_floor(engine: AsyncEngine) -> tuple[float, int]:
    size = 0

    async def sink(data: bytes) -> None:
        nonlocal size
        size += len(data)

    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        started = time.perf_counter()
        await raw.copy_from_query(EXPORT_FLOOR, output=sink, format="csv")
        return time.perf_counter() - started, size


async def main(customers: int, managers: int, rounds: int) -> None:
    _url, engine = await scratch_database(0, managers)
    async with engine.begin() as conn:  # managers known to the CRM by their external ref
        await conn.execute(
            text(
                "UPDATE managers SET external_ref = split_part(email, '@', 1), "
                "level = 5, capacity = 1000000"
            )
        )
    app = create_app(Settings(environment="test", rate_limit="", log_level="WARNING"))
    factory = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
    app.state.session_factory = factory
    app.state.db_engine = engine
    from app.auth import service as api_keys
    from app.auth.roles import Role
    from app.db.session import session_scope
    from app.imports import service

    async with session_scope(factory) as session:
        key = (await api_keys.create_key(session, name="bench", role=Role.admin, actor="bench")).key
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "text/csv"}
    print(f"peak RSS before import: {peak_rss_mib():.0f} MiB")
    imports: list[float] = []
    exports: dict[str, list[float]] = {}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://bench", timeout=None
    ) as http:
        for n in range(1, rounds + 1):
            prefix = f"crm{n}"
            floor = await import_floor(engine, prefix, customers, managers)
            started = time.perf_counter()
            r = await http.post(
                "/v1/imports/customers",
                content=csv_body(prefix, customers, managers),
                headers=headers,
            )
            elapsed = time.perf_counter() - started
            assert r.status_code == 200, r.text[:2000]
            report = r.json()
            assert report["created"] == customers, report
            imports.append(floor / elapsed)
            print(
                f"round {n}: import {customers:,} new customers with owners {elapsed:.2f} s "
                f"({customers / elapsed:,.0f} rows/s, owners set {report['owners_changed']:,}); "
                f"COPY floor {floor:.2f} s ({customers / floor:,.0f} rows/s); "
                f"ratio {floor / elapsed:.2f}×; peak RSS {peak_rss_mib():.0f} MiB"
            )
            for fmt in ("csv", "ndjson"):
                floor, floor_bytes = await export_floor(engine)
                started = time.perf_counter()
                size = lines = 0
                async for chunk in service.export_rows(factory, resource="customers", fmt=fmt):
                    size += len(chunk)
                    lines += chunk.count(b"\n")
                elapsed = time.perf_counter() - started
                exports.setdefault(fmt, []).append(floor / elapsed)
                rows = lines - (fmt == "csv")
                print(
                    f"round {n}: export {rows:,} customers as {fmt} ({size / 2**20:.0f} MiB) "
                    f"{elapsed:.2f} s ({rows / elapsed:,.0f} rows/s); COPY TO STDOUT floor "
                    f"{floor:.2f} s ({floor_bytes / 2**20:.0f} MiB); ratio {floor / elapsed:.2f}×; "
                    f"peak RSS {peak_rss_mib():.0f} MiB"
                )
    print(
        f"median over {rounds} rounds: import {statistics.median(imports):.2f}× COPY (goal ≥ 0.25), "
        f"CSV export {statistics.median(exports['csv']):.2f}× COPY TO STDOUT (goal ≥ 0.5), "
        f"NDJSON export {statistics.median(exports['ndjson']):.2f}×"
    )
    await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000, help="customers per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--managers", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.managers, args.rounds))
