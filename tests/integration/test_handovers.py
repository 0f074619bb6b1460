"""Handovers through the API: life cycle per strategy, scope, overrides, interim owner,
briefings, checklist, refusal, transfer limit, cover, rollback, cancel, illegal transitions."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest

from app.settings import get_settings
from tests.integration.factories import (
    assert_problem,
    collect_pages,
    create_customer,
    create_manager,
    create_tiers,
    ok,
)

BRIEFING = {
    "key_contacts": [{"name": "Wang Fang", "role": "CFO"}],
    "open_projects": [{"name": "ERP rollout", "progress": 60}],
    "contract_status": "renewal due in March",
    "outstanding_amount": "12000.00",
    "notes": "Prefers WeChat.",
}


async def portfolio(client: httpx.AsyncClient, *, customers: int = 4, **manager: Any) -> dict:
    """Tiers, a leaving manager with ``customers`` standard customers, and two colleagues."""
    await create_tiers(client)
    leaving = await create_manager(client, level=4, capacity=100, **manager)
    a = await create_manager(client, level=4, capacity=40)
    b = await create_manager(client, level=4, capacity=40)
    owned = [
        await create_customer(client, tier="standard", manager_id=leaving["id"])
        for _ in range(customers)
    ]
    return {"leaving": leaving, "a": a, "b": b, "customers": owned}


async def create(client: httpx.AsyncClient, manager_id: str, **fields: Any) -> dict:
    body = {"from_manager_id": manager_id, "reason": "departure", **fields}
    return await ok(await client.post("/v1/handovers", json=body), 201)


async def act(client: httpx.AsyncClient, handover_id: str, action: str, **body: Any) -> dict:
    return await ok(await client.post(f"/v1/handovers/{handover_id}/{action}", json=body or None))


async def items(client: httpx.AsyncClient, handover_id: str) -> dict[str, dict]:
    pages = await collect_pages(client, f"/v1/handovers/{handover_id}/items", limit=50)
    return {i["customer_id"]: i for i in itertools.chain.from_iterable(pages)}


async def owner(client: httpx.AsyncClient, customer_id: str) -> str | None:
    return (await ok(await client.get(f"/v1/customers/{customer_id}")))["manager_id"]


async def history(client: httpx.AsyncClient, customer_id: str) -> list[dict]:
    return (await ok(await client.get(f"/v1/customers/{customer_id}/history")))["items"]


async def run_through(client: httpx.AsyncClient, handover_id: str) -> dict:
    await act(client, handover_id, "plan")
    await act(client, handover_id, "approve")
    return await act(client, handover_id, "execute")


@pytest.fixture
def settings_env(monkeypatch):
    """Change a setting for one test (services read the cached settings)."""

    def set_(name: str, value: Any) -> None:
        monkeypatch.setenv(f"BATON_{name.upper()}", str(value))
        get_settings.cache_clear()

    yield set_
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.mark.parametrize("strategy", ["balanced", "optimal", "round_robin", "successor"])
async def test_life_cycle_moves_every_customer_through_the_ledger(client, strategy):
    p = await portfolio(client)
    extra = {"successor_id": p["a"]["id"]} if strategy == "successor" else {}
    h = await create(client, p["leaving"]["id"], strategy=strategy, **extra)
    assert h["state"] == "draft" and h["counts"]["total"] == 4
    assert h["allowed_actions"] == ["plan", "cancel"]
    manager = await ok(await client.get(f"/v1/managers/{p['leaving']['id']}"))
    assert manager["status"] == "departing"

    planned = await act(client, h["id"], "plan")
    assert planned["state"] == "planned" and planned["counts"]["proposed"] == 4
    proposals = await items(client, h["id"])
    colleagues = {p["a"]["id"], p["b"]["id"]}
    for item in proposals.values():
        assert item["proposed_manager_id"] in colleagues
        assert item["status"] == "proposed" and item["explanation"] is not None
    if strategy == "successor":
        assert {i["proposed_manager_id"] for i in proposals.values()} == {p["a"]["id"]}

    await act(client, h["id"], "approve")
    done = await act(client, h["id"], "execute")
    assert done["state"] == "completed" and done["counts"]["moved"] == 4
    assert [e["to_state"] for e in done["audit"]] == [
        "draft",
        "planned",
        "approved",
        "executing",
        "completed",
    ]
    assert all(e["actor"] for e in done["audit"])
    for customer in p["customers"]:
        item = proposals[customer["id"]]
        assert await owner(client, customer["id"]) == item["proposed_manager_id"]
        latest = (await history(client, customer["id"]))[0]
        assert latest["reason"] == "handover" and latest["handover_id"] == h["id"]
        assert latest["manager_id"] == item["proposed_manager_id"]
    manager = await ok(await client.get(f"/v1/managers/{p['leaving']['id']}"))
    assert manager["status"] == "departed" and manager["customer_count"] == 0
    after = await items(client, h["id"])
    assert {i["status"] for i in after.values()} == {"moved"}
    assert {(i["notification_status"], i["notification_error"]) for i in after.values()} == {
        ("not_sent", "no subscriber")
    }


async def test_partial_scope_moves_only_the_strategic_tier_on_a_role_change(client):
    p = await portfolio(client, customers=2)
    senior = await create_manager(client, level=5, capacity=100)
    strategic = [
        await create_customer(client, tier="strategic", manager_id=p["leaving"]["id"])
        for _ in range(2)
    ]
    h = await create(
        client, p["leaving"]["id"], reason="role_change", scope={"tiers": ["strategic"]}
    )
    assert h["counts"]["total"] == 2 and h["scope"]["tiers"] == ["strategic"]
    for c in strategic:
        await ok(
            await client.put(f"/v1/handovers/{h['id']}/items/{c['id']}/briefing", json=BRIEFING)
        )
    done = await run_through(client, h["id"])
    assert done["counts"]["moved"] == 2
    for c in strategic:
        assert await owner(client, c["id"]) in {senior["id"], p["a"]["id"], p["b"]["id"]}
    for c in p["customers"]:
        assert await owner(client, c["id"]) == p["leaving"]["id"], "out of scope: stays"
    manager = await ok(await client.get(f"/v1/managers/{p['leaving']['id']}"))
    assert manager["status"] == "active", "a role change does not mark the manager departed"


async def test_scope_by_customer_list_rejects_customers_of_someone_else(client):
    p = await portfolio(client, customers=3)
    other = await create_customer(client, manager_id=p["a"]["id"])
    r = await client.post(
        "/v1/handovers",
        json={
            "from_manager_id": p["leaving"]["id"],
            "reason": "rebalance",
            "scope": {"customer_ids": [p["customers"][0]["id"], other["id"]]},
        },
    )
    body = assert_problem(r, 422)
    assert body["customer_ids"] == [other["id"]]
    h = await create(
        client,
        p["leaving"]["id"],
        reason="rebalance",
        scope={"customer_ids": [p["customers"][0]["id"]]},
    )
    done = await run_through(client, h["id"])
    assert done["counts"] == {"total": 1, "briefed": 0, "moved": 1}
    assert await owner(client, p["customers"][1]["id"]) == p["leaving"]["id"]


async def test_override_is_checked_forced_with_a_reason_and_kept_on_replan(client):
    p = await portfolio(client, customers=2)
    junior = await create_manager(client, level=1, capacity=40)
    h = await create(client, p["leaving"]["id"])
    await act(client, h["id"], "plan")
    target = p["customers"][0]["id"]
    url = f"/v1/handovers/{h['id']}/items/{target}"

    refused = assert_problem(await client.patch(url, json={"manager_id": junior["id"]}), 409)
    assert refused["code"] == "rule_violation" and refused["violations"]
    assert_problem(await client.patch(url, json={"manager_id": junior["id"], "force": True}), 422)
    assert_problem(await client.patch(url, json={"manager_id": p["leaving"]["id"]}), 409)
    assert_problem(await client.patch(url, json={"manager_id": p["b"]["id"], "extra": 1}), 422)

    item = await ok(
        await client.patch(
            url, json={"manager_id": junior["id"], "force": True, "reason": "Knows the CFO."}
        )
    )
    assert item["status"] == "overridden"
    assert item["override"]["forced"] is True and item["override"]["reason"] == "Knows the CFO."

    replanned = await act(client, h["id"], "plan")
    assert replanned["counts"]["overridden"] == 1
    assert (await items(client, h["id"]))[target]["override"]["manager_id"] == junior["id"]

    await act(client, h["id"], "approve")
    assert_problem(await client.patch(url, json={"manager_id": p["b"]["id"]}), 409)
    await act(client, h["id"], "execute")
    assert await owner(client, target) == junior["id"]
    after = await items(client, h["id"])
    assert after[target]["final_manager_id"] == junior["id"]


async def test_clearing_an_override_restores_the_proposal(client):
    p = await portfolio(client, customers=1)
    h = await create(client, p["leaving"]["id"], strategy="successor", successor_id=p["a"]["id"])
    await act(client, h["id"], "plan")
    url = f"/v1/handovers/{h['id']}/items/{p['customers'][0]['id']}"
    item = await ok(await client.patch(url, json={"manager_id": p["b"]["id"]}))
    assert item["status"] == "overridden" and item["override"]["forced"] is False
    item = await ok(await client.patch(url, json={"manager_id": None}))
    assert item["status"] == "proposed" and item["override"] is None
    assert item["proposed_manager_id"] == p["a"]["id"]


async def test_unplaceable_customers_are_listed_with_reasons_and_go_to_the_pool(client):
    await create_tiers(client)
    leaving = await create_manager(client, level=5, capacity=100)
    await create_manager(client, level=3, capacity=40)
    await create_customer(client, manager_id=leaving["id"])
    top = await create_customer(client, tier="strategic", manager_id=leaving["id"])
    h = await create(client, leaving["id"])
    planned = await act(client, h["id"], "plan")
    assert planned["counts"]["unplaced"] == 1
    item = (await items(client, h["id"]))[top["id"]]
    assert item["status"] == "unplaced" and item["proposed_manager_id"] is None
    assert item["reasons"]
    await ok(await client.put(f"/v1/handovers/{h['id']}/items/{top['id']}/briefing", json=BRIEFING))
    await act(client, h["id"], "approve")
    done = await act(client, h["id"], "execute")
    assert done["counts"]["pooled"] == 1 and done["counts"]["moved"] == 1
    assert await owner(client, top["id"]) is None


async def test_interim_owner_holds_customers_until_execution(client):
    p = await portfolio(client, customers=3)
    interim = await create_manager(client, level=4, capacity=100)
    h = await create(client, p["leaving"]["id"], interim_manager_id=interim["id"], interim_now=True)
    assert h["interim_applied_at"] is not None
    for c in p["customers"]:
        assert await owner(client, c["id"]) == interim["id"]
        latest = (await history(client, c["id"]))[0]
        assert latest["reason"] == "interim" and latest["handover_id"] == h["id"]
    await act(client, h["id"], "plan")
    proposals = await items(client, h["id"])
    assert all(i["original_manager_id"] == p["leaving"]["id"] for i in proposals.values())
    await act(client, h["id"], "approve")
    await act(client, h["id"], "execute")
    for c in p["customers"]:
        assert await owner(client, c["id"]) == proposals[c["id"]]["proposed_manager_id"]


async def test_a_customer_who_joins_after_the_interim_took_over_is_checked_as_the_first(client):
    """Re-planning gives the interim owner the customers the leaving manager received since;
    what that breaks is recorded, as it is for the customers the interim owner took first."""
    await create_tiers(client)
    leaving = await create_manager(client, level=4, capacity=100)
    interim = await create_manager(client, level=2, capacity=100)
    await create_manager(client, level=4, capacity=100)
    h = await create(
        client,
        leaving["id"],
        reason="role_change",
        interim_manager_id=interim["id"],
        interim_now=True,
    )
    late = await create_customer(client, tier="strategic", manager_id=leaving["id"])
    await act(client, h["id"], "plan")
    assert await owner(client, late["id"]) == interim["id"]
    found = (await ok(await client.get("/v1/violations", params={"state": "open"})))["items"]
    assert [(v["customer_id"], v["manager_id"], v["cause"]) for v in found] == [
        (late["id"], interim["id"], "interim")
    ]


async def test_departed_manager_customers_go_to_the_interim_at_once(client):
    p = await portfolio(client, customers=2)
    interim = await create_manager(client, level=4, capacity=100)
    assert_problem(
        await client.patch(f"/v1/managers/{p['leaving']['id']}", json={"status": "departed"}), 409
    )
    out = await ok(
        await client.patch(
            f"/v1/managers/{p['leaving']['id']}",
            params={"handover": "auto", "interim_manager_id": interim["id"]},
            json={"status": "departed"},
        )
    )
    h = await ok(await client.get(f"/v1/handovers/{out['handover_id']}"))
    assert h["interim_applied_at"] is not None
    assert {await owner(client, c["id"]) for c in p["customers"]} == {interim["id"]}


async def test_cancelling_returns_interim_customers_and_the_manager_status(client):
    p = await portfolio(client, customers=2)
    interim = await create_manager(client, level=4, capacity=100)
    h = await create(client, p["leaving"]["id"], interim_manager_id=interim["id"], interim_now=True)
    cancelled = await act(client, h["id"], "cancel", note="Stays after all.")
    assert cancelled["state"] == "cancelled" and cancelled["allowed_actions"] == []
    assert {await owner(client, c["id"]) for c in p["customers"]} == {p["leaving"]["id"]}
    manager = await ok(await client.get(f"/v1/managers/{p['leaving']['id']}"))
    assert manager["status"] == "active"


async def status_changes(client: httpx.AsyncClient) -> list[dict]:
    """The ``manager.status_changed`` events in the outbox, oldest first."""
    log = await ok(await client.get("/v1/webhook-deliveries", params={"limit": 50}))
    found = []
    for delivery in sorted(log["items"], key=lambda d: d["id"]):
        detail = await ok(await client.get(f"/v1/webhook-deliveries/{delivery['id']}"))
        if detail["payload"]["type"] == "manager.status_changed":
            found.append(detail["payload"]["data"])
    return found


async def test_a_handover_changes_the_managers_status_through_the_managers_domain(
    client, allow_loopback
):
    """Departing at creation, departed at execution, back to what it was on cancel: each
    change is the managers domain's, so ``manager.status_changed`` goes out with it."""
    await ok(
        await client.post(
            "/v1/webhook-subscriptions",
            json={"url": "http://127.0.0.1:9/crm", "event_types": ["manager.status_changed"]},
        ),
        201,
    )
    p = await portfolio(client, customers=2)
    h = await create(client, p["leaving"]["id"])
    await run_through(client, h["id"])
    assert (await ok(await client.get(f"/v1/managers/{p['leaving']['id']}")))["status"] == (
        "departed"
    )
    staying = await create_manager(client, level=4, capacity=100)
    await create_customer(client, tier="standard", manager_id=staying["id"])
    cancelled = await create(client, staying["id"])
    await act(client, cancelled["id"], "cancel", note="Stays after all.")

    changes = [
        (c["manager_id"], c["previous_status"], c["status"], c["handover_id"])
        for c in await status_changes(client)
    ]
    assert changes == [
        (p["leaving"]["id"], "active", "departing", h["id"]),
        (p["leaving"]["id"], "departing", "departed", h["id"]),
        (staying["id"], "active", "departing", cancelled["id"]),
        (staying["id"], "departing", "active", cancelled["id"]),
    ]


