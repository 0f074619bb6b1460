"""`POST /customers/{id}/assign` places one customer without running the whole engine; what
the client sees is the decision the engine's plan makes for the same customer."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.assignments import guard
from app.assignments.schemas import AssignOut
from app.engine import RuleSet
from tests.integration.factories import create_customer, create_manager, create_tiers, ok

RULES = RuleSet.default().model_dump(mode="json") | {
    "eligibility": [
        {
            "id": "speaks_language",
            "when": [{"field": "customer.tier", "op": "in", "value": ["key", "strategic"]}],
            "conditions": [
                {"field": "manager.languages", "op": "contains", "value": "$customer.language"}
            ],
        }
    ],
    "placement": {"tier_caps": {"standard": {"max_new_per_day": 1}}},
}


async def _engine_decision(client, customer_id: str, **options) -> dict:
    """The engine's decision for the customer, from a dry-run plan of it alone."""
    body = {"customer_ids": [customer_id], **options}
    plan = await ok(await client.post("/v1/assignments/plan", json=body))
    (decision,) = plan["decisions"]
    return decision


async def test_assign_decides_as_the_engine_plan_and_writes_it(client):
    await create_tiers(client)
    await ok(await client.put("/v1/rules", json={"rules": RULES}))
    staff = [
        await create_manager(client, level=5, capacity=30, languages=["en"], region="EU"),
        await create_manager(client, level=4, capacity=10, languages=["fr"], region="EU"),
        await create_manager(client, level=2, capacity=50, languages=["de"], region="US"),
        await create_manager(client, level=5, capacity=40, accepting_new=False),
    ]
    busy = await create_customer(client, tier="key", language="en")
    await ok(await client.patch(f"/v1/customers/{busy['id']}", json={"manager_id": staff[0]["id"]}))
    waiting = [
        await create_customer(client, tier="key", language="fr", region="EU"),
        await create_customer(client, tier="standard", language="de", region="US"),
        await create_customer(client, tier="standard", language="en", region="EU"),
        await create_customer(client, tier="strategic", language="zh"),  # nobody speaks it
    ]
    for customer in waiting:
        expected = await _engine_decision(client, customer["id"])
        dry = await ok(
            await client.post(f"/v1/customers/{customer['id']}/assign", json={"dry_run": True})
        )
        assert dry["decision"] == expected
        placed = await ok(await client.post(f"/v1/customers/{customer['id']}/assign", json={}))
        assert placed["decision"] == expected
        # Serialised without FastAPI validating it again: it still is what the schema says.
        assert AssignOut.model_validate(placed).model_dump(mode="json") == placed
        assert AssignOut.model_validate(dry).model_dump(mode="json") == dry
        assert placed["applied"] is (expected["manager_id"] is not None)
        seen = await ok(await client.get(f"/v1/customers/{customer['id']}"))
        assert seen["manager_id"] == expected["manager_id"]
    # The second standard customer met the cap of the first one's manager (one a day).
    owners = [
        (await ok(await client.get(f"/v1/customers/{c['id']}")))["manager_id"] for c in waiting
    ]
    assert owners[1] != owners[2] or owners[1] is None
    assert owners[3] is None


async def test_a_named_manager_is_checked_as_the_engine_checks_a_successor(client):
    await create_tiers(client)
    junior = await create_manager(client, level=1, capacity=10)
    senior = await create_manager(client, level=5, capacity=10)
    customer = await create_customer(client, tier="key")
    for manager in (junior, senior):
        expected = await _engine_decision(
            client, customer["id"], strategy="successor", successor_id=manager["id"]
        )
        response = await client.post(
            f"/v1/customers/{customer['id']}/assign",
            json={"manager_id": manager["id"], "dry_run": True},
        )
        if expected["manager_id"] is None:
            assert response.status_code == 409
            assert [v["rule"] for v in response.json()["violations"]] == ["tier_min_level"]
        else:
            assert (await ok(response))["decision"] == expected


