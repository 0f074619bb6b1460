"""Outbound webhooks: subscriptions, the transactional outbox, and signed delivery to a real
receiver on loopback with retries, Retry-After, 410, per-customer order and crash recovery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.core.pagination import encode_cursor
from app.db.session import session_scope
from app.settings import Settings, get_settings
from app.webhooks.outbound import dispatcher
from tests.integration.factories import (
    assert_problem,
    collect_pages,
    create_customer,
    create_manager,
    create_tiers,
    ok,
)
from tests.integration.webhook_receiver import closed_port_url, running_receiver

SETTINGS = Settings(environment="test", webhooks_allow_private_targets=True)


@pytest.fixture
def receiver():
    with running_receiver() as r:
        yield r


async def subscribe(client, url, types=("*",)):
    return await ok(
        await client.post("/v1/webhook-subscriptions", json={"url": url, "event_types": types}),
        201,
    )


async def deliveries(client, **params):
    return (await ok(await client.get("/v1/webhook-deliveries", params=params)))["items"]


async def assign(client, customer_id, manager_id, **params):
    return await ok(
        await client.patch(
            f"/v1/customers/{customer_id}", json={"manager_id": manager_id}, params=params
        )
    )


async def test_secret_is_shown_once_and_private_targets_are_refused(client, monkeypatch):
    monkeypatch.setenv("BATON_WEBHOOKS_ALLOW_PRIVATE_TARGETS", "false")
    get_settings.cache_clear()
    try:
        for url in (
            "http://127.0.0.1:9/hooks",
            "http://169.254.169.254/latest/meta-data",
            "http://10.1.2.3/x",
            "http://[::1]/x",
            "http://localhost/x",
        ):
            body = assert_problem(
                await client.post(
                    "/v1/webhook-subscriptions", json={"url": url, "event_types": ["*"]}
                ),
                422,
            )
            assert body["code"] == "webhook_target_not_allowed", url
        assert_problem(
            await client.post(
                "/v1/webhook-subscriptions", json={"url": "ftp://x.example", "event_types": ["*"]}
            ),
            422,
        )
        assert_problem(
            await client.post(
                "/v1/webhook-subscriptions",
                json={"url": "https://example.com/h", "event_types": ["nope"]},
            ),
            422,
        )
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()

    monkeypatch.setenv("BATON_WEBHOOKS_ALLOW_PRIVATE_TARGETS", "true")
    get_settings.cache_clear()
    created = await subscribe(client, "http://127.0.0.1:9/hooks", ["customer.assigned"])
    assert created["secret"].startswith("whsec_")
    shown = await ok(await client.get(f"/v1/webhook-subscriptions/{created['id']}"))
    assert "secret" not in shown
    listed = await ok(await client.get("/v1/webhook-subscriptions"))
    assert all("secret" not in s for s in listed["items"])
    get_settings.cache_clear()


async def test_subscriptions_page_in_creation_order_and_a_forged_cursor_is_refused(
    client, allow_loopback
):
    created = [(await subscribe(client, f"http://127.0.0.1:9/hooks/{i}"))["id"] for i in range(5)]
    pages = await collect_pages(client, "/v1/webhook-subscriptions", limit=2)
    assert [len(p) for p in pages] == [2, 2, 1]
    listed = [s for p in pages for s in p]
    assert sorted(s["id"] for s in listed) == sorted(created), "each once"
    assert [s["created_at"] for s in listed] == sorted(s["created_at"] for s in listed)

    forged = encode_cursor(["not a time", created[0]])
    problem = assert_problem(
        await client.get("/v1/webhook-subscriptions", params={"cursor": forged}), 422
    )
    assert problem["errors"]


async def test_assignment_is_delivered_signed_and_logged(
    committed_client, factory, receiver, allow_loopback
):
    client = committed_client
    sub = await subscribe(client, receiver.url, ["customer.assigned", "customer.unassigned"])
    await create_tiers(client)
    manager = await create_manager(client)
    customer = await create_customer(client)
    moved = await client.patch(
        f"/v1/customers/{customer['id']}",
        json={"manager_id": manager["id"]},
        headers={"X-Request-ID": "crm-sync-42"},
    )
    assert moved.status_code == 200, moved.text
    await assign(client, customer["id"], None)

    assert await dispatcher.drain(factory, settings=SETTINGS) == 2
    assert [r.json["type"] for r in receiver.received] == [
        "customer.assigned",
        "customer.unassigned",
    ]
    first = receiver.received[0]
    payload = first.verify(sub["secret"])
    assert payload["data"]["customer_id"] == customer["id"]
    assert payload["data"]["manager_id"] == manager["id"]
    assert payload["data"]["old_manager_id"] is None
    assert payload["data"]["reason"] == "manual"
    assert payload["data"]["correlation_id"] == "crm-sync-42", "traceable to the request"
    assert receiver.received[1].json["data"]["old_manager_id"] == manager["id"]
    with pytest.raises(WebhookVerificationError):
        first.verify("whsec_" + "QUJD" * 8)

    log = await deliveries(client, subscription_id=sub["id"])
    assert {d["status"] for d in log} == {"delivered"}
    assert all(d["attempts"] == 1 and d["last_status_code"] == 200 for d in log)
    detail = await ok(await client.get(f"/v1/webhook-deliveries/{log[0]['id']}"))
    assert len(detail["attempt_log"]) == 1 and detail["attempt_log"][0]["latency_ms"] >= 0
    assert detail["payload"]["type"] == log[0]["event_type"]


async def test_no_subscriber_no_event_and_types_filter(
    committed_client, factory, receiver, allow_loopback
):
    client = committed_client
    await create_tiers(client)
    manager = await create_manager(client)
    customer = await create_customer(client)
    await assign(client, customer["id"], manager["id"])  # nobody subscribed yet
    await subscribe(client, receiver.url, ["handover.completed"])
    await assign(client, customer["id"], None)  # not a subscribed type
    assert await dispatcher.drain(factory, settings=SETTINGS) == 0
    assert receiver.received == []


async def test_500_then_200_is_delivered_on_the_retry_with_the_same_id(
    committed_client, factory, receiver, allow_loopback
):
    client = committed_client
    sub = await subscribe(client, receiver.url)
    await create_tiers(client)
    manager = await create_manager(client)
    customer = await create_customer(client)
    receiver.answers = [(500, {})]
    await assign(client, customer["id"], manager["id"])

    now = datetime.now(UTC)
    assert await dispatcher.drain(factory, settings=SETTINGS, now=now) == 1
    (pending,) = await deliveries(client)
    assert pending["status"] == "pending" and pending["last_status_code"] == 500
    retry_at = datetime.fromisoformat(pending["next_attempt_at"])
    assert timedelta(seconds=4) <= retry_at - now <= timedelta(seconds=6), "5 s ± jitter"
    assert await dispatcher.drain(factory, settings=SETTINGS, now=now) == 0, "not before due"

    assert await dispatcher.drain(factory, settings=SETTINGS, now=now + timedelta(seconds=7)) == 1
    (done,) = await deliveries(client)
    assert done["status"] == "delivered" and done["attempts"] == 2
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    second.verify(sub["secret"])


async def test_retry_after_is_honoured_and_redirects_are_not_followed(
    committed_client, factory, receiver, allow_loopback
):
    client = committed_client
    await subscribe(client, receiver.url)
    await create_tiers(client)
    manager = await create_manager(client)
    a = await create_customer(client)
    b = await create_customer(client)
    receiver.answers = [(503, {"Retry-After": "600"}), (302, {"Location": "http://127.0.0.1:1/"})]
    await assign(client, a["id"], manager["id"])
    await assign(client, b["id"], manager["id"])
    now = datetime.now(UTC)
    assert await dispatcher.drain(factory, settings=SETTINGS, now=now) == 2
    log = {d["customer_id"]: d for d in await deliveries(client)}
    assert len(receiver.received) == 2, "the redirect was not followed"
    codes = sorted(d["last_status_code"] for d in log.values())
    assert codes == [302, 503]
    for d in log.values():
        assert d["status"] == "pending"
        wait = datetime.fromisoformat(d["next_attempt_at"]) - now
        if d["last_status_code"] == 503:
            assert wait >= timedelta(seconds=600)
        else:
            assert wait < timedelta(seconds=10)


async def test_410_disables_the_subscription(committed_client, factory, receiver, allow_loopback):
    client = committed_client
    sub = await subscribe(client, receiver.url)
    await create_tiers(client)
    manager = await create_manager(client)
    a = await create_customer(client)
    receiver.default = (410, {})
    await assign(client, a["id"], manager["id"])
    await dispatcher.drain(factory, settings=SETTINGS)
    state = await ok(await client.get(f"/v1/webhook-subscriptions/{sub['id']}"))
    assert state["enabled"] is False and "410" in state["disabled_reason"]
    (d,) = await deliveries(client)
    assert d["status"] == "failed"
    assert_problem(await client.post(f"/v1/webhook-deliveries/{d['id']}/redeliver"), 409)
    # a disabled subscription gets no new deliveries
    await assign(client, a["id"], None)
    assert len(await deliveries(client)) == 1


async def test_worker_killed_between_send_and_record_redelivers_same_id(
    committed_client, factory, receiver, allow_loopback
):
    client = committed_client
    sub = await subscribe(client, receiver.url)
    await create_tiers(client)
    manager = await create_manager(client)
    customer = await create_customer(client)
    await assign(client, customer["id"], manager["id"])

    now = datetime.now(UTC)
    async with session_scope(factory) as session:  # the worker claims...
        (claimed,) = await dispatcher.claim(session, now=now, limit=10, lease=timedelta(seconds=12))
    async with dispatcher.build_client(SETTINGS) as http:  # ...sends, and dies before recording
        sent = await dispatcher.send(http, claimed, allow_private=True)
    assert sent.ok and len(receiver.received) == 1

    (lost,) = await deliveries(client)
    assert lost["status"] == "pending", "nothing recorded: still pending"
    assert await dispatcher.drain(factory, settings=SETTINGS, now=now) == 0, "leased"
    later = now + timedelta(seconds=60)
    assert await dispatcher.drain(factory, settings=SETTINGS, now=later) == 1
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert second.verify(sub["secret"]) == first.verify(sub["secret"])
    (done,) = await deliveries(client)
    assert done["status"] == "delivered"


async def test_receiver_down_keeps_everything_pending_in_customer_order(
    committed_client, factory, allow_loopback
):
    client = committed_client
    await subscribe(client, closed_port_url())
    await create_tiers(client)
    m1 = await create_manager(client)
    m2 = await create_manager(client)
    customers = [await create_customer(client) for _ in range(3)]
    for c in customers:
        await assign(client, c["id"], m1["id"])
    await assign(client, customers[0]["id"], m2["id"])  # a second event for the same customer

    now = datetime.now(UTC)
    attempted = await dispatcher.drain(factory, settings=SETTINGS, now=now)
    assert attempted == 3, "the customer's second event waits behind its first"
    log = await deliveries(client)
    assert len(log) == 4 and {d["status"] for d in log} == {"pending"}
    for d in log:
        assert d["next_attempt_at"] is not None
    tried = [d for d in log if d["attempts"] == 1]
    assert len(tried) == 3 and all(d["last_error"] for d in tried)
    waiting = [d for d in log if d["attempts"] == 0]
    assert len(waiting) == 1 and waiting[0]["customer_id"] == customers[0]["id"]


async def test_rotation_signs_with_both_secrets_during_grace(
    committed_client, factory, receiver, allow_loopback
):
    client = committed_client
    sub = await subscribe(client, receiver.url)
    rotated = await ok(
        await client.post(f"/v1/webhook-subscriptions/{sub['id']}/rotate-secret", json={})
    )
    assert rotated["secret"] != sub["secret"] and rotated["previous_secret_expires_at"]
    await create_tiers(client)
    manager = await create_manager(client)
    customer = await create_customer(client)
    await assign(client, customer["id"], manager["id"])
    await dispatcher.drain(factory, settings=SETTINGS)
    (got,) = receiver.received
    got.verify(sub["secret"])
    got.verify(rotated["secret"])
    assert len(got.headers["webhook-signature"].split(" ")) == 2

    await ok(
        await client.post(
            f"/v1/webhook-subscriptions/{sub['id']}/rotate-secret", json={"grace_hours": 0}
        )
    )
    await assign(client, customer["id"], None)
    await dispatcher.drain(factory, settings=SETTINGS)
    with pytest.raises(WebhookVerificationError):
        receiver.received[1].verify(rotated["secret"])


async def test_manual_redelivery_sends_again(committed_client, factory, receiver, allow_loopback):
    client = committed_client
    sub = await subscribe(client, receiver.url)
    await create_tiers(client)
    manager = await create_manager(client)
    customer = await create_customer(client)
    await assign(client, customer["id"], manager["id"])
    await dispatcher.drain(factory, settings=SETTINGS)
    (d,) = await deliveries(client)
    again = await ok(await client.post(f"/v1/webhook-deliveries/{d['id']}/redeliver"), 202)
    assert again["status"] == "pending"
    await dispatcher.drain(factory, settings=SETTINGS)
    assert len(receiver.received) == 2
    assert Webhook(sub["secret"]).verify(
        receiver.received[1].body.decode(), receiver.received[1].headers
    )
    assert_problem(await client.post("/v1/webhook-deliveries/999999/redeliver"), 404)


async def test_small_pipelined_batches_keep_each_customers_order(
    committed_client, factory, receiver, allow_loopback
):
    client = committed_client
    await subscribe(client, receiver.url, ["customer.assigned"])
    await create_tiers(client)
    managers = [await create_manager(client, capacity=100) for _ in range(3)]
    customers = [await create_customer(client) for _ in range(3)]
    expected = {c["id"]: [] for c in customers}
    for round_ in range(4):
        for c in customers:
            target = managers[(round_ + customers.index(c)) % 3]["id"]
            await assign(client, c["id"], target)
            expected[c["id"]].append(target)

    # batches of 2 claimed while the previous one is sent and recorded
    assert await dispatcher.drain(factory, settings=SETTINGS, limit=2) == 12
    got = {c["id"]: [] for c in customers}
    for r in receiver.received:
        got[r.json["data"]["customer_id"]].append(r.json["data"]["manager_id"])
    assert got == expected
    assert {d["status"] for d in await deliveries(client, limit=50)} == {"delivered"}


async def test_the_target_check_applies_at_delivery(
    committed_client, factory, receiver, allow_loopback
):
    client = committed_client
    await subscribe(client, receiver.url, ["customer.assigned"])  # allowed when saved
    await create_tiers(client)
    await assign(
        client, (await create_customer(client))["id"], (await create_manager(client))["id"]
    )

    strict = Settings(environment="test", webhooks_allow_private_targets=False)
    assert await dispatcher.drain(factory, settings=strict) == 1
    assert receiver.received == [], "nothing is sent to a loopback address"
    (log,) = await deliveries(client)
    assert log["status"] == "pending" and log["last_status_code"] is None
    assert "not public" in log["last_error"]


async def test_a_bulk_move_reaches_a_batch_subscriber_in_batches(
    committed_client, factory, receiver, allow_loopback
):
    from tests.integration.test_handovers import act, create, items, portfolio

    client = committed_client
    p = await portfolio(client, customers=5)
    batched = await ok(
        await client.post(
            "/v1/webhook-subscriptions",
            json={"url": receiver.url, "event_types": ["ownership.changed.batch"], "batch_size": 2},
        ),
        201,
    )
    assert batched["batch_size"] == 2
    with running_receiver() as everything:
        await subscribe(client, everything.url, ["*"])
        h = await create(client, p["leaving"]["id"])
        await act(client, h["id"], "plan")
        await act(client, h["id"], "approve")
        await act(client, h["id"], "execute")
        await dispatcher.drain(factory, settings=SETTINGS)
        assert "ownership.changed.batch" not in {r.json["type"] for r in everything.received}
        assert len(everything.of_type("customer.assigned")) == 5

    batches = [r.verify(batched["secret"])["data"] for r in receiver.received]
    assert {r.json["type"] for r in receiver.received} == {"ownership.changed.batch"}
    assert sorted(b["sequence"] for b in batches) == [1, 2, 3]
    assert {(b["batches"], b["total"], b["handover_id"]) for b in batches} == {(3, 5, h["id"])}
    assert sorted(b["count"] for b in batches) == [1, 2, 2]
    moved = await items(client, h["id"])
    changes = [c for b in batches for c in b["changes"]]
    assert sorted(c["customer_id"] for c in changes) == sorted(moved)
    for c in changes:
        assert c["old_manager_id"] == p["leaving"]["id"]
        assert c["manager_id"] == moved[c["customer_id"]]["final_manager_id"]


NOT_GLOBAL_UNICAST = [
    "http://[::127.0.0.1]/x",  # IPv4-compatible
    "http://[::ffff:127.0.0.1]/x",  # IPv4-mapped
    "http://[::ffff:a9fe:a9fe]/x",  # IPv4-mapped metadata, hex spelling
    "http://[::ffff:0:7f00:1]/x",  # IPv4-translated
    "http://[64:ff9b::a9fe:a9fe]/x",  # NAT64 to 169.254.169.254
    "http://[2002:7f00:1::]/x",  # 6to4 around 127.0.0.1
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/x",  # Teredo
    "http://[fec0::1]/x",  # site-local
    "http://[fd00::1]/x",  # unique-local
    "http://[fe80::1]/x",  # link-local
    "http://[ff02::1]/x",  # multicast
    "http://[::]/x",
    "http://2130706433/x",  # 127.0.0.1 in decimal
    "http://0x7f.1/x",  # and in hex, short
    "http://0177.0.0.1/x",  # and in octal
    "http://0.0.0.0/x",
    "http://100.64.0.1/x",  # shared address space
    "http://192.168.0.1/x",
    "http://224.0.0.1/x",
]


@pytest.mark.parametrize("url", NOT_GLOBAL_UNICAST)
async def test_every_form_of_a_non_public_address_is_refused(client, url):
    response = await client.post(
        "/v1/webhook-subscriptions", json={"url": url, "event_types": ["*"]}
    )
    assert assert_problem(response, 422)["code"] == "webhook_target_not_allowed", url


async def test_a_public_6to4_address_is_accepted(client):
    response = await client.post(
        "/v1/webhook-subscriptions",
        json={"url": "http://[2002:808:808::1]/x", "event_types": ["*"]},  # 6to4 of 8.8.8.8
    )
    assert response.status_code == 201, response.text


async def test_each_delivery_connects_only_to_the_address_it_checked(
    committed_client, factory, receiver, monkeypatch
):
    """DNS rebinding: the host resolves to a public address when the subscription is saved and
    to loopback when the delivery connects; the delivery is refused and nothing is sent."""
    from app.webhooks import targets

    port = int(receiver.url.rsplit(":", 1)[1].split("/")[0])
    answers = {"rebind.example.com": ["93.184.216.34"]}

    async def fake_dns(host: str, port: int) -> list[str]:
        return answers[host]

    monkeypatch.setattr(targets, "resolve", fake_dns)
    client = committed_client
    await subscribe(client, f"http://rebind.example.com:{port}/hooks", ["customer.assigned"])
    await create_tiers(client)
    manager = await create_manager(client)
    await create_customer(client, manager_id=manager["id"])

    answers["rebind.example.com"] = ["127.0.0.1"]  # the attacker's DNS changes its answer
    strict = Settings(environment="test", webhooks_allow_private_targets=False)
    assert await dispatcher.drain(factory, settings=strict) == 1
    assert receiver.received == []
    (failed,) = await deliveries(client)
    assert failed["status"] == "pending" and "not public" in failed["last_error"]

    # The client itself refuses to connect there, whatever checked the URL before.
    claimed = (await _claim_all(factory))[0]
    async with dispatcher.build_client(strict) as http:
        refused = await dispatcher.send(http, claimed, allow_private=True)
    assert not refused.ok and "not public" in refused.error
    assert receiver.received == []

    # The client connects to the address it resolved and checked, not to a second lookup:
    # "rebind.example.com" resolves nowhere in real DNS, yet the delivery arrives.
    async with dispatcher.build_client(SETTINGS) as http:
        sent = await dispatcher.send(http, claimed, allow_private=True)
    assert sent.ok, sent.error
    assert len(receiver.received) == 1


async def _claim_all(factory):
    from datetime import UTC, datetime

    async with factory() as session, session.begin():
        return await dispatcher.claim(
            session, now=datetime.now(UTC) + timedelta(days=2), limit=10, lease=timedelta(0)
        )
