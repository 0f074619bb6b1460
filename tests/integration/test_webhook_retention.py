"""Webhook logs past retention are pruned by the worker's sweep; what still needs work (a
pending delivery, an inbound event not processed or failed) stays whatever its age."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from app.settings import Settings
from app.webhooks.inbound.processing import process_event
from app.webhooks.outbound import dispatcher
from app.webhooks.retention import prune
from tests.integration.factories import create_customer, create_manager, create_tiers, ok
from tests.integration.test_webhooks_inbound import source, standard_request
from tests.integration.webhook_receiver import running_receiver

SETTINGS = Settings(environment="test", webhooks_allow_private_targets=True)


async def _rows(factory, sql):
    async with factory() as session:
        return list((await session.execute(text(sql))).all())


async def _age(factory, days):
    async with factory() as session:
        await session.execute(
            text("UPDATE webhook_events SET created_at = created_at - make_interval(days => :d)"),
            {"d": days},
        )
        await session.execute(
            text(
                "UPDATE webhook_inbound_events"
                " SET received_at = received_at - make_interval(days => :d)"
            ),
            {"d": days},
        )
        await session.commit()


async def _inbound(client, factory, secret, external_ref, tier):
    event = {
        "type": "customer.upserted",
        "timestamp": "2026-11-25T09:00:00Z",
        "data": {"external_ref": external_ref, "name": external_ref, "tier": tier},
    }
    body, headers = standard_request(secret, event)
    accepted = await ok(
        await client.post("/v1/webhooks/inbound/crm", content=body, headers=headers), 202
    )
    return accepted["events"][0]["id"]


async def test_old_finished_logs_are_pruned_and_unfinished_work_stays(
    committed_client, factory, allow_loopback
):
    client = committed_client
    await create_tiers(client)
    manager = await create_manager(client, level=4, capacity=40)
    with running_receiver() as receiver:
        await ok(
            await client.post(
                "/v1/webhook-subscriptions", json={"url": receiver.url, "event_types": ["*"]}
            ),
            201,
        )
        delivered = await create_customer(client, manager_id=manager["id"])
        assert await dispatcher.drain(factory, settings=SETTINGS) >= 1
    pending = await create_customer(client, manager_id=manager["id"])  # never drained
    crm = await source(client, "crm", "standard")
    processed = await _inbound(client, factory, crm["secret"], "crm-1", "standard")
    failed = await _inbound(client, factory, crm["secret"], "crm-2", "no-such-tier")
    waiting = await _inbound(client, factory, crm["secret"], "crm-3", "standard")
    assert [await process_event(factory, i) for i in (processed, failed)] == [
        "processed",
        "failed",
    ]
    await _age(factory, days=40)
    recent = await _inbound(client, factory, crm["secret"], "crm-4", "standard")
    assert await process_event(factory, recent) == "processed"

    assert await prune(factory, cutoff=datetime.now(UTC) - timedelta(days=30), batch=1) >= 2

    events = await _rows(factory, "SELECT customer_id::text FROM webhook_events")
    assert delivered["id"] not in {e[0] for e in events}
    assert pending["id"] in {e[0] for e in events}, "a pending delivery is never pruned"
    assert (
        await _rows(
            factory,
            "SELECT 1 FROM webhook_deliveries AS d"
            " WHERE NOT EXISTS (SELECT 1 FROM webhook_events AS e WHERE e.id = d.event_id)",
        )
        == []
    )
    inbox = {r[0] for r in await _rows(factory, "SELECT id::text FROM webhook_inbound_events")}
    assert inbox == {failed, waiting, recent}
