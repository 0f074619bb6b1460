"""Helpers that create resources through the API, the way a client would."""

from __future__ import annotations

import itertools
from typing import Any

import httpx

_seq = itertools.count(1)

STANDARD_TIERS = [
    {"code": "strategic", "name": "Strategic", "rank": 1, "weight": 8, "min_manager_level": 4},
    {"code": "key", "name": "Key", "rank": 2, "weight": 4, "min_manager_level": 3},
    {"code": "standard", "name": "Standard", "rank": 3, "weight": 2, "min_manager_level": 2},
    {"code": "long_tail", "name": "Long tail", "rank": 4, "weight": 1, "min_manager_level": 1},
]


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def create_tiers(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    return [await ok(await client.post("/v1/tiers", json=t), 201) for t in STANDARD_TIERS]


async def create_manager(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    n = next(_seq)
    body = {"name": f"Manager {n}", "email": f"m{n}@example.com", "level": 3, "capacity": 20}
    body.update(fields)
    return await ok(await client.post("/v1/managers", json=body), 201)


async def create_customer(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    n = next(_seq)
    body = {"name": f"Customer {n}", "tier": "standard"}
    body.update(fields)
    return await ok(await client.post("/v1/customers", json=body), 201)