async def test_approval_needs_briefings_for_the_top_tier(client):
    p = await portfolio(client, customers=1)
    senior = await create_manager(client, level=5, capacity=100)
    top = await create_customer(client, tier="strategic", manager_id=p["leaving"]["id"])
    h = await create(client, p["leaving"]["id"])
    await act(client, h["id"], "plan")
    body = assert_problem(await client.post(f"/v1/handovers/{h['id']}/approve"), 409)
    assert body["code"] == "briefings_missing" and body["customer_ids"] == [top["id"]]

    assert_problem(
        await client.put(
            f"/v1/handovers/{h['id']}/items/{top['id']}/briefing",
            json={**BRIEFING, "outstanding_amount": "-1"},
        ),
        422,
    )
    item = await ok(
        await client.put(f"/v1/handovers/{h['id']}/items/{top['id']}/briefing", json=BRIEFING)
    )
    assert item["briefing"]["key_contacts"][0]["name"] == "Wang Fang"
    assert item["briefing"]["outstanding_amount"] == "12000.00"
    approved = await act(client, h["id"], "approve")
    assert approved["state"] == "approved" and approved["counts"]["briefed"] == 1
    await act(client, h["id"], "execute")
    assert await owner(client, top["id"]) == senior["id"]


async def test_checklist_records_who_and_when_and_shows_progress(api, client):
    p = await portfolio(client, customers=1)
    h = await create(client, p["leaving"]["id"])
    assert h["checklist"]["total"] == 6 and h["checklist"]["progress"] == 0
    url = f"/v1/handovers/{h['id']}/checklist/customer_list_exported"
    li_na = await api.client("operator", name="li.na")
    updated = await ok(await li_na.patch(url, json={"note": "CSV in CRM"}))
    task = updated["checklist"]["tasks"][0]
    assert task["task"] == "customer_list_exported" and task["done"] is True
    assert task["done_by"] == "li.na" and task["done_at"] and task["note"] == "CSV in CRM"
    assert updated["checklist"]["done"] == 1 and updated["checklist"]["progress"] == 0.1667
    assert_problem(await client.patch(f"/v1/handovers/{h['id']}/checklist/nope", json={}), 422)
    undone = await ok(await client.patch(url, json={"done": False}))
    assert undone["checklist"]["done"] == 0 and undone["checklist"]["tasks"][0]["done_by"] is None