async def test_a_chosen_manager_changed_before_its_lock_sends_the_placement_to_the_engine(
    committed_client, fresh_database, monkeypatch
):
    """The single placement reads candidates without their locks; when the manager it chose
    stops accepting before its lock is taken, the lock is given back and the customer is
    placed again on facts read after the change (by the single placement, or after repeated
    changes by the whole engine with every lock)."""
    client = committed_client
    await create_tiers(client)
    light = await create_manager(client, level=3, capacity=50)
    other = await create_manager(client, level=3, capacity=50)
    for _ in range(3):
        busy = await create_customer(client, tier="standard")
        await ok(
            await client.patch(f"/v1/customers/{busy['id']}", json={"manager_id": other["id"]})
        )
    customer = await create_customer(client, tier="standard")
    expected = await _engine_decision(client, customer["id"])
    assert expected["manager_id"] == light["id"], "the lighter manager is the engine's choice"
    changes = create_async_engine(fresh_database)
    real = guard.check_move_reading
    calls = []

    async def changed_meanwhile(session, **kwargs):
        calls.append(1)
        async with changes.begin() as conn:
            await conn.execute(
                text("UPDATE managers SET accepting_new = false WHERE id = :id"),
                {"id": light["id"]},
            )
        return await real(session, **kwargs)

    monkeypatch.setattr(guard, "check_move_reading", changed_meanwhile)
    try:
        placed = await ok(await client.post(f"/v1/customers/{customer['id']}/assign", json={}))
    finally:
        await changes.dispose()
    assert calls, "the single placement chose a manager and went to lock it"
    assert placed["applied"] is True
    assert placed["decision"]["manager_id"] == other["id"]
    seen = await ok(await client.get(f"/v1/customers/{customer['id']}"))
    assert seen["manager_id"] == other["id"]
    history = await ok(await client.get(f"/v1/customers/{customer['id']}/history"))
    assert [row["manager_id"] for row in history["items"]] == [other["id"]]


async def test_a_dry_run_is_a_read_not_audited_and_replayed_under_its_key(client):
    """A dry run changes nothing: the audit trail records only the real placement; with an
    Idempotency-Key its answer is still kept and replayed."""
    await create_tiers(client)
    manager = await create_manager(client, level=3, capacity=10)
    customer = await create_customer(client, tier="standard")
    path = f"/v1/customers/{customer['id']}/assign"
    keyed = {"Idempotency-Key": "dry-run-1"}
    dry = await ok(await client.post(path, json={"dry_run": True}, headers=keyed))
    assert dry["decision"]["manager_id"] == manager["id"] and dry["applied"] is False
    again = await client.post(path, json={"dry_run": True}, headers=keyed)
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json() == dry
    seen = await ok(await client.get(f"/v1/customers/{customer['id']}"))
    assert seen["manager_id"] is None
    trail = await ok(await client.get("/v1/audit", params={"resource_id": customer["id"]}))
    assert [e["action"] for e in trail["items"]] == ["create_customer"]
    placed = await ok(await client.post(path, json={}))
    assert placed["applied"] is True and placed["decision"] == dry["decision"]
    trail = await ok(await client.get("/v1/audit", params={"resource_id": customer["id"]}))
    assert [e["action"] for e in trail["items"]] == ["assign_customer", "create_customer"]


async def test_a_chosen_manager_changing_at_every_try_leaves_the_placement_to_the_engine(
    committed_client, fresh_database, monkeypatch
):
    """Each time the single placement goes to lock the manager it chose, that manager's row
    has changed so that the other is now the lighter one (its capacity cut, the other's given
    back): the choice made again falls on the other manager every time, and after a few tries
    the whole engine places the customer, with every lock."""
    client = committed_client
    await create_tiers(client)
    managers = [await create_manager(client, level=3, capacity=50) for _ in range(2)]
    customer = await create_customer(client, tier="standard")
    changes = create_async_engine(fresh_database)
    real = guard.check_move_reading
    calls = []

    async def changed_meanwhile(session, **kwargs):
        calls.append(1)
        async with changes.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE managers SET capacity = CASE WHEN id = :chosen THEN 3 ELSE 50 END"
                    " WHERE id = ANY(:ids)"
                ),
                {"ids": [m["id"] for m in managers], "chosen": kwargs["manager_id"]},
            )
        return await real(session, **kwargs)

    monkeypatch.setattr(guard, "check_move_reading", changed_meanwhile)
    try:
        placed = await ok(await client.post(f"/v1/customers/{customer['id']}/assign", json={}))
    finally:
        await changes.dispose()
    monkeypatch.undo()
    assert len(calls) == 3, "three tries of the single placement"
    assert placed["applied"] is True
    seen = await ok(await client.get(f"/v1/customers/{customer['id']}"))
    assert seen["manager_id"] == placed["decision"]["manager_id"] in {m["id"] for m in managers}


