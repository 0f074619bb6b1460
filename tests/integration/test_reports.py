"""KPIs over a period and portfolios at a date, on a small history with hand-computed answers.

The history is written as ledger rows with past timestamps (the API cannot backdate moves);
satisfaction scores and revenue go through the API; every answer is read through the API.

Period (2026-01-01, 2026-04-01]. Tiers: strategic 8, key 4, standard 2, long_tail 1.

    c1 standard 1000  A since 2025-06-01
    c2 key      2000  A 2025-06-01 → B 2026-02-01 (handover H)
    c3 standard  500  A since 2025-09-01, churned 2026-03-01
    c4 long_tail 300  A since 2026-02-15 (auto)
    c5 standard  800  A 2025-10-01 → pool 2026-01-20 → B 2026-03-10 (manual)
    c6 key      1500  B since 2025-05-01
    c7 standard  700  C since 2025-01-01, churned 2025-12-01 (before the period)
    c8 strategic 5000 A 2025-07-01 → B 2026-02-10 (rebalance) → A 2026-03-20 (manual)

A and B are team "north" (region "east"), C team "south" (region "west").
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import text

from tests.integration.factories import (
    assert_problem,
    create_customer,
    create_manager,
    create_tiers,
    ok,
)

FROM, TO = "2026-01-01T00:00:00Z", "2026-04-01T00:00:00Z"


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _sql(api, statement: str, **params: Any) -> None:
    async with api.factory() as session:
        await session.execute(text(statement), params)
        await session.commit()


async def _row(api, customer, manager, start, end=None, reason="seed", handover=None) -> None:
    await _sql(
        api,
        "INSERT INTO assignments (customer_id, manager_id, started_at, ended_at, reason, actor, "
        "handover_id) VALUES (:c, :m, :s, :e, :r, 'tests', :h)",
        c=customer["id"],
        m=manager["id"],
        s=ts(start),
        e=ts(end) if end else None,
        r=reason,
        h=handover,
    )


async def _history(api, client) -> dict[str, Any]:
    await create_tiers(client)
    a = await create_manager(client, name="Alice", level=5, capacity=100, team="north")
    b = await create_manager(client, name="Bob", level=5, capacity=100, team="north")
    c = await create_manager(client, name="Carol", level=5, capacity=100, team="south")
    for m, region in ((a, "east"), (b, "east"), (c, "west")):
        await ok(await client.patch(f"/v1/managers/{m['id']}", json={"region": region}))
    spec = {
        "c1": ("standard", 1000, a),
        "c2": ("key", 2000, b),
        "c3": ("standard", 500, a),
        "c4": ("long_tail", 300, a),
        "c5": ("standard", 800, b),
        "c6": ("key", 1500, b),
        "c7": ("standard", 700, c),
        "c8": ("strategic", 5000, a),
    }
    cs = {
        name: await create_customer(client, name=name, tier=tier, annual_value=str(value))
        for name, (tier, value, _) in spec.items()
    }
    handover = uuid.uuid4()
    await _sql(
        api,
        "INSERT INTO handovers (id, from_manager_id, reason, strategy, state, "
        "prior_manager_status, created_by, completed_at) VALUES (:h, :a, 'departure', "
        "'balanced', 'completed', 'active', 'tests', '2026-02-01')",
        h=handover,
        a=a["id"],
    )
    await _row(api, cs["c1"], a, "2025-06-01")
    await _row(api, cs["c2"], a, "2025-06-01", "2026-02-01")
    await _row(api, cs["c2"], b, "2026-02-01", reason="handover", handover=handover)
    await _row(api, cs["c3"], a, "2025-09-01", reason="manual")
    await _row(api, cs["c4"], a, "2026-02-15", reason="auto")
    await _row(api, cs["c5"], a, "2025-10-01", "2026-01-20")
    await _row(api, cs["c5"], b, "2026-03-10", reason="manual")
    await _row(api, cs["c6"], b, "2025-05-01")
    await _row(api, cs["c7"], c, "2025-01-01")
    await _row(api, cs["c8"], a, "2025-07-01", "2026-02-10")
    await _row(api, cs["c8"], b, "2026-02-10", "2026-03-20", reason="rebalance")
    await _row(api, cs["c8"], a, "2026-03-20", reason="manual")
    for name, (_, _, owner) in spec.items():
        await _sql(
            api,
            "UPDATE customers SET manager_id = :m WHERE id = :c",
            m=owner["id"],
            c=cs[name]["id"],
        )
    for name, churned in (("c3", "2026-03-01"), ("c7", "2025-12-01")):
        await _sql(
            api,
            "UPDATE customers SET status = 'churned', churned_at = :at WHERE id = :c",
            at=ts(churned),
            c=cs[name]["id"],
        )
    # A refusal of Bob by c5 (an item of the same handover)
    await _sql(
        api,
        "INSERT INTO handover_items (handover_id, customer_id, status, refused_at, "
        "refused_manager_id) VALUES (:h, :c, 'refused', '2026-01-25', :b)",
        h=handover,
        c=cs["c5"]["id"],
        b=b["id"],
    )
    scores = [
        ("c1", "7", "2025-12-01"),
        ("c1", "9", "2026-02-01"),
        ("c2", "6", "2025-12-15"),
        ("c2", "8", "2026-01-15"),
        ("c2", "5", "2026-03-01"),
        ("c6", "8", "2026-02-20"),
        ("c8", "4", "2025-11-01"),
    ]
    for name, score, at in scores:
        await ok(
            await client.post(
                f"/v1/customers/{cs[name]['id']}/satisfaction",
                json={"score": score, "recorded_at": f"{at}T12:00:00Z"},
            ),
            201,
        )
    revenue = [
        ("c1", "300", "EUR", "2025-12-01"),  # before the period
        ("c1", "1000", "EUR", "2026-02-01"),
        ("c2", "500", "EUR", "2026-01-10"),  # Alice's
        ("c2", "700", "EUR", "2026-03-01"),  # Bob's
        ("c6", "200", "USD", "2026-02-20"),
    ]
    for n, (name, amount, currency, at) in enumerate(revenue):
        await ok(
            await client.post(
                f"/v1/customers/{cs[name]['id']}/revenue",
                json={
                    "amount": amount,
                    "currency": currency,
                    "occurred_at": f"{at}T12:00:00Z",
                    "source": "billing",
                    "external_id": f"inv-{n}",
                },
            ),
            201,
        )
    return {"a": a, "b": b, "c": c, "customers": cs, "handover": str(handover)}


async def _kpis(client, **params: Any) -> dict[str, Any]:
    return await ok(await client.get("/v1/reports/kpis", params={"from": FROM, "to": TO, **params}))


@pytest.fixture
async def history(api, client):
    return await _history(api, client)


async def test_kpis_per_manager(client, history):
    a, b, c = history["a"], history["b"], history["c"]
    body = await _kpis(client, sort="name")
    assert body["group_by"] == "manager"
    assert ts(body["period_from"]) == ts(FROM) and ts(body["period_to"]) == ts(TO)
    rows = {r["manager_id"]: r for r in body["items"]}
    assert [r["name"] for r in body["items"]] == ["Alice", "Bob", "Carol"]

    alice = rows[a["id"]]
    assert alice["book_start"] == {"customers": 5, "workload": 18, "annual_value": "9300.00"}
    assert alice["book_end"] == {"customers": 3, "workload": 11, "annual_value": "6300.00"}
    assert alice["gained"] == 2 and alice["gained_by_reason"] == {"auto": 1, "manual": 1}
    assert alice["lost"] == 3
    assert alice["lost_by_reason"] == {"handover": 1, "unassigned": 1, "rebalance": 1}
    assert alice["retention"] == {
        "start_customers": 5,
        "still_active": 4,
        "still_with_manager": 2,  # c1 stayed; c8 left and came back
        "active_rate": 0.8,
        "with_manager_rate": 0.4,
    }
    assert alice["churned"] == {"customers": 1, "annual_value": "500.00"}
    assert alice["satisfaction"] == {
        "average": 8.5,  # c1's 9 and c2's 8, both while Alice owned them
        "scores": 2,
        "start": 5.6667,  # (7 + 6 + 4) / 3: c1, c2, c8 at the start
        "end": 6.5,  # (9 + 4) / 2: c1, c8 at the end
        "change": 0.8333,
    }
    assert alice["handovers"] == {
        "handovers_in": 0,
        "customers_in": 0,
        "handovers_out": 1,
        "customers_out": 1,
    }
    assert alice["refusals_received"] == 0
    assert alice["revenue"] == {"EUR": "1500.00"}
    assert alice["received"] == {"customers": 2, "weight": 9, "jain_index": 0.9549}
    assert (alice["team"], alice["region"], alice["level"], alice["status"]) == (
        "north",
        "east",
        5,
        "active",
    )

    bob = rows[b["id"]]
    assert bob["book_start"] == {"customers": 1, "workload": 4, "annual_value": "1500.00"}
    assert bob["book_end"] == {"customers": 3, "workload": 10, "annual_value": "4300.00"}
    assert bob["gained"] == 3
    assert bob["gained_by_reason"] == {"handover": 1, "manual": 1, "rebalance": 1}
    assert bob["lost"] == 1 and bob["lost_by_reason"] == {"manual": 1}
    assert bob["retention"]["active_rate"] == 1.0
    assert bob["retention"]["with_manager_rate"] == 1.0
    assert bob["churned"] == {"customers": 0, "annual_value": "0"}
    assert bob["satisfaction"] == {
        "average": 6.5,
        "scores": 2,
        "start": None,
        "end": 6.5,
        "change": None,
    }
    assert bob["handovers"] == {
        "handovers_in": 1,
        "customers_in": 1,
        "handovers_out": 0,
        "customers_out": 0,
    }
    assert bob["refusals_received"] == 1
    assert bob["revenue"] == {"EUR": "700.00", "USD": "200.00"}
    assert bob["received"] == {"customers": 3, "weight": 14, "jain_index": 0.9549}

    carol = rows[c["id"]]  # her only customer churned before the period
    assert carol["book_start"]["customers"] == 0 and carol["book_end"]["customers"] == 0
    assert carol["churned"]["customers"] == 0
    assert carol["retention"]["active_rate"] is None
    assert carol["received"] == {"customers": 0, "weight": 0, "jain_index": None}


async def test_kpis_per_team_and_region(client, history):
    body = await _kpis(client, group_by="team")
    teams = {r["key"]: r for r in body["items"]}
    assert set(teams) == {"north", "south"}
    north = teams["north"]
    assert north["managers"] == 2 and north["manager_id"] is None and north["team"] == "north"
    assert north["book_start"] == {"customers": 6, "workload": 22, "annual_value": "10800.00"}
    assert north["book_end"] == {"customers": 6, "workload": 21, "annual_value": "10600.00"}
    assert north["gained"] == 5 and north["lost"] == 4
    assert north["gained_by_reason"] == {"auto": 1, "manual": 2, "handover": 1, "rebalance": 1}
    assert north["lost_by_reason"] == {
        "handover": 1,
        "unassigned": 1,
        "rebalance": 1,
        "manual": 1,
    }
    assert north["retention"]["active_rate"] == 0.8333
    assert north["retention"]["with_manager_rate"] == 0.5
    assert north["satisfaction"]["average"] == 7.5
    assert north["satisfaction"]["change"] == 0.8333
    assert north["received"] == {"customers": 5, "weight": 23, "jain_index": 0.9549}
    assert north["revenue"] == {"EUR": "2200.00", "USD": "200.00"}
    regions = {r["key"]: r for r in (await _kpis(client, group_by="region"))["items"]}
    assert regions["east"]["book_end"]["customers"] == 6
    assert regions["west"]["book_end"]["customers"] == 0


async def test_kpis_filter_sort_page_and_csv(client, history):
    a, b = history["a"], history["b"]
    north = await _kpis(client, team="north", sort="received_weight", order="desc")
    assert [r["manager_id"] for r in north["items"]] == [b["id"], a["id"]]
    assert [r["name"] for r in (await _kpis(client, region="west"))["items"]] == ["Carol"]
    assert (await _kpis(client, level=1))["items"] == []
    assert (await _kpis(client, status="departed"))["items"] == []
    assert len((await _kpis(client, status="active"))["items"]) == 3

    first = await _kpis(client, sort="name", limit=2)
    assert [r["name"] for r in first["items"]] == ["Alice", "Bob"]
    second = await _kpis(client, sort="name", limit=2, cursor=first["next_cursor"])
    assert [r["name"] for r in second["items"]] == ["Carol"] and second["next_cursor"] is None

    response = await client.get(
        "/v1/reports/kpis", params={"from": FROM, "to": TO, "format": "csv", "sort": "name"}
    )
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(response.text)))
    assert [line["name"] for line in lines] == ["Alice", "Bob", "Carol"]
    assert lines[0]["book_end_customers"] == "3"
    assert lines[0]["lost_by_reason"] == "handover=1;rebalance=1;unassigned=1"

    one = await ok(
        await client.get(f"/v1/managers/{a['id']}/kpis", params={"from": FROM, "to": TO})
    )
    assert one["book_end"]["customers"] == 3 and one["retention"]["with_manager_rate"] == 0.4

    assert_problem(await client.get("/v1/reports/kpis", params={"from": TO, "to": FROM}), 422)
    assert_problem(await client.get("/v1/reports/kpis", params={"sort": "nonsense"}), 422)
    assert_problem(await client.get(f"/v1/managers/{uuid.uuid4()}/kpis"), 404)


async def test_portfolio_at_a_date(client, history):
    a, b, cs = history["a"], history["b"], history["customers"]
    ids = {v["id"]: k for k, v in cs.items()}

    async def names(url: str, **params: Any) -> list[str]:
        body = await ok(await client.get(url, params=params))
        key = "customer_id" if "reports" in url else "id"
        return sorted(ids[item[key]] for item in body["items"])

    alice = f"/v1/managers/{a['id']}/customers"
    assert await names(alice, at="2026-02-12T00:00:00Z") == ["c1", "c3"]
    assert await names(alice, at="2026-03-15T00:00:00Z") == ["c1", "c3", "c4"]
    assert await names(alice, at="2026-03-15T00:00:00Z", status="active") == ["c1", "c4"]
    assert await names(alice) == ["c1", "c3", "c4", "c8"]  # now, as before
    bob = f"/v1/managers/{b['id']}/customers"
    assert await names(bob, at="2026-02-12T00:00:00Z") == ["c2", "c6", "c8"]

    team = await ok(
        await client.get(
            "/v1/reports/portfolio", params={"team": "north", "at": "2026-02-12T00:00:00Z"}
        )
    )
    owners = {ids[e["customer_id"]]: e["manager_id"] for e in team["items"]}
    assert owners == {"c1": a["id"], "c3": a["id"], "c2": b["id"], "c6": b["id"], "c8": b["id"]}
    c8 = next(e for e in team["items"] if e["customer_id"] == cs["c8"]["id"])
    assert c8["reason"] == "rebalance" and ts(c8["owned_since"]) == ts("2026-02-10T00:00:00Z")
    churned = await ok(
        await client.get(
            "/v1/reports/portfolio",
            params={"team": "north", "at": "2026-03-15T00:00:00Z", "active": "false"},
        )
    )
    assert [ids[e["customer_id"]] for e in churned["items"]] == ["c3"]
    assert_problem(await client.get("/v1/reports/portfolio"), 422)
    assert_problem(
        await client.get(f"/v1/managers/{uuid.uuid4()}/customers", params={"at": FROM}), 404
    )


async def test_workload_report_honours_its_filters(client, history):
    a, b = history["a"], history["b"]
    report = await ok(await client.get("/v1/reports/workload", params={"team": "north"}))
    assert {m["manager_id"] for m in report["managers"]} == {a["id"], b["id"]}
    assert [t["key"] for t in report["teams"]] == ["north"]
    west = await ok(await client.get("/v1/reports/workload", params={"region": "west"}))
    assert [m["name"] for m in west["managers"]] == ["Carol"]
    assert (await ok(await client.get("/v1/reports/workload", params={"level": 1})))[
        "managers"
    ] == []


async def test_reports_are_read_only_for_viewers(api, history):
    viewer = await api.client("viewer")
    await ok(await viewer.get("/v1/reports/kpis", params={"from": FROM, "to": TO}))
    integration = await api.client("integration")
    assert_problem(await integration.get("/v1/reports/kpis"), 403)


async def test_handover_outcome_against_a_matched_control_group(api, client):
    await create_tiers(client)
    leaving = await create_manager(client, level=4, capacity=100, region="east")
    successor = await create_manager(client, level=4, capacity=100)
    other = await create_manager(client, level=5, capacity=100)

    async def customer(tier: str, region: str, owner=None, **fields: Any) -> str:
        owner_id = owner["id"] if owner else None
        made = await create_customer(
            client, tier=tier, region=region, manager_id=owner_id, **fields
        )
        return made["id"]

    m1 = await customer("standard", "east", leaving)
    m2 = await customer("standard", "east", leaving, satisfaction="7")
    await customer("key", "west", leaving)
    k1 = await customer("standard", "east", other)  # matched on tier and region
    await customer("standard", "west", other)  # the east stratum has its own region
    await customer("key", "east", other)  # no key customer in the west: tier only
    k4 = await customer("standard", "east", other)  # moved during the window: out
    k5 = await customer("standard", "east", other)  # churned before the handover: out
    await customer("standard", "east")  # in the pool: out
    await customer("strategic", "east", other)  # a tier nobody moved: out
    k8 = await customer("standard", "east", other)  # churns during the window: counted
    await _sql(
        api,
        "UPDATE customers SET status = 'churned', churned_at = '2026-01-01' WHERE id = :c",
        c=k5,
    )
    for who, score in ((m1, "8"), (k1, "9")):
        await ok(
            await client.post(
                f"/v1/customers/{who}/satisfaction",
                json={"score": score, "recorded_at": "2026-01-01T00:00:00Z"},
            ),
            201,
        )

    handover = await ok(
        await client.post(
            "/v1/handovers",
            json={
                "from_manager_id": leaving["id"],
                "reason": "departure",
                "strategy": "successor",
                "successor_id": successor["id"],
            },
        ),
        201,
    )
    url = f"/v1/handovers/{handover['id']}"
    for action in ("plan", "approve", "execute"):
        await ok(await client.post(f"{url}/{action}"))

    await ok(await client.patch(f"/v1/customers/{k4}", json={"manager_id": successor["id"]}))
    for who in (m2, k8):
        await ok(await client.patch(f"/v1/customers/{who}", json={"status": "churned"}))
    for who, score in ((m1, "6"), (k1, "9.5")):
        await ok(await client.post(f"/v1/customers/{who}/satisfaction", json={"score": score}), 201)
    for entry in ({"score": "8", "note": "smooth"}, {"score": "6"}):
        await ok(await client.post(f"{url}/feedback", json=entry), 201)
    assert_problem(await client.post(f"{url}/feedback", json={}), 422)
    assert_problem(await client.post(f"/v1/handovers/{uuid.uuid4()}/feedback", json={}), 404)

    outcome = await ok(await client.get(f"{url}/outcome"))
    assert outcome["moved"] == {
        "customers": 3,
        "retained": 2,
        "churned": 1,
        "retention_rate": 0.6667,
        "satisfaction_before": 7.5,  # m1's 8 and m2's own field 7
        "satisfaction_latest": 6.0,
        "satisfaction_change": -2.0,
    }
    assert outcome["control"] == {
        "customers": 3,  # k1, k3, k8
        "retained": 2,
        "churned": 1,
        "retention_rate": 0.6667,
        "satisfaction_before": 9.0,
        "satisfaction_latest": 9.5,
        "satisfaction_change": 0.5,
    }
    assert outcome["matching"] == [
        {
            "tier": "key",
            "region": "west",
            "moved": 1,
            "matched_on": "tier",
            "control": 1,
            "control_retention_rate": 1.0,
        },
        {
            "tier": "standard",
            "region": "east",
            "moved": 2,
            "matched_on": "tier_region",
            "control": 2,
            "control_retention_rate": 0.5,
        },
    ]
    assert outcome["control_retention_rate_matched"] == 0.6667  # (2 × 0.5 + 1 × 1.0) / 3
    assert outcome["refusals"] == 0 and outcome["window_days"] == 90
    # The successor's window (they start it with the three customers) next to the same
    # length before, when the handover brought them.
    (new_owner,) = outcome["new_owners"]
    assert new_owner["manager_id"] == successor["id"] and new_owner["customers_received"] == 3
    window, previous = new_owner["window"], new_owner["previous"]
    assert window["book_start"]["customers"] == 3 and window["book_end"]["customers"] == 3
    assert window["gained_by_reason"] == {"manual": 1} and window["churned"]["customers"] == 1
    assert previous["gained_by_reason"] == {"handover": 3}
    assert previous["book_start"]["customers"] == 0
    assert [f["note"] for f in outcome["feedback"]] == ["smooth", None]
    assert outcome["feedback"][0]["actor"] == "test-admin"
    assert outcome["feedback_score"] == 7.0


async def test_revenue_events_are_idempotent_and_never_in_the_future(client):
    await create_tiers(client)
    customer = await create_customer(client)
    url = f"/v1/customers/{customer['id']}/revenue"
    body = {"amount": "99.50", "currency": "EUR", "source": "hubspot", "external_id": "deal-1"}
    first = await ok(await client.post(url, json=body), 201)
    again = await ok(await client.post(url, json=body), 200)
    assert again["id"] == first["id"] and again["amount"] == "99.50"
    assert_problem(await client.post(url, json={**body, "amount": "100"}), 409)
    future = {"amount": "1", "currency": "EUR", "occurred_at": "2099-01-01T00:00:00Z"}
    assert_problem(await client.post(url, json=future), 422)
    assert_problem(await client.post(url, json={"amount": "1", "currency": "euro"}), 422)
    assert_problem(await client.post(f"/v1/customers/{uuid.uuid4()}/revenue", json={**body}), 404)
    listed = await ok(await client.get(url))
    assert [e["external_id"] for e in listed["items"]] == ["deal-1"]


async def test_revenue_import(client):
    await create_tiers(client)
    customer = await create_customer(client, external_ref="crm-1")
    url = "/v1/imports/revenue"
    csv_body = (
        "customer_external_ref,amount,currency,occurred_at,source,external_id\n"
        "crm-1,100.00,EUR,2026-10-01T00:00:00Z,billing,inv-1\n"
        "crm-404,5.00,EUR,2026-10-01T00:00:00Z,billing,inv-2\n"
        "crm-1,7.00,EUR,2099-01-01T00:00:00Z,billing,inv-3\n"
        "crm-1,abc,EUR,2026-10-01T00:00:00Z,billing,inv-4\n"
    )
    headers = {"content-type": "text/csv"}
    rejected = assert_problem(await client.post(url, content=csv_body, headers=headers), 422)
    assert [e["line"] for e in rejected["errors"]] == [3, 4, 5]
    events = f"/v1/customers/{customer['id']}/revenue"
    assert (await ok(await client.get(events)))["items"] == []

    params = {"mode": "best_effort"}
    report = await ok(await client.post(url, content=csv_body, headers=headers, params=params))
    assert (report["rows"], report["created"], report["duplicates"], report["failed"]) == (
        4,
        1,
        0,
        3,
    )
    assert [(e["line"], e["field"]) for e in report["errors"]] == [
        (3, "customer_external_ref"),
        (4, "occurred_at"),
        (5, "amount"),
    ]
    ndjson = (
        '{"customer_external_ref": "crm-1", "amount": "100.00", "currency": "EUR", '
        '"occurred_at": "2026-10-01T00:00:00Z", "source": "billing", "external_id": "inv-1"}\n'
    )
    again = await ok(
        await client.post(url, content=ndjson, headers={"content-type": "application/x-ndjson"})
    )
    assert (again["created"], again["duplicates"], again["failed"]) == (0, 1, 0)
    assert [e["amount"] for e in (await ok(await client.get(events)))["items"]] == ["100.00"]
    assert_problem(await client.post(url, content="x", headers={"content-type": "text/plain"}), 415)