async def test_refusal_inside_the_window_replaces_the_customer_elsewhere(client):
    p = await portfolio(client, customers=1)
    h = await create(client, p["leaving"]["id"], strategy="successor", successor_id=p["a"]["id"])
    await run_through(client, h["id"])
    customer = p["customers"][0]["id"]
    item = await ok(
        await client.post(
            f"/v1/handovers/{h['id']}/items/{customer}/refuse",
            json={"reason": "Wants a Mandarin speaker."},
        )
    )
    assert item["status"] == "refused" and item["refused_at"]
    assert item["refused_manager_id"] == p["a"]["id"]
    assert item["final_manager_id"] == p["b"]["id"]
    assert await owner(client, customer) == p["b"]["id"]
    latest = (await history(client, customer))[0]
    assert latest["reason"] == "refusal" and latest["handover_id"] == h["id"]
    outcome = await ok(await client.get(f"/v1/handovers/{h['id']}/outcome"))
    assert outcome["refusals"] == 1


async def test_refusal_after_the_window_is_a_conflict(client, settings_env):
    settings_env("handover_refusal_window_hours", 0)
    p = await portfolio(client, customers=1)
    h = await create(client, p["leaving"]["id"])
    await run_through(client, h["id"])
    customer = p["customers"][0]["id"]
    body = assert_problem(
        await client.post(f"/v1/handovers/{h['id']}/items/{customer}/refuse"), 409
    )
    assert body["code"] == "refusal_window_closed"
    item = await ok(await client.get(f"/v1/handovers/{h['id']}/items/{customer}"))
    assert item["status"] == "moved" and item["refused_at"] is None
    assert await owner(client, customer) == item["final_manager_id"], "nothing re-placed"


