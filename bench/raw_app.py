"""The ceilings for the load benchmark: FastAPI endpoints on raw asyncpg.

- ``GET /raw/customers/{id}``: one asyncpg fetch (the ceiling of Baton's reads).
- ``PATCH /raw/customers/{id}``: the minimal statements of a manual move in one transaction
  (lock the customer, set its owner, close its open ledger row, open one for the new owner),
  with no guard, no audit, no events: the floor of Baton's ``PATCH`` on the same schema (its
  workload triggers included), and its target (Baton's PATCH ≥ 0.5× of it).

Served by uvicorn next to Baton in the same run (``bench/load.py``); not part of the product.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

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


class Move(BaseModel):
    manager_id: uuid.UUID


# Update the owner, close the open ledger row, open the new one: one statement. The insert
# reads ``closed`` so the open row is closed before its successor is inserted (the ledger's
# one-open-row index).
_MOVE = """
    WITH moved AS (
        UPDATE customers SET manager_id = $2, version = version + 1, updated_at = now(),
               owner_since = now()
         WHERE id = $1 AND manager_id IS DISTINCT FROM $2
        RETURNING *
    ), closed AS (
        UPDATE assignments SET ended_at = now()
         WHERE customer_id = $1 AND ended_at IS NULL AND EXISTS (SELECT FROM moved)
        RETURNING 1
    ), opened AS (
        INSERT INTO assignments (customer_id, manager_id, started_at, reason, actor)
        SELECT id, manager_id, now(), 'manual', 'bench' FROM moved
         WHERE (SELECT count(*) FROM closed) >= 0
    )
    SELECT * FROM moved
"""


@app.patch("/raw/customers/{customer_id}")
async def raw_move(customer_id: uuid.UUID, body: Move) -> dict[str, object]:
    async with app.state.pool.acquire() as conn, conn.transaction():
        locked = await conn.fetchrow(
            "SELECT * FROM customers WHERE id = $1 FOR UPDATE", customer_id
        )
        if locked is None:
            raise HTTPException(404)
        row = await conn.fetchrow(_MOVE, customer_id, body.manager_id)
    return dict(row or locked)
