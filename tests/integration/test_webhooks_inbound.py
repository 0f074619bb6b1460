"""Inbound webhooks: each adapter's signature check on realistic payloads, the inbox with
per-event deduplication, asynchronous processing, and the end-to-end path from a signed
`manager.deactivated` to signed `customer.assigned` deliveries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from standardwebhooks import Webhook

from app.core.pagination import encode_cursor
from app.settings import Settings, get_settings
from app.webhooks.inbound.processing import process_event
from app.webhooks.outbound import dispatcher
from tests.integration.factories import (
    assert_problem,
    collect_pages,
    create_customer,
    create_manager,
    create_tiers,
    ok,
)
from tests.integration.webhook_receiver import running_receiver

HS_SECRET = "hubspot-client-secret-0123456789"
GENERIC_SECRET = "in-house-crm-secret-abcdef"


async def source(client, name, adapter, **fields):
    body = {"name": name, "adapter": adapter, **fields}
    return await ok(await client.post("/v1/webhook-sources", json=body), 201)


def standard_request(secret, event, *, msg_id=None, at=None):
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    body = json.dumps(event)
    at = at or datetime.now(UTC)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body),
        "content-type": "application/json",
    }
    return body.encode(), headers


def hubspot_headers(secret, body: bytes, url, *, at_ms=None):
    stamp = str(at_ms if at_ms is not None else int(time.time() * 1000))
    message = b"POST" + url.encode() + body + stamp.encode()
    signature = base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest())
    return {
        "X-HubSpot-Signature-v3": signature.decode(),
        "X-HubSpot-Request-Timestamp": stamp,
        "X-HubSpot-Signature-Version": "v3",
        "content-type": "application/json",
    }


def hubspot_event(event_id, **fields):
    return {
        "eventId": event_id,
        "subscriptionId": 2881778,
        "portalId": 62515,
        "appId": 1160452,
        "occurredAt": int(time.time() * 1000),
        "attemptNumber": 0,
        "changeSource": "CRM",
        **fields,
    }


def generic_headers(secret, body: bytes):
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Signature-256": f"sha256={digest}", "content-type": "application/json"}


async def inbox(client, **params):
    return (await ok(await client.get("/v1/webhooks/inbound-events", params=params)))["items"]


async def test_standard_signature_checks_and_duplicates(client):
    src = await source(client, "crm", "standard")
    secret = src["secret"]
    assert secret.startswith("whsec_")
    assert "secret" not in await ok(await client.get(f"/v1/webhook-sources/{src['id']}"))
    event = {
        "type": "customer.churned",
        "timestamp": "2026-11-25T09:00:00Z",
        "data": {"external_ref": "crm-1"},
    }
    url = "/v1/webhooks/inbound/crm"

    body, headers = standard_request(secret, event, msg_id="msg_1")
    first = await ok(await client.post(url, content=body, headers=headers), 202)
    assert first["received"] == 1 and first["duplicates"] == 0
    again = await ok(await client.post(url, content=body, headers=headers), 200)
    assert again["duplicates"] == 1 and again["events"][0]["id"] == first["events"][0]["id"]

    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    bad = [
        standard_request(other, event),  # wrong secret
        (body.replace(b"crm-1", b"crm-2"), headers),  # tampered body
        standard_request(secret, event, at=datetime.now(UTC) - timedelta(minutes=6)),  # stale
        standard_request(secret, event, at=datetime.now(UTC) + timedelta(minutes=6)),  # future
        (body, {k: v for k, v in headers.items() if k != "webhook-signature"}),  # missing
        (body, {**headers, "webhook-signature": "garbage"}),  # malformed
        (body, {**headers, "webhook-timestamp": "soon"}),  # malformed timestamp
    ]
    for b, h in bad:
        problem = assert_problem(await client.post(url, content=b, headers=h), 401)
        assert problem["code"] == "webhook_signature_invalid"
    assert_problem(
        await client.post("/v1/webhooks/inbound/nobody", content=body, headers=headers), 404
    )
    events = await inbox(client, source="crm")
    assert len(events) == 1 and events[0]["event_id"] == "msg_1"
    assert events[0]["status"] == "received"


async def test_rotated_source_secret_is_accepted_with_the_old_one_during_grace(client):
    src = await source(client, "crm", "standard")
    url = "/v1/webhooks/inbound/crm"
    event = {"type": "customer.churned", "data": {"external_ref": "crm-1"}}

    def signed(secret):
        return standard_request(secret, event)

    rotated = await ok(await client.post(f"/v1/webhook-sources/{src['id']}/rotate-secret"))
    assert rotated["secret"] != src["secret"] and rotated["previous_secret_expires_at"]
    for secret in (src["secret"], rotated["secret"]):
        body, headers = signed(secret)
        await ok(await client.post(url, content=body, headers=headers), 202)

    given = "whsec_" + base64.b64encode(b"g" * 32).decode()
    chosen = await ok(
        await client.post(
            f"/v1/webhook-sources/{src['id']}/rotate-secret",
            json={"secret": given, "grace_hours": 0},
        )
    )
    assert chosen["secret"] == given and chosen["previous_secret_expires_at"] is None
    body, headers = signed(given)
    await ok(await client.post(url, content=body, headers=headers), 202)
    for old in (src["secret"], rotated["secret"]):
        body, headers = signed(old)
        assert_problem(await client.post(url, content=body, headers=headers), 401)
    assert len(await inbox(client, source="crm")) == 3


async def test_inbox_pages_newest_first_and_a_forged_cursor_is_refused(client):
    src = await source(client, "crm", "standard")
    event = {"type": "customer.churned", "data": {"external_ref": "crm-1"}}
    for i in range(5):
        body, headers = standard_request(src["secret"], event, msg_id=f"msg_{i}")
        await ok(await client.post("/v1/webhooks/inbound/crm", content=body, headers=headers), 202)
    pages = await collect_pages(client, "/v1/webhooks/inbound-events", limit=2, source="crm")
    assert [len(p) for p in pages] == [2, 2, 1]
    listed = [e for p in pages for e in p]
    assert sorted(e["event_id"] for e in listed) == [f"msg_{i}" for i in range(5)], "none twice"
    assert [e["received_at"] for e in listed] == sorted(
        (e["received_at"] for e in listed), reverse=True
    )

    forged = encode_cursor(["not a time", listed[0]["id"]])
    problem = assert_problem(
        await client.get("/v1/webhooks/inbound-events", params={"cursor": forged}), 422
    )
    assert problem["errors"]


async def test_a_disabled_source_receives_nothing_and_names_are_unique(client):
    src = await source(client, "crm", "standard")
    assert_problem(
        await client.post("/v1/webhook-sources", json={"name": "crm", "adapter": "hubspot"}), 409
    )
    event = {"type": "customer.churned", "data": {"external_ref": "crm-1"}}
    changed = await ok(
        await client.patch(f"/v1/webhook-sources/{src['id']}", json={"enabled": False})
    )
    assert changed["enabled"] is False and changed["adapter"] == "standard"
    body, headers = standard_request(src["secret"], event)
    assert_problem(
        await client.post("/v1/webhooks/inbound/crm", content=body, headers=headers), 404
    )
    await ok(await client.patch(f"/v1/webhook-sources/{src['id']}", json={"enabled": True}))
    await ok(await client.post("/v1/webhooks/inbound/crm", content=body, headers=headers), 202)


async def test_hubspot_batch_is_deduplicated_per_event(client):
    await source(client, "hubspot", "hubspot", secret=HS_SECRET)
    url = "http://test/v1/webhooks/inbound/hubspot"
    batch = [
        hubspot_event(
            101,
            subscriptionType="company.propertyChange",
            objectId=90210,
            propertyName="baton_tier",
            propertyValue="key",
        ),
        hubspot_event(102, subscriptionType="company.deletion", objectId=90211),
        hubspot_event(103, subscriptionType="contact.creation", objectId=5),
    ]
    body = json.dumps(batch).encode()
    got = await ok(
        await client.post(url, content=body, headers=hubspot_headers(HS_SECRET, body, url)), 202
    )
    assert got["received"] == 3 and got["duplicates"] == 0

    second = [batch[1], hubspot_event(104, subscriptionType="company.creation", objectId=7)]
    body2 = json.dumps(second).encode()
    got2 = await ok(
        await client.post(url, content=body2, headers=hubspot_headers(HS_SECRET, body2, url)), 202
    )
    assert got2["received"] == 1 and got2["duplicates"] == 1
    assert [e["duplicate"] for e in got2["events"]] == [True, False]

    events = {e["event_id"]: e for e in await inbox(client, source="hubspot")}
    assert set(events) == {"101", "102", "103", "104"}
    assert events["101"]["type"] == "customer.tier_changed"
    assert events["102"]["type"] == "customer.churned"
    assert events["103"]["status"] == "ignored" and "contact.creation" in events["103"]["error"]

    stale = hubspot_headers(HS_SECRET, body, url, at_ms=int((time.time() - 360) * 1000))
    future = hubspot_headers(HS_SECRET, body, url, at_ms=int((time.time() + 360) * 1000))
    headers = hubspot_headers(HS_SECRET, body, url)
    for h, b in [
        (hubspot_headers("wrong-secret-wrong-secret", body, url), body),
        (headers, body.replace(b"90210", b"90212")),
        (stale, body),
        (future, body),
        ({k: v for k, v in headers.items() if k != "X-HubSpot-Signature-v3"}, body),
        ({**headers, "X-HubSpot-Request-Timestamp": "yesterday"}, body),
    ]:
        assert_problem(await client.post(url, content=b, headers=h), 401)
    assert len(await inbox(client, source="hubspot")) == 4


async def test_generic_hmac(client):
    await source(client, "inhouse", "generic-hmac", secret=GENERIC_SECRET)
    url = "/v1/webhooks/inbound/inhouse"
    body = json.dumps(
        {"id": "evt-1", "type": "customer.churned", "data": {"external_ref": "x-1"}}
    ).encode()
    await ok(
        await client.post(url, content=body, headers=generic_headers(GENERIC_SECRET, body)), 202
    )
    await ok(
        await client.post(url, content=body, headers=generic_headers(GENERIC_SECRET, body)), 200
    )
    for h, b in [
        (generic_headers("another-secret-value", body), body),
        (generic_headers(GENERIC_SECRET, body), body.replace(b"x-1", b"x-2")),
        ({"content-type": "application/json"}, body),
        ({"X-Signature-256": "sha256=zz"}, body),
    ]:
        assert_problem(await client.post(url, content=b, headers=h), 401)
    no_id = json.dumps({"type": "customer.churned", "data": {}}).encode()
    assert_problem(
        await client.post(url, content=no_id, headers=generic_headers(GENERIC_SECRET, no_id)), 422
    )
    assert len(await inbox(client, source="inhouse")) == 1


async def _process_all(factory):
    async with factory() as session:
        ids = list(
            await session.scalars(
                text(
                    "SELECT id FROM webhook_inbound_events"
                    " WHERE status = 'received' ORDER BY received_at"
                )
            )
        )
    return [await process_event(factory, i) for i in ids]


async def test_a_batch_queues_one_job_per_new_handled_event(committed_client, factory):
    client = committed_client
    await source(client, "hubspot", "hubspot", secret=HS_SECRET)
    url = "http://test/v1/webhooks/inbound/hubspot"
    batch = [
        hubspot_event(201, subscriptionType="company.deletion", objectId=1),
        hubspot_event(202, subscriptionType="company.creation", objectId=2),
        hubspot_event(203, subscriptionType="contact.creation", objectId=3),  # ignored
    ]
    body = json.dumps(batch).encode()
    headers = hubspot_headers(HS_SECRET, body, url)

    async def queued():
        async with factory() as session:
            payloads = await session.scalars(
                text(
                    "SELECT convert_from(payload, 'UTF8') FROM pgqueuer"
                    " WHERE entrypoint = 'process_inbound_webhook'"
                )
            )
            return sorted(payloads)

    await ok(await client.post(url, content=body, headers=headers), 202)
    handled = sorted(e["id"] for e in await inbox(client) if e["status"] == "received")
    assert len(handled) == 2
    assert await queued() == handled
    await ok(await client.post(url, content=body, headers=headers), 200)
    assert await queued() == handled, "duplicates are not queued again"


async def test_processing_statuses_and_retry(committed_client, factory):
    client = committed_client
    src = await source(client, "crm", "standard")
    await create_tiers(client)
    await create_manager(client, level=4, capacity=40)
    url = "/v1/webhooks/inbound/crm"

    async def post(event):
        body, headers = standard_request(src["secret"], event)
        return await ok(await client.post(url, content=body, headers=headers), 202)

    await post(
        {
            "type": "customer.upserted",
            "timestamp": "2026-11-25T09:00:00Z",
            "data": {"external_ref": "crm-7", "name": "Acme", "tier": "standard"},
        }
    )
    await post(
        {
            "type": "customer.satisfaction_recorded",
            "timestamp": "2026-11-25T09:00:00Z",
            "data": {"external_ref": "crm-8", "score": "8.5"},
        }
    )
    await post(
        {
            "type": "customer.upserted",
            "timestamp": "2026-11-25T09:00:00Z",
            "data": {"external_ref": "crm-9", "name": "Bad", "tier": "no-such-tier"},
        }
    )
    assert sorted(await _process_all(factory)) == ["failed", "failed", "processed"]

    customers = (await ok(await client.get("/v1/customers", params={"q": "Acme"})))["items"]
    assert customers[0]["external_ref"] == "crm-7" and customers[0]["manager_id"], "placed"
    failed = await inbox(client, status="failed")
    assert len(failed) == 2 and all(e["error"] for e in failed)
    satisfaction = next(e for e in failed if e["type"] == "customer.satisfaction_recorded")

    await create_customer(client, external_ref="crm-8")
    retried = await ok(
        await client.post(f"/v1/webhooks/inbound-events/{satisfaction['id']}/retry"), 202
    )
    assert retried["status"] == "received"
    await _process_all(factory)
    done = await ok(await client.get(f"/v1/webhooks/inbound-events/{satisfaction['id']}"))
    assert done["status"] == "processed" and done["attempts"] == 2
    assert_problem(await client.post(f"/v1/webhooks/inbound-events/{done['id']}/retry"), 409)


async def test_a_deal_won_in_the_crm_is_a_revenue_event(committed_client, factory):
    client = committed_client
    src = await source(client, "crm", "standard")
    await create_tiers(client)
    customer = await create_customer(client, external_ref="crm-42")
    url = "/v1/webhooks/inbound/crm"
    deal = {
        "type": "customer.revenue_recorded",
        "timestamp": "2026-11-25T09:00:00Z",
        "data": {
            "external_ref": "crm-42",
            "amount": "4200.00",
            "currency": "EUR",
            "occurred_at": "2026-11-20T10:00:00Z",
            "external_id": "deal-42",
        },
    }
    for _ in range(2):  # two deliveries of the same deal under different message ids
        body, headers = standard_request(src["secret"], deal)
        await ok(await client.post(url, content=body, headers=headers), 202)
    assert await _process_all(factory) == ["processed", "processed"]
    events = await ok(await client.get(f"/v1/customers/{customer['id']}/revenue"))
    assert [(e["amount"], e["currency"], e["source"]) for e in events["items"]] == [
        ("4200.00", "EUR", "crm")
    ]


async def test_manager_deactivated_end_to_end_to_signed_deliveries(
    committed_client, factory, monkeypatch
):
    client = committed_client
    monkeypatch.setenv("BATON_WEBHOOKS_ALLOW_PRIVATE_TARGETS", "true")
    get_settings.cache_clear()
    try:
        with running_receiver() as receiver:
            src = await source(client, "crm", "standard")
            await create_tiers(client)
            leaving = await create_manager(client, level=4, capacity=100, external_ref="crm-mgr-1")
            await create_manager(client, level=4, capacity=40)
            await create_manager(client, level=4, capacity=40)
            owned = [
                await create_customer(client, tier="standard", manager_id=leaving["id"])
                for _ in range(4)
            ]
            # subscribed after the set-up: only what the webhook causes is delivered
            sub = await ok(
                await client.post(
                    "/v1/webhook-subscriptions",
                    json={
                        "url": receiver.url,
                        "event_types": ["customer.assigned", "handover.planned"],
                    },
                ),
                201,
            )
            body, headers = standard_request(
                src["secret"],
                {
                    "type": "manager.deactivated",
                    "timestamp": "2026-11-25T09:00:00Z",
                    "data": {"external_ref": "crm-mgr-1"},
                },
            )
            await ok(
                await client.post("/v1/webhooks/inbound/crm", content=body, headers=headers), 202
            )
            assert await _process_all(factory) == ["processed"]
            (event,) = await inbox(client, source="crm")
            handover_id = event["result"]["handover_id"]
            handover = await ok(await client.get(f"/v1/handovers/{handover_id}"))
            assert handover["state"] == "planned" and handover["from_manager_id"] == leaving["id"]
            manager = await ok(await client.get(f"/v1/managers/{leaving['id']}"))
            assert manager["status"] == "departing"

            await ok(await client.post(f"/v1/handovers/{handover_id}/approve"))
            await ok(await client.post(f"/v1/handovers/{handover_id}/execute"))
            settings = Settings(environment="test", webhooks_allow_private_targets=True)
            await dispatcher.drain(factory, settings=settings)

            planned = receiver.of_type("handover.planned")
            assert len(planned) == 1
            assert planned[0].json["data"]["correlation_id"] == f"inbound:{event['id']}"
            assigned = receiver.of_type("customer.assigned")
            assert sorted(r.json["data"]["customer_id"] for r in assigned) == sorted(
                c["id"] for c in owned
            )
            for r in assigned:
                data = r.verify(sub["secret"])["data"]
                assert data["old_manager_id"] == leaving["id"]
                assert data["handover_id"] == handover_id and data["reason"] == "handover"
            assert len({r.headers["webhook-id"] for r in assigned}) == 4
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


async def test_a_crm_lowering_an_owners_level_records_the_customers_it_no_longer_may_own(
    committed_client, factory
):
    """`manager.upserted` changes a manager as a PATCH does, through the same flow: the owners
    the change makes non-compliant are recorded, as open violations a user sees."""
    client = committed_client
    src = await source(client, "crm", "standard")
    await create_tiers(client)
    owner = await create_manager(client, level=3, capacity=40, external_ref="crm-m-1")
    key = await create_customer(client, tier="key")
    small = await create_customer(client, tier="long_tail")
    for customer in (key, small):
        moved = await client.patch(
            f"/v1/customers/{customer['id']}", json={"manager_id": owner["id"]}
        )
        await ok(moved)
    event = {
        "type": "manager.upserted",
        "timestamp": "2026-11-25T09:00:00Z",
        "data": {"external_ref": "crm-m-1", "level": 2},
    }
    body, headers = standard_request(src["secret"], event)
    await ok(await client.post("/v1/webhooks/inbound/crm", content=body, headers=headers), 202)
    assert await _process_all(factory) == ["processed"]

    assert (await ok(await client.get(f"/v1/managers/{owner['id']}")))["level"] == 2
    violations = await ok(await client.get("/v1/violations", params={"state": "open"}))
    assert [(v["customer_id"], v["manager_id"]) for v in violations["items"]] == [
        (key["id"], owner["id"])
    ]
    (processed,) = await inbox(client, status="processed")
    assert processed["result"]["violations_detected"] == 1