async def test_refusal_before_execution_is_a_conflict(client):
    p = await portfolio(client, customers=1)
    h = await create(client, p["leaving"]["id"])
    await act(client, h["id"], "plan")
    customer = p["customers"][0]["id"]
    assert_problem(await client.post(f"/v1/handovers/{h['id']}/items/{customer}/refuse"), 409)


async def test_a_customer_is_not_handed_over_three_times_without_force(client):
    await create_tiers(client)
    managers = [await create_manager(client, level=4, capacity=40) for _ in range(4)]
    customer = await create_customer(client, manager_id=managers[0]["id"])
    for step in range(2):
        h = await create(
            client,
            managers[step]["id"],
            reason="rebalance",
            strategy="successor",
            successor_id=managers[step + 1]["id"],
        )
        await run_through(client, h["id"])
    h = await create(
        client,
        managers[2]["id"],
        reason="rebalance",
        strategy="successor",
        successor_id=managers[3]["id"],
    )
    await act(client, h["id"], "plan")
    body = assert_problem(await client.post(f"/v1/handovers/{h['id']}/approve"), 409)
    assert body["code"] == "transfer_limit_exceeded"
    assert body["customers"] == [{"customer_id": customer["id"], "transfers": 2}]
    await act(client, h["id"], "approve", force=True)
    await act(client, h["id"], "execute")
    assert await owner(client, customer["id"]) == managers[3]["id"]


