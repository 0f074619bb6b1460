"""Every inbound adapter from the wire to the state: a request signed the way the CRM signs
it is received, processed as the worker processes it, and the change is read back through
the API (customer created, updated, re-tiered, re-owned, churned; manager deactivated →
handover planned), with mixed batches and the retry of a failed event once its cause is
fixed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hubspot.utils.signature import Signature
from sqlalchemy import text
from standardwebhooks import Webhook

from app.webhooks.inbound.processing import process_event
from tests.integration.factories import (
    assert_problem,
    create_customer,
    create_manager,
    create_tiers,
    ok,
)

HS_SECRET = "hubspot-app-client-secret-0123456789"
GENERIC_SECRET = "in-house-crm-secret-abcdef"
ZOHO_TOKEN = "TOKEN_FOR_VERIFICATION_OF_1000000068001"
ZOHO_CHANNEL = "1000000068001"


async def add_source(client, name: str, adapter: str, **fields: Any) -> dict[str, Any]:
    body = {"name": name, "adapter": adapter, **fields}
    return await ok(await client.post("/v1/webhook-sources", json=body), 201)


async def process_all(factory) -> list[str | None]:
    """What the worker does with each queued inbound event, oldest first."""
    async with factory() as session:
        ids = list(
            await session.scalars(
                text(
                    "SELECT id FROM webhook_inbound_events"
                    " WHERE status = 'received' ORDER BY received_at, event_id"
                )
            )
        )
    return [await process_event(factory, i) for i in ids]


async def inbox(client, source: str) -> dict[str, dict[str, Any]]:
    got = await ok(
        await client.get("/v1/webhooks/inbound-events", params={"source": source, "limit": 100})
    )
    return {e["event_id"]: e for e in got["items"]}


async def customer_by_ref(client, ref: str) -> dict[str, Any]:
    got = await ok(await client.get("/v1/customers", params={"limit": 500}))
    matches = [c for c in got["items"] if c["external_ref"] == ref]
    assert len(matches) == 1, got
    return matches[0]


# -- Standard Webhooks ------------------------------------------------------------------------
def standard_post(secret: str, event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    msg_id = f"msg_{uuid.uuid4().hex}"
    body = json.dumps(event)
    at = datetime.now(UTC)
    return body.encode(), {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body),
        "content-type": "application/json",
    }


async def test_standard_adapter_changes_customers_and_drafts_a_handover(committed_client, factory):
    client = committed_client
    src = await add_source(client, "crm", "standard")
    await create_tiers(client)
    leaving = await create_manager(client, level=4, capacity=100, external_ref="crm-mgr-1")
    other = await create_manager(client, level=4, capacity=100)
    owned = await create_customer(client, tier="standard", manager_id=leaving["id"])

    async def post(type_: str, data: dict[str, Any]) -> None:
        body, headers = standard_post(src["secret"], {"type": type_, "data": data})
        await ok(await client.post("/v1/webhooks/inbound/crm", content=body, headers=headers), 202)

    await post("customer.upserted", {"external_ref": "crm-1", "name": "Acme", "tier": "key"})
    assert await process_all(factory) == ["processed"]
    created = await customer_by_ref(client, "crm-1")
    assert created["name"] == "Acme" and created["tier"] == "key"
    assert created["manager_id"] in {leaving["id"], other["id"]}, "placed on arrival"

    await post("customer.upserted", {"external_ref": "crm-1", "industry": "retail"})
    await post("customer.tier_changed", {"external_ref": "crm-1", "tier": "strategic"})
    assert await process_all(factory) == ["processed", "processed"]
    updated = await customer_by_ref(client, "crm-1")
    assert updated["industry"] == "retail" and updated["tier"] == "strategic"

    await post("customer.churned", {"external_ref": "crm-1"})
    await post("manager.deactivated", {"external_ref": "crm-mgr-1"})
    assert await process_all(factory) == ["processed", "processed"]
    assert (await customer_by_ref(client, "crm-1"))["status"] == "churned"
    events = await inbox(client, "crm")
    handover_id = next(
        e["result"]["handover_id"] for e in events.values() if e["type"] == "manager.deactivated"
    )
    handover = await ok(await client.get(f"/v1/handovers/{handover_id}"))
    assert handover["state"] == "planned" and handover["from_manager_id"] == leaving["id"]
    items = await ok(await client.get(f"/v1/handovers/{handover_id}/items"))
    assert owned["id"] in {i["customer_id"] for i in items["items"]}


# -- HubSpot -----------------------------------------------------------------------------------
def hubspot_post(url: str, events: list[dict[str, Any]]) -> tuple[bytes, dict[str, str]]:
    """The request HubSpot sends: a JSON array, signed v3 over method + URI + body + ms time."""
    body = json.dumps(events).encode()
    stamp = str(int(time.time() * 1000))
    message = b"POST" + url.encode() + body + stamp.encode()
    signature = base64.b64encode(
        hmac.new(HS_SECRET.encode(), message, hashlib.sha256).digest()
    ).decode()
    # the official client's validator agrees that HubSpot would send this signature
    assert Signature.is_valid(
        signature=signature,
        client_secret=HS_SECRET,
        request_body=body.decode(),
        http_uri=url,
        http_method="POST",
        signature_version="v3",
        timestamp=stamp,
    )
    return body, {
        "X-HubSpot-Signature-v3": signature,
        "X-HubSpot-Request-Timestamp": stamp,
        "X-HubSpot-Signature-Version": "v3",
        "Content-Type": "application/json",
        "User-Agent": "HubSpot Connect 2.0 (http://dev.hubspot.com/)",
    }


def hs_event(event_id: int, kind: str, object_id: int, **fields: Any) -> dict[str, Any]:
    return {
        "eventId": event_id,
        "subscriptionId": 2881778,
        "portalId": 62515,
        "appId": 1160452,
        "occurredAt": int(time.time() * 1000),
        "subscriptionType": kind,
        "attemptNumber": 0,
        "objectId": object_id,
        "changeSource": "CRM_UI",
        "changeFlag": "NEW" if kind.endswith("creation") else "UPDATED",
        **fields,
    }


def hs_change(event_id: int, object_id: int, name: str, value: Any) -> dict[str, Any]:
    return hs_event(
        event_id, "company.propertyChange", object_id, propertyName=name, propertyValue=value
    )


async def test_a_signed_hubspot_batch_changes_customers(committed_client, factory):
    client = committed_client
    await add_source(client, "hubspot", "hubspot", secret=HS_SECRET, tier_change_action="apply")
    await create_tiers(client)
    junior = await create_manager(client, level=2, capacity=100)
    senior = await create_manager(client, level=4, capacity=100)
    renamed = await create_customer(client, external_ref="hs-company-1", tier="standard")
    retiered = await create_customer(
        client, external_ref="hs-company-2", tier="standard", manager_id=junior["id"]
    )
    rated = await create_customer(client, external_ref="hs-company-3", tier="standard")
    deleted = await create_customer(client, external_ref="hs-company-4", tier="standard")
    reowned = await create_customer(client, external_ref="hs-company-5", tier="standard")
    url = "http://test/v1/webhooks/inbound/hubspot"
    batch = [
        hs_change(1, 1, "name", "Harbor Freight East"),  # mapped: customer updated
        hs_change(2, 2, "baton_tier", "key"),  # mapped: tier changed, owner re-checked
        hs_change(3, 3, "baton_satisfaction", "7.5"),  # mapped: satisfaction recorded
        hs_event(4, "company.deletion", 4),  # mapped: churned
        hs_change(5, 5, "hubspot_owner_id", "77"),  # owner unknown to Baton yet: fails
        hs_change(6, 1, "phone", "+86 571 0000"),  # unmapped property: ignored
        hs_event(7, "contact.creation", 99),  # unhandled object: ignored
        hs_change(8, 404, "baton_tier", "key"),  # a company Baton does not know: fails
        hs_change(9, 1, "baton_tier", "platinum"),  # no such tier: fails
    ]
    body, headers = hubspot_post(url, batch)
    receipt = await ok(await client.post(url, content=body, headers=headers), 202)
    assert receipt["received"] == 9
    again = await ok(await client.post(url, content=body, headers=headers), 200)
    assert again["duplicates"] == 9, "HubSpot retries are acknowledged, not redone"
    await process_all(factory)

    events = await inbox(client, "hubspot")
    assert {k: e["status"] for k, e in events.items()} == {
        "1": "processed",
        "2": "processed",
        "3": "processed",
        "4": "processed",
        "5": "failed",
        "6": "ignored",
        "7": "ignored",
        "8": "failed",
        "9": "failed",
    }
    assert "phone" in events["6"]["error"] and "contact.creation" in events["7"]["error"]
    assert "hs-owner-77" in events["5"]["error"]
    assert "No such customer" in events["8"]["error"] and "platinum" in events["9"]["error"]

    got = await ok(await client.get(f"/v1/customers/{renamed['id']}"))
    assert got["name"] == "Harbor Freight East" and got["tier"] == "standard"
    got = await ok(await client.get(f"/v1/customers/{retiered['id']}"))
    assert got["tier"] == "key"
    assert got["manager_id"] == senior["id"], "a level-2 owner may not keep a key customer"
    got = await ok(await client.get(f"/v1/customers/{rated['id']}"))
    assert float(got["satisfaction"]) == 7.5
    got = await ok(await client.get(f"/v1/customers/{deleted['id']}"))
    assert got["status"] == "churned"

    # the causes fixed in Baton, the failed events are retried and apply
    owner = await create_manager(client, level=3, capacity=50, external_ref="hs-owner-77")
    await ok(
        await client.post(
            "/v1/tiers",
            json={
                "code": "platinum",
                "name": "Platinum",
                "rank": 5,
                "weight": 1,
                "min_manager_level": 1,
            },
        ),
        201,
    )
    for key in ("5", "9"):
        await ok(await client.post(f"/v1/webhooks/inbound-events/{events[key]['id']}/retry"), 202)
    assert await process_all(factory) == ["processed", "processed"]
    got = await ok(await client.get(f"/v1/customers/{reowned['id']}"))
    assert got["manager_id"] == owner["id"]
    history = await ok(await client.get(f"/v1/customers/{reowned['id']}/history"))
    assert history["items"][0]["actor"] == "webhook:hubspot"
    assert (await ok(await client.get(f"/v1/customers/{renamed['id']}")))["tier"] == "platinum"

    # a malformed item refuses the whole request before anything is stored
    body, headers = hubspot_post(url, [hs_change(10, 1, "name", "x"), {"objectId": 1}])
    assert_problem(await client.post(url, content=body, headers=headers), 422)
    assert "10" not in await inbox(client, "hubspot")


async def test_hubspot_property_names_come_from_the_source_mapping(committed_client, factory):
    client = committed_client
    mapping = {
        "fields": {"account_segment": "tier", "lifecycle": "status", "nps": "satisfaction"},
        "churned_values": ["former_customer"],
        "external_ref_prefix": "hs-",
    }
    src = await add_source(client, "hubspot", "hubspot", secret=HS_SECRET, mapping=mapping)
    assert src["mapping"]["fields"] == mapping["fields"]
    await create_tiers(client)
    a = await create_customer(client, external_ref="hs-11", tier="standard")
    b = await create_customer(client, external_ref="hs-12", tier="standard")
    url = "http://test/v1/webhooks/inbound/hubspot"
    body, headers = hubspot_post(
        url,
        [
            hs_change(21, 11, "account_segment", "long_tail"),
            hs_change(22, 12, "lifecycle", "former_customer"),
            hs_change(23, 11, "baton_tier", "key"),  # the default name, not mapped here
        ],
    )
    await ok(await client.post(url, content=body, headers=headers), 202)
    await process_all(factory)
    assert (await ok(await client.get(f"/v1/customers/{a['id']}")))["tier"] == "long_tail"
    assert (await ok(await client.get(f"/v1/customers/{b['id']}")))["status"] == "churned"
    assert (await inbox(client, "hubspot"))["23"]["status"] == "ignored"

    reset = await ok(await client.patch(f"/v1/webhook-sources/{src['id']}", json={"mapping": None}))
    assert reset["mapping"]["fields"]["baton_tier"] == "tier", "back to the HubSpot defaults"
    assert reset["mapping"]["external_ref_prefix"] == "hs-company-"


# -- generic HMAC ------------------------------------------------------------------------------
def generic_post(event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """An in-house CRM: GitHub-style `sha256=<hex HMAC of the body>` in a named header."""
    body = json.dumps(event).encode()
    digest = hmac.new(GENERIC_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"X-Crm-Signature": f"sha256={digest}", "Content-Type": "application/json"}


async def test_generic_hmac_adapter_creates_places_and_drafts(committed_client, factory):
    client = committed_client
    await add_source(
        client,
        "inhouse",
        "generic-hmac",
        secret=GENERIC_SECRET,
        signature_header="X-Crm-Signature",
        auto_approve=True,
    )
    await create_tiers(client)
    leaving = await create_manager(client, level=3, capacity=50, external_ref="ih-m-1")
    stays = await create_manager(client, level=3, capacity=50)
    url = "/v1/webhooks/inbound/inhouse"
    for event in [
        {
            "id": "e1",
            "type": "customer.upserted",
            "data": {"external_ref": "ih-1", "name": "Lotus Tea", "tier": "standard"},
        },
        {"id": "e2", "type": "customer.upserted", "data": {"name": "no reference"}},
        {"id": "e3", "type": "customer.renamed", "data": {"external_ref": "ih-1"}},
    ]:
        body, headers = generic_post(event)
        await ok(await client.post(url, content=body, headers=headers), 202)
    assert await process_all(factory) == ["processed", "failed"]
    events = await inbox(client, "inhouse")
    assert events["e3"]["status"] == "ignored" and "customer.renamed" in events["e3"]["error"]
    assert "external_ref" in events["e2"]["error"]
    placed = await customer_by_ref(client, "ih-1")
    assert placed["name"] == "Lotus Tea" and placed["manager_id"] in {leaving["id"], stays["id"]}

    body, headers = generic_post(
        {"id": "e4", "type": "manager.deactivated", "data": {"external_ref": "ih-m-1"}}
    )
    await ok(await client.post(url, content=body, headers=headers), 202)
    assert await process_all(factory) == ["processed"]
    result = (await inbox(client, "inhouse"))["e4"]["result"]
    handover = await ok(await client.get(f"/v1/handovers/{result['handover_id']}"))
    assert handover["state"] == "approved", "the source approves what it drafts"
    assert handover["from_manager_id"] == leaving["id"]


# -- Zoho CRM ----------------------------------------------------------------------------------
def zoho_post(
    operation: str,
    ids: list[str],
    values: dict[str, dict[str, Any]] | None = None,
    *,
    token: str = ZOHO_TOKEN,
    channel: str = ZOHO_CHANNEL,
    module: str = "Accounts",
) -> tuple[bytes, dict[str, str]]:
    """A Zoho CRM `actions/watch` callback with `return_affected_field_values` on."""
    values = values or {}
    body = {
        "server_time": int(time.time() * 1000),
        "query_params": {},
        "module": module,
        "resource_uri": f"https://www.zohoapis.com/crm/v8/{module}",
        "ids": ids,
        "affected_fields": [{rid: sorted(v)} for rid, v in values.items()],
        "affected_values": [{"record_id": rid, "values": v} for rid, v in values.items()],
        "operation": operation,
        "channel_id": channel,
        "token": token,
    }
    return json.dumps(body).encode(), {"Content-Type": "application/json"}


async def test_zoho_notifications_change_customers_through_the_mapping(committed_client, factory):
    client = committed_client
    src = await add_source(
        client,
        "zoho",
        "zoho",
        secret=ZOHO_TOKEN,
        channel_id=ZOHO_CHANNEL,
        mapping={
            "fields": {
                "Account_Name": "name",
                "Segment": "tier",
                "Account_Status": "status",
                "Owner": "owner",
                "CSAT": "satisfaction",
            },
            "churned_values": ["Churned"],
            "external_ref_prefix": "zoho-",
            "owner_ref_prefix": "zoho-user-",
        },
    )
    assert src["channel_id"] == ZOHO_CHANNEL
    await create_tiers(client)
    owner = await create_manager(client, level=3, capacity=50, external_ref="zoho-user-5001")
    other = await create_manager(client, level=3, capacity=50, external_ref="zoho-user-5002")
    url = "/v1/webhooks/inbound/zoho"

    body, headers = zoho_post(
        "insert",
        ["9001", "9002"],
        {
            "9001": {
                "Account_Name": "Jade River",
                "Segment": "key",
                "Owner": {"name": "Li Na", "id": "5001", "email": "li@example.com"},
            },
            "9002": {"Account_Name": "Pine Hill", "Segment": "standard"},
        },
    )
    receipt = await ok(await client.post(url, content=body, headers=headers), 202)
    assert receipt["received"] == 2
    assert await process_all(factory) == ["processed", "processed"]
    jade = await customer_by_ref(client, "zoho-9001")
    assert jade["name"] == "Jade River" and jade["tier"] == "key"
    assert jade["manager_id"] == owner["id"], "the CRM's owner, through the customers service"
    pine = await customer_by_ref(client, "zoho-9002")
    assert pine["manager_id"] in {owner["id"], other["id"]}, "no owner named: placed"

    body, headers = zoho_post(
        "update",
        ["9001", "9002"],
        {
            "9001": {"Owner": {"id": "5002"}, "CSAT": 9},
            "9002": {"Account_Status": "Churned"},
        },
    )
    await ok(await client.post(url, content=body, headers=headers), 202)
    body, headers = zoho_post("update", ["9001"], {"9001": {"Phone": "0571"}})  # unmapped
    await ok(await client.post(url, content=body, headers=headers), 202)
    body, headers = zoho_post("insert", ["7"], {"7": {"Last_Name": "Wu"}}, module="Leads")
    await ok(await client.post(url, content=body, headers=headers), 202)
    assert await process_all(factory) == ["processed", "processed"]
    jade = await customer_by_ref(client, "zoho-9001")
    assert jade["manager_id"] == other["id"] and float(jade["satisfaction"]) == 9
    assert (await customer_by_ref(client, "zoho-9002"))["status"] == "churned"
    ignored = [e for e in (await inbox(client, "zoho")).values() if e["status"] == "ignored"]
    assert sorted(e["error"].split(" (")[0] for e in ignored) == [
        "module 'Leads' is not mapped",
        "no mapped field changed",
    ]

    # an owner the placement rules refuse (level 1 for a key customer): the event fails,
    # the customer keeps its owner
    await create_manager(client, level=1, capacity=50, external_ref="zoho-user-5003")
    body, headers = zoho_post("update", ["9001"], {"9001": {"Owner": {"id": "5003"}}})
    await ok(await client.post(url, content=body, headers=headers), 202)
    assert await process_all(factory) == ["failed"]
    (refused,) = [e for e in (await inbox(client, "zoho")).values() if e["status"] == "failed"]
    assert refused["error"].startswith(("rule_violation", "placement"))
    assert (await customer_by_ref(client, "zoho-9001"))["manager_id"] == other["id"]

    body, headers = zoho_post("delete", ["9001"])
    await ok(await client.post(url, content=body, headers=headers), 202)
    assert await process_all(factory) == ["processed"]
    assert (await customer_by_ref(client, "zoho-9001"))["status"] == "churned"


@pytest.mark.parametrize(
    ("token", "channel"),
    [
        ("TOKEN_OF_SOMEONE_ELSE_0000000000", ZOHO_CHANNEL),
        (ZOHO_TOKEN, "1000000068999"),
        ("", ZOHO_CHANNEL),
    ],
)
async def test_zoho_notifications_need_the_registered_token_and_channel(client, token, channel):
    await add_source(client, "zoho", "zoho", secret=ZOHO_TOKEN, channel_id=ZOHO_CHANNEL)
    body, headers = zoho_post(
        "update", ["1"], {"1": {"Segment": "key"}}, token=token, channel=channel
    )
    problem = assert_problem(
        await client.post("/v1/webhooks/inbound/zoho", content=body, headers=headers), 401
    )
    assert problem["code"] == "webhook_signature_invalid"
    assert await inbox(client, "zoho") == {}


async def test_a_zoho_token_longer_than_zoho_allows_is_refused(client):
    problem = assert_problem(
        await client.post(
            "/v1/webhook-sources", json={"name": "zoho", "adapter": "zoho", "secret": "t" * 51}
        ),
        422,
    )
    assert "50" in problem["detail"]
    generated = await add_source(client, "zoho", "zoho")
    assert len(generated["secret"]) <= 50
