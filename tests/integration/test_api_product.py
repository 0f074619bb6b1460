"""The API as clients meet it: created resources say where they are."""

import re

import httpx
import pytest

from tests.integration.conftest import create_api_key
from tests.integration.factories import STANDARD_TIERS, assert_problem, ok


async def test_every_created_resource_has_a_location_that_reads_it(client):
    tier = await ok(await client.post("/v1/tiers", json=STANDARD_TIERS[0]), 201)
    response = await client.post("/v1/tiers", json=STANDARD_TIERS[1])
    assert response.status_code == 201
    assert response.headers["Location"] == "/v1/tiers/key"
    assert (await client.get(response.headers["Location"])).json()["code"] == "key"
    created = await client.post("/v1/customers", json={"name": "Located Ltd", "tier": tier["code"]})
    assert created.status_code == 201
    assert created.headers["Location"] == f"/v1/customers/{created.json()['id']}"
    assert (await client.get(created.headers["Location"])).json()["name"] == "Located Ltd"


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_docs_load_every_asset_from_baton_itself(api, page):
    client = api.anonymous()
    response = await client.get(page)
    assert response.status_code == 200
    html = response.text
    assert "://" not in html.replace("http://www.w3.org", ""), "an external host in the page"
    assets = re.findall(r'<script[^>]*\ssrc="([^"]+)"', html) + re.findall(
        r'<link[^>]*\shref="([^"]+)"', html
    )
    assert any(a.endswith(".js") for a in assets), assets
    for url in assets:
        assert url.startswith("/"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url


@pytest.mark.parametrize(
    "path",
    [
        "/v1/customers?order=name",
        "/v1/customers?industry=retail",
        "/v1/tiers?limit=5&colour=red",
        "/v1/reports/workload?teams=east",
        "/v1/handovers?stat=planned",
    ],
)
async def test_an_unknown_query_parameter_is_refused_not_ignored(client, path):
    response = await client.get(path)
    body = assert_problem(response, 422)
    unknown = path.rsplit("&", 1)[-1].rsplit("?", 1)[-1].split("=")[0]
    assert body["errors"] == [
        {"loc": ["query", unknown], "msg": "unknown parameter", "type": "extra_forbidden"}
    ]
    assert unknown in body["detail"]


async def test_declared_query_parameters_still_work(client):
    await ok(await client.get("/v1/tiers?limit=5"))
    await ok(await client.get("/v1/customers?unassigned=true&limit=2&q=x"))


async def test_customers_and_managers_are_found_by_their_crm_id(client):
    await ok(await client.post("/v1/tiers", json=STANDARD_TIERS[2]), 201)
    manager = await ok(
        await client.post(
            "/v1/managers",
            json={
                "name": "Li Na",
                "email": "li.na@example.com",
                "level": 3,
                "capacity": 10,
                "external_ref": "hs-owner/4411",
            },
        ),
        201,
    )
    customer = await ok(
        await client.post(
            "/v1/customers",
            json={"name": "Ref Ltd", "tier": "standard", "external_ref": "history"},
        ),
        201,
    )
    found = await client.get("/v1/customers/by-ref/history")
    assert found.status_code == 200 and found.json() == customer
    assert found.headers["ETag"] == f'"{customer["version"]}"'
    by_ref = await ok(await client.get("/v1/managers/by-ref/hs-owner%2F4411"))
    assert by_ref["id"] == manager["id"]
    assert_problem(await client.get("/v1/customers/by-ref/nobody"), 404)
    assert_problem(await client.get("/v1/managers/by-ref/nobody"), 404)


@pytest.mark.parametrize("sort", ["name", "-name", "tier", "-annual_value", "updated_at"])
async def test_sorted_customer_pages_follow_the_order_across_cursors(client, sort):
    for tier in STANDARD_TIERS:
        await ok(await client.post("/v1/tiers", json=tier), 201)
    values = [None, "10.00", "10.00", "250.50", "9.99", None, "0.00"]
    created = []
    for n, value in enumerate(values):
        body = {"name": f"{'CBA'[n % 3]} Sort {n % 2}", "tier": STANDARD_TIERS[n % 4]["code"]}
        if value is not None:
            body["annual_value"] = value
        created.append(await ok(await client.post("/v1/customers", json=body), 201))
    rank = {t["code"]: t["rank"] for t in STANDARD_TIERS}
    key = sort.removeprefix("-")

    def sort_key(c):
        if key == "annual_value":
            return float(c["annual_value"]) if c["annual_value"] is not None else -1.0
        return rank[c["tier"]] if key == "tier" else c[key]

    expected = sorted(created, key=lambda c: (sort_key(c), c["id"]), reverse=sort[0] == "-")
    seen, cursor = [], None
    while True:
        url = f"/v1/customers?sort={sort}&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = await ok(await client.get(url))
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [c["id"] for c in seen] == [c["id"] for c in expected]
    first = await ok(await client.get(f"/v1/customers?sort={sort}&limit=2"))
    other = "name" if key != "name" else "updated_at"
    assert_problem(
        await client.get(f"/v1/customers?sort={other}&cursor={first['next_cursor']}"), 422
    )
    assert_problem(await client.get("/v1/customers?sort=colour"), 422)


def _cors_app(api, origins: str):
    from app.main import create_app
    from app.settings import Settings

    app = create_app(Settings(environment="test", rate_limit="", cors_origins=origins))
    app.state.session_factory = api.app.state.session_factory
    app.state.db_engine = api.app.state.db_engine
    return app


async def test_cors_allows_the_configured_origins_and_exposes_the_headers(api):
    key = await create_api_key(api.factory, "admin", "browser")
    app = _cors_app(api, "https://console.example.com, https://crm.example.com")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as browser:
        preflight = await browser.options(
            "/v1/tiers",
            headers={
                "Origin": "https://console.example.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://console.example.com"
        allowed = preflight.headers["access-control-allow-headers"].lower()
        assert {"authorization", "content-type", "idempotency-key"} <= {
            h.strip() for h in allowed.split(",")
        }
        created = await browser.post(
            "/v1/tiers",
            json=STANDARD_TIERS[0],
            headers={"Origin": "https://crm.example.com", "Authorization": f"Bearer {key}"},
        )
        assert created.status_code == 201
        assert created.headers["access-control-allow-origin"] == "https://crm.example.com"
        exposed = {h.strip() for h in created.headers["access-control-expose-headers"].split(",")}
        assert {"ETag", "Location", "Retry-After", "X-Request-ID"} <= exposed
        stranger = await browser.options(
            "/v1/tiers",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        assert "access-control-allow-origin" not in stranger.headers


async def test_without_the_cors_setting_no_origin_is_allowed(api):
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=_cors_app(api, "")), base_url="http://test"
    ) as browser:
        preflight = await browser.options(
            "/v1/tiers",
            headers={
                "Origin": "https://console.example.com",
                "Access-Control-Request-Method": "GET",
            },
        )
        assert "access-control-allow-origin" not in preflight.headers
        response = await browser.get("/healthz", headers={"Origin": "https://console.example.com"})
        assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("sort", ["name", "-name", "utilization", "-utilization"])
async def test_sorted_manager_pages_follow_the_order_across_cursors(client, sort):
    await ok(await client.post("/v1/tiers", json=STANDARD_TIERS[2]), 201)  # weight 2
    loads = [(10, 2), (10, 0), (4, 1), (0, 0), (20, 4), (5, 1), (3, 0)]  # capacity, customers
    managers = []
    for n, (capacity, customers) in enumerate(loads):
        manager = await ok(
            await client.post(
                "/v1/managers",
                json={
                    "name": f"{'BAC'[n % 3]} Sorted",
                    "email": f"sorted{n}@example.com",
                    "level": 3,
                    "capacity": capacity,
                },
            ),
            201,
        )
        for _ in range(customers):
            await ok(
                await client.post(
                    "/v1/customers",
                    json={"name": "Owned", "tier": "standard", "manager_id": manager["id"]},
                ),
                201,
            )
        managers.append(await ok(await client.get(f"/v1/managers/{manager['id']}")))
    key = sort.removeprefix("-")

    def sort_key(m):
        if key == "name":
            return m["name"]
        return m["workload"] / m["capacity"] if m["capacity"] else -1.0

    expected = sorted(managers, key=lambda m: (sort_key(m), m["id"]), reverse=sort[0] == "-")
    seen, cursor = [], None
    while True:
        url = f"/v1/managers?sort={sort}&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = await ok(await client.get(url))
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [m["id"] for m in seen] == [m["id"] for m in expected]
    first = await ok(await client.get(f"/v1/managers?sort={sort}&limit=2"))
    other = "name" if key != "name" else "utilization"
    assert_problem(
        await client.get(f"/v1/managers?sort={other}&cursor={first['next_cursor']}"), 422
    )


async def test_a_replayed_creation_names_the_same_location(client):
    await ok(await client.post("/v1/tiers", json=STANDARD_TIERS[2]), 201)
    headers = {"Idempotency-Key": "create-located-customer"}
    body = {"name": "Replayed Ltd", "tier": "standard"}
    first = await client.post("/v1/customers", json=body, headers=headers)
    again = await client.post("/v1/customers", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert first.headers["Location"] == f"/v1/customers/{first.json()['id']}"