async def test_rollback_restores_unmoved_customers_and_reports_the_rest(client):
    p = await portfolio(client, customers=3)
    h = await create(client, p["leaving"]["id"], strategy="successor", successor_id=p["a"]["id"])
    await run_through(client, h["id"])
    moved_away = p["customers"][0]["id"]
    await ok(await client.patch(f"/v1/customers/{moved_away}", json={"manager_id": p["b"]["id"]}))

    result = await act(client, h["id"], "rollback")
    assert result["handover"]["state"] == "rolled_back"
    assert result["restored"] == 2
    assert result["not_restored"] == [
        {"customer_id": moved_away, "reason": "owner changed after the handover"}
    ]
    assert await owner(client, moved_away) == p["b"]["id"], "never overwritten"
    for c in p["customers"][1:]:
        assert await owner(client, c["id"]) == p["leaving"]["id"]
        latest = (await history(client, c["id"]))[0]
        assert latest["reason"] == "rollback" and latest["handover_id"] == h["id"]
    manager = await ok(await client.get(f"/v1/managers/{p['leaving']['id']}"))
    assert manager["status"] == "active"
    after = await items(client, h["id"])
    assert after[moved_away]["outcome_note"].startswith("not restored")
    assert_problem(await client.post(f"/v1/handovers/{h['id']}/rollback"), 409)