async def test_an_uncontended_placement_reads_its_choice_again_and_writes_it(client, monkeypatch):
    """After the chosen manager's lock its row is read again, alone; unchanged, it equals the
    row the choice was made from, and the placement writes without the whole engine."""
    from app.assignments import service

    await create_tiers(client)
    managers = [await create_manager(client, level=3, capacity=50) for _ in "123"]
    customer = await create_customer(client, tier="standard")
    expected = await _engine_decision(client, customer["id"])

    async def whole_engine(*args, **kwargs):
        raise AssertionError("the whole engine placed an uncontended customer")

    monkeypatch.setattr(service, "_propose", whole_engine)
    placed = await ok(await client.post(f"/v1/customers/{customer['id']}/assign", json={}))
    assert placed["applied"] is True
    assert placed["decision"] == expected
    assert expected["manager_id"] in [m["id"] for m in managers]


async def test_a_placement_writes_the_ledger_its_event_and_one_audit_event_with_the_move(
    client, allow_loopback
):
    """The single placement's move is the manual move's one statement: the ledger period
    with reason ``auto``, the workload, a ``customer.assigned`` event and the request's audit
    event (written once, with the move)."""
    await create_tiers(client)
    manager = await create_manager(client, level=3, capacity=50)
    customer = await create_customer(client, tier="standard")
    await ok(
        await client.post(
            "/v1/webhook-subscriptions",
            json={"url": "http://127.0.0.1:9/crm", "event_types": ["customer.assigned"]},
        ),
        201,
    )
    placed = await ok(await client.post(f"/v1/customers/{customer['id']}/assign", json={}))
    assert placed["applied"] is True and placed["decision"]["manager_id"] == manager["id"]
    history = await ok(await client.get(f"/v1/customers/{customer['id']}/history"))
    assert [(r["manager_id"], r["reason"], r["actor"]) for r in history["items"]] == [
        (manager["id"], "auto", "test-admin")
    ]
    assert (await ok(await client.get(f"/v1/managers/{manager['id']}")))["workload"] == 2
    sent = (await ok(await client.get("/v1/webhook-deliveries")))["items"]
    assert [d["event_type"] for d in sent] == ["customer.assigned"]
    data = (await ok(await client.get(f"/v1/webhook-deliveries/{sent[0]['id']}")))["payload"]
    assert (data["data"]["customer_id"], data["data"]["manager_id"]) == (
        customer["id"],
        manager["id"],
    )
    assert data["data"]["reason"] == "auto"
    trail = await ok(await client.get("/v1/audit", params={"resource_id": customer["id"]}))
    assert [(e["action"], e["status_code"]) for e in trail["items"]] == [
        ("assign_customer", 200),
        ("create_customer", 201),
    ]


async def _placement_raced_by(client, monkeypatch, customer: dict, manager: dict) -> list[int]:
    """Make the next placement's first candidates read be followed at once by a PATCH giving
    ``customer`` to ``manager`` (before the placement locks the manager it chose); returns the
    list that gets an entry each time the placement gives its lock back to start over (the
    whole engine may not decide)."""
    from app.assignments import placement_repository, service

    candidates, undo_lock = placement_repository.candidates, placement_repository.undo_lock
    raced, undone = [], []

    async def read_then_race(reads, **kwargs):
        found = await candidates(reads, **kwargs)
        if not raced:
            url = f"/v1/customers/{customer['id']}"
            raced.append(await ok(await client.patch(url, json={"manager_id": manager["id"]})))
        return found

    async def counted_undo(session):
        undone.append(1)
        await undo_lock(session)

    async def whole_engine(*args, **kwargs):
        raise AssertionError("the whole engine placed the customer")

    monkeypatch.setattr(placement_repository, "candidates", read_then_race)
    monkeypatch.setattr(placement_repository, "undo_lock", counted_undo)
    monkeypatch.setattr(service, "_propose", whole_engine)
    return undone


