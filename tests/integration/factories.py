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


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with ``status``; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert isinstance(body["type"], str) and body["type"]
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    if status == 422:
        assert isinstance(body["errors"], list) and body["errors"], body
    return body


async def collect_pages(
    client: httpx.AsyncClient, url: str, *, limit: int, **params: Any
) -> list[list[dict[str, Any]]]:
    """Every page of a list, following next_cursor to the end."""
    pages: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        body = await ok(await client.get(url, params=query))
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 1000, "pagination does not end"