@pytest.mark.parametrize("steps", [[], ["plan"], ["plan", "approve"]])
async def test_cancel_from_each_open_state(client, steps):
    p = await portfolio(client, customers=2)
    h = await create(client, p["leaving"]["id"])
    for step in steps:
        await act(client, h["id"], step)
    cancelled = await act(client, h["id"], "cancel")
    assert cancelled["state"] == "cancelled"
    assert cancelled["audit"][-1]["from_state"] == (["draft", *["planned", "approved"]][len(steps)])
    assert {await owner(client, c["id"]) for c in p["customers"]} == {p["leaving"]["id"]}
    manager = await ok(await client.get(f"/v1/managers/{p['leaving']['id']}"))
    assert manager["status"] == "active"
    again = await create(client, p["leaving"]["id"])
    assert again["state"] == "draft", "a cancelled handover is not open"


ALLOWED = {
    "draft": {"plan", "cancel"},
    "planned": {"plan", "approve", "cancel"},
    "approved": {"execute", "cancel"},
    "completed": {"rollback"},
    "cancelled": set(),
    "rolled_back": set(),
}
SETUP = {
    "draft": [],
    "planned": ["plan"],
    "approved": ["plan", "approve"],
    "completed": ["plan", "approve", "execute"],
    "cancelled": ["cancel"],
    "rolled_back": ["plan", "approve", "execute", "rollback"],
}


@pytest.mark.parametrize("state", list(SETUP))
async def test_every_illegal_transition_is_a_conflict_naming_the_state(client, state):
    p = await portfolio(client, customers=1)
    h = await create(client, p["leaving"]["id"])
    for step in SETUP[state]:
        await act(client, h["id"], step)
    current = await ok(await client.get(f"/v1/handovers/{h['id']}"))
    assert current["state"] == state and set(current["allowed_actions"]) == ALLOWED[state]
    for action in {"plan", "approve", "execute", "cancel", "rollback"} - ALLOWED[state]:
        r = await client.post(f"/v1/handovers/{h['id']}/{action}")
        if state == "completed" and action == "execute":
            assert (await ok(r))["state"] == "completed", "a retried execution is a no-op"
            continue
        body = assert_problem(r, 409)
        assert body["code"] == "invalid_transition" and body["state"] == state
        assert set(body["allowed_actions"]) == ALLOWED[state]
        assert state in body["detail"]


async def test_one_open_handover_per_manager(client):
    p = await portfolio(client, customers=1)
    first = await create(client, p["leaving"]["id"])
    r = await client.post(
        "/v1/handovers", json={"from_manager_id": p["leaving"]["id"], "reason": "leave"}
    )
    assert assert_problem(r, 409)["handover_id"] == first["id"]


