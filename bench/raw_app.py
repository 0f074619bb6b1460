"""The ceiling for the load benchmark: a FastAPI endpoint doing one raw asyncpg fetch.

Served by uvicorn next to Baton in the same run (``bench/load.py``); not part of the product.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI

from app.db.session import asyncpg_dsn


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(
        asyncpg_dsn(os.environ["DATABASE_URL"]), min_size=8, max_size=20
    )
    yield
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/raw/customers/{customer_id}")
async def raw_customer(customer_id: uuid.UUID) -> dict[str, object]:
    async with app.state.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM customers WHERE id = $1", customer_id)
    return dict(row) if row else {}