async def test_a_placement_whose_manager_changed_keeps_it_while_it_is_still_the_choice(
    committed_client, monkeypatch
):
    """Another move gives the chosen manager a customer between the placement's read and its
    lock: the choice, made again with that manager's row as read under the lock, falls on it
    again, so the placement stands without starting over; its answer counts the new row."""
    client = committed_client
    await create_tiers(client)
    light = await create_manager(client, level=3, capacity=50)
    heavy = await create_manager(client, level=3, capacity=50)
    for _ in range(5):
        await create_customer(client, tier="standard", manager_id=heavy["id"])
    other, customer = [await create_customer(client, tier="standard") for _ in "12"]

    undone = await _placement_raced_by(client, monkeypatch, other, light)
    placed = await ok(await client.post(f"/v1/customers/{customer['id']}/assign", json={}))
    monkeypatch.undo()
    assert placed["applied"] is True and undone == []
    assert placed["decision"]["manager_id"] == light["id"]
    assert (await ok(await client.get(f"/v1/managers/{light['id']}")))["workload"] == 4
    # The explanation is of the manager as it stood under the lock: the raced customer counts.
    rules = {r["id"]: r for r in placed["decision"]["explanation"]["rules"]}
    assert rules["capacity"]["detail"] == "workload 2 + 2 <= capacity 50"


async def test_a_placement_whose_manager_changed_past_another_starts_over(
    committed_client, monkeypatch
):
    """The move between the read and the lock makes the chosen manager heavier than another:
    the choice made again falls elsewhere, so the placement gives the lock back, reads again
    and places the customer with the manager that is now the lightest."""
    client = committed_client
    await create_tiers(client)
    light = await create_manager(client, level=3, capacity=50)
    heavy = await create_manager(client, level=3, capacity=50)
    await create_customer(client, tier="standard", manager_id=heavy["id"])
    other = await create_customer(client, tier="key")
    customer = await create_customer(client, tier="standard")

    undone = await _placement_raced_by(client, monkeypatch, other, light)
    placed = await ok(await client.post(f"/v1/customers/{customer['id']}/assign", json={}))
    monkeypatch.undo()
    assert placed["applied"] is True and undone == [1]
    assert placed["decision"]["manager_id"] == heavy["id"]
    workloads = [
        (await ok(await client.get(f"/v1/managers/{m['id']}")))["workload"] for m in (light, heavy)
    ]
    assert workloads == [4, 4]


async def _counting_candidate_reads(monkeypatch) -> list[int]:
    from app.assignments import placement_repository

    candidates, reads = placement_repository.candidates, []

    async def counted(*args, **kwargs):
        reads.append(1)
        return await candidates(*args, **kwargs)

    monkeypatch.setattr(placement_repository, "candidates", counted)
    return reads


async def test_an_uncontended_placement_takes_the_guards_facts_as_its_managers_row(
    committed_client, monkeypatch
):
    """Under the chosen manager's lock the guard reads that manager's facts; when nothing
    changed they are the row the choice was made from, so the placement reads no candidate
    again (intake caps, a capped tier, languages, industries and a team among the facts).
    With working hours in the rules, which the guard does not read, the row is read again."""
    client = committed_client
    await create_tiers(client)
    rules = RULES | {
        "placement": {"tier_caps": {"standard": {"max_new_per_day": 5, "max_new_per_week": 9}}}
    }
    await ok(await client.put("/v1/rules", json={"rules": rules}))
    chosen = await create_manager(
        client,
        level=3,
        capacity=40,
        languages=["zh", "en"],
        industries=["retail"],
        team="north",
        max_new_per_day=6,
        max_new_per_week=10,
    )
    heavier = await create_manager(client, level=3, capacity=40)
    for _ in range(3):
        await create_customer(client, tier="standard", manager_id=chosen["id"])
    for _ in range(5):
        await create_customer(client, tier="standard", manager_id=heavier["id"])
    first, second = [await create_customer(client, tier="standard") for _ in range(2)]

    reads = await _counting_candidate_reads(monkeypatch)
    placed = await ok(await client.post(f"/v1/customers/{first['id']}/assign", json={}))
    assert placed["applied"] is True and placed["decision"]["manager_id"] == chosen["id"]
    assert reads == [1]

    hours = rules | {"placement": rules["placement"] | {"available_now": True}}
    await ok(await client.put("/v1/rules", json={"rules": hours}))
    reads.clear()
    placed = await ok(await client.post(f"/v1/customers/{second['id']}/assign", json={}))
    monkeypatch.undo()
    assert placed["applied"] is True and placed["decision"]["manager_id"] == chosen["id"]
    assert reads == [1, 1]
    assert (await ok(await client.get(f"/v1/managers/{chosen['id']}")))["workload"] == 10