async def test_a_departing_manager_takes_no_new_customers(client):
    p = await portfolio(client, customers=1)
    await create(client, p["leaving"]["id"])
    r = await client.post(
        "/v1/customers",
        json={"name": "New Co", "tier": "standard", "manager_id": p["leaving"]["id"]},
    )
    assert assert_problem(r, 409)["code"] == "rule_violation"


@pytest.mark.parametrize(
    "body",
    [
        {"reason": "departure", "strategy": "successor"},
        {"reason": "vacation"},
        {"reason": "departure", "strategy": "greedy"},
        {"reason": "departure", "until": "2030-01-01T00:00:00Z"},
        {
            "reason": "leave",
            "effective_at": "2030-02-01T00:00:00Z",
            "until": "2030-01-01T00:00:00Z",
        },
        {"reason": "leave", "until": "2030-01-01T00:00:00"},
        {"reason": "departure", "interim_now": True},
        {"reason": "departure", "scope": {"tiers": ["Not A Tier!"]}},
        {"reason": "departure", "scope": {"tiers": ["nosuchtier"]}},
        {"reason": "departure", "note": ""},
        {"reason": "departure", "colour": "red"},
    ],
)
async def test_bad_create_input_is_a_422(client, body):
    p = await portfolio(client, customers=1)
    r = await client.post("/v1/handovers", json={"from_manager_id": p["leaving"]["id"], **body})
    assert_problem(r, 422)


async def test_unknown_manager_and_handover(client):
    await create_tiers(client)
    missing = "00000000-0000-4000-8000-000000000000"
    r = await client.post("/v1/handovers", json={"from_manager_id": missing, "reason": "leave"})
    assert_problem(r, 422)
    assert_problem(await client.get(f"/v1/handovers/{missing}"), 404)
    assert_problem(await client.post(f"/v1/handovers/{missing}/plan"), 404)
    assert_problem(await client.get(f"/v1/handovers/{missing}/items"), 404)


async def test_list_filters_and_paginates(client):
    await create_tiers(client)
    managers = [await create_manager(client, level=4) for _ in range(3)]
    created = [
        await create(client, managers[0]["id"], reason="departure"),
        await create(client, managers[1]["id"], reason="leave"),
        await create(client, managers[2]["id"], reason="leave"),
    ]
    await act(client, created[2]["id"], "cancel")
    pages = await collect_pages(client, "/v1/handovers", limit=2)
    ids = [h["id"] for page in pages for h in page]
    assert {c["id"] for c in created} <= set(ids) and len(ids) == len(set(ids))
    leave = await ok(await client.get("/v1/handovers", params={"reason": "leave"}))
    assert {h["id"] for h in leave["items"]} >= {created[1]["id"], created[2]["id"]}
    assert all(h["reason"] == "leave" for h in leave["items"])
    by_manager = await ok(
        await client.get("/v1/handovers", params={"manager_id": managers[0]["id"]})
    )
    assert [h["id"] for h in by_manager["items"]] == [created[0]["id"]]
    cancelled = await ok(await client.get("/v1/handovers", params={"state": "cancelled"}))
    assert created[2]["id"] in {h["id"] for h in cancelled["items"]}
    assert_problem(await client.get("/v1/handovers", params={"state": "bogus"}), 422)
    assert_problem(await client.get("/v1/handovers", params={"cursor": "xx"}), 422)


