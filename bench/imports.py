"""Benchmark: bulk import of customers through the HTTP endpoint, then export and re-import.

The CSV body is generated lazily and streamed through the ASGI app in 256 KiB chunks, so the
process's peak RSS is what the import itself needs. Every customer names an owner by
``manager_external_ref``, so the figures include writing the ledger (reason ``import``) and
the outbox. Export is timed on the service's stream directly (httpx's in-process transport
would buffer the whole response).

    python -m bench.imports            # 1M customers over 2,000 managers
    python -m bench.imports --quick    # 100k customers
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
from collections.abc import AsyncIterator

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.main import create_app
from app.settings import Settings
from bench._db import scratch_database

TIERS = ("strategic", "key", "key", "standard", "standard", "standard", "long_tail", "long_tail")
CHUNK_ROWS = 2_000


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def csv_body(customers: int, managers: int) -> AsyncIterator[bytes]:
    yield b"external_ref,name,tier,region,language,industry,annual_value,manager_external_ref\n"
    for start in range(0, customers, CHUNK_ROWS):
        yield "".join(
            f"crm-{i},Customer {i},{TIERS[i % 8]},r{i % 8},{'en' if i % 3 else 'zh'},"
            f"i{i % 6},{i % 100000}.50,m{1 + i % managers}\n"
            for i in range(start, min(customers, start + CHUNK_ROWS))
        ).encode()


async def main(customers: int, managers: int) -> None:
    _url, engine = await scratch_database(0, managers)
    async with engine.begin() as conn:  # managers known to the CRM by their external ref
        await conn.execute(text("UPDATE managers SET external_ref = split_part(email, '@', 1)"))
    app = create_app(Settings(environment="test", rate_limit="", log_level="WARNING"))
    factory = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
    app.state.session_factory = factory
    app.state.db_engine = engine
    from app.auth import service as api_keys
    from app.auth.roles import Role
    from app.db.session import session_scope

    async with session_scope(factory) as session:
        key = (await api_keys.create_key(session, name="bench", role=Role.admin, actor="bench")).key
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "text/csv"}
    print(f"peak RSS before import: {peak_rss_mib():.0f} MiB")
    async with httpx.AsyncClient(
        transport=transport, base_url="http://bench", timeout=None
    ) as http:
        started = time.perf_counter()
        r = await http.post(
            "/v1/imports/customers", content=csv_body(customers, managers), headers=headers
        )
        elapsed = time.perf_counter() - started
        assert r.status_code == 200, r.text[:2000]
        report = r.json()
        print(
            f"import {customers:,} customers (new, with owners): {elapsed:.1f} s, "
            f"{customers / elapsed:,.0f} rows/s, peak RSS {peak_rss_mib():.0f} MiB  "
            f"[created {report['created']:,}, owners set {report['owners_changed']:,}]"
        )

        from app.imports import service

        started = time.perf_counter()
        size = 0
        lines = 0
        async for chunk in service.export_rows(factory, resource="customers", fmt="csv"):
            size += len(chunk)
            lines += chunk.count(b"\n")
        elapsed = time.perf_counter() - started
        print(
            f"export {lines - 1:,} customers as CSV ({size / 2**20:.0f} MiB): {elapsed:.1f} s, "
            f"{(lines - 1) / elapsed:,.0f} rows/s, peak RSS {peak_rss_mib():.0f} MiB"
        )

        started = time.perf_counter()
        r = await http.post(
            "/v1/imports/customers", content=csv_body(customers, managers), headers=headers
        )
        elapsed = time.perf_counter() - started
        assert r.status_code == 200, r.text[:2000]
        report = r.json()
        print(
            f"re-import {customers:,} customers (all unchanged): {elapsed:.1f} s, "
            f"{customers / elapsed:,.0f} rows/s, peak RSS {peak_rss_mib():.0f} MiB  "
            f"[unchanged {report['unchanged']:,}]"
        )
    await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100k customers instead of 1M")
    parser.add_argument("--managers", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(main(100_000 if args.quick else 1_000_000, args.managers))