async def test_outcome_compares_moved_customers_with_the_rest(client):
    p = await portfolio(client, customers=2)
    bystander = await create_customer(client, manager_id=p["a"]["id"])
    for c in [*p["customers"], bystander]:
        r = await client.post(
            f"/v1/customers/{c['id']}/satisfaction",
            json={"score": "8", "recorded_at": "2020-01-01T00:00:00Z", "source": "nps"},
        )
        await ok(r, 201)
    h = await create(client, p["leaving"]["id"])
    await run_through(client, h["id"])
    moved = p["customers"][0]["id"]
    await ok(await client.post(f"/v1/customers/{moved}/satisfaction", json={"score": "6.5"}), 201)
    await ok(
        await client.patch(f"/v1/customers/{p['customers'][1]['id']}", json={"status": "churned"})
    )
    customer = await ok(await client.get(f"/v1/customers/{moved}"))
    assert customer["satisfaction"] == "6.50"
    series = await ok(await client.get(f"/v1/customers/{moved}/satisfaction"))
    assert [s["score"] for s in series["items"]] == ["6.50", "8.00"]

    outcome = await ok(await client.get(f"/v1/handovers/{h['id']}/outcome"))
    assert outcome["moved"]["customers"] == 2
    assert outcome["moved"]["retained"] == 1 and outcome["moved"]["churned"] == 1
    assert outcome["moved"]["retention_rate"] == 0.5
    assert outcome["moved"]["satisfaction_before"] == 8.0
    assert outcome["moved"]["satisfaction_latest"] == 6.5
    assert outcome["moved"]["satisfaction_change"] == -1.5
    assert outcome["control"]["customers"] == 1 and outcome["control"]["churned"] == 0
    assert outcome["hours_to_complete"] is not None and outcome["refusals"] == 0


async def test_satisfaction_input_is_validated(client):
    await create_tiers(client)
    c = await create_customer(client)
    url = f"/v1/customers/{c['id']}/satisfaction"
    assert_problem(await client.post(url, json={"score": "11"}), 422)
    assert_problem(await client.post(url, json={"score": "5", "extra": True}), 422)
    missing = "00000000-0000-4000-8000-000000000000"
    assert_problem(
        await client.post(f"/v1/customers/{missing}/satisfaction", json={"score": 5}), 404
    )
    assert_problem(await client.get(f"/v1/customers/{missing}/satisfaction"), 404)
    future = await client.post(url, json={"score": "7", "recorded_at": "2030-01-01T00:00:00Z"})
    assert_problem(future, 422)
    await ok(await client.post(url, json={"score": "7"}), 201)
    await ok(
        await client.post(url, json={"score": "3", "recorded_at": "2020-01-01T00:00:00Z"}), 201
    )
    assert (await ok(await client.get(f"/v1/customers/{c['id']}")))["satisfaction"] == "7.00"


async def test_a_planned_owner_a_rule_no_longer_allows_gets_no_customers(client):
    """Between planning and execution the customer's tier came to need a more senior owner:
    the execution places the customer again instead of giving it to the planned owner."""
    await create_tiers(client)
    leaving = await create_manager(client, level=4, capacity=100)
    planned = await create_manager(client, level=3, capacity=100)
    customer = await create_customer(client, tier="key", manager_id=leaving["id"])
    handover = await create(client, leaving["id"], strategy="successor", successor_id=planned["id"])
    await act(client, handover["id"], "plan")
    await act(client, handover["id"], "approve")
    senior = await create_manager(client, level=4, capacity=100)
    await ok(await client.patch("/v1/tiers/key", json={"min_manager_level": 4}))

    done = await act(client, handover["id"], "execute")

    assert done["state"] == "completed"
    assert await owner(client, customer["id"]) == senior["id"]
    moved = await items(client, handover["id"])
    assert [i["final_manager_id"] for i in moved.values()] == [senior["id"]]
    assert (await ok(await client.get("/v1/violations")))["items"] == []


async def test_a_planned_owner_who_left_since_planning_gets_no_customers(client):
    await create_tiers(client)
    leaving = await create_manager(client, level=4, capacity=100)
    successor = await create_manager(client, level=4, capacity=100)
    other = await create_manager(client, level=4, capacity=100)
    customers = [await create_customer(client, manager_id=leaving["id"]) for _ in range(3)]
    first = await create(client, leaving["id"], strategy="successor", successor_id=successor["id"])
    await act(client, first["id"], "plan")
    await act(client, first["id"], "approve")
    # The successor leaves before the first handover runs.
    second = await create(client, successor["id"])
    for action in ("plan", "approve", "execute"):
        await act(client, second["id"], action)

    done = await act(client, first["id"], "execute")

    assert done["state"] == "completed"
    for c in customers:
        assert await owner(client, c["id"]) == other["id"]
    moved = await items(client, first["id"])
    assert {i["final_manager_id"] for i in moved.values()} == {other["id"]}
