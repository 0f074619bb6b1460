"""Handover notifications from the wire: executing a handover with `notify_customers` sends
each moved customer a signed `handover.customer_notification` and each new owner a signed
`handover.owner_briefing`; the worker marks the items sent only after a delivery succeeded
and ticks the checklist; an undeliverable notification is `not_sent` with the reason."""

from __future__ import annotations

import socket
from datetime import datetime, timedelta

import pytest

from app.settings import get_settings
from app.worker import run_due_work
from tests.integration.factories import create_customer, ok
from tests.integration.test_handovers import act, create, items, portfolio
from tests.integration.webhook_receiver import running_receiver

NOTIFICATION_TYPES = ["handover.customer_notification", "handover.owner_briefing"]
BRIEFING = {
    "key_contacts": [{"name": "Wang Fang", "role": "CFO"}],
    "contract_status": "renewal due 2027-03",
    "notes": "Quarterly review in January.",
}


async def subscribe(client, url: str, types: list[str]) -> dict:
    return await ok(
        await client.post("/v1/webhook-subscriptions", json={"url": url, "event_types": types}),
        201,
    )


def checklist(handover: dict) -> dict[str, dict]:
    return {t["task"]: t for t in handover["checklist"]["tasks"]}


def instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_notifications_are_delivered_signed_then_items_sent_and_checklist_ticked(
    committed_client, factory, allow_loopback
):
    client = committed_client
    with running_receiver() as receiver:
        p = await portfolio(client, customers=3)
        strategic = await create_customer(client, tier="strategic", manager_id=p["leaving"]["id"])
        sub = await subscribe(client, receiver.url, NOTIFICATION_TYPES)
        h = await create(client, p["leaving"]["id"])
        await act(client, h["id"], "plan")
        await ok(
            await client.put(
                f"/v1/handovers/{h['id']}/items/{strategic['id']}/briefing", json=BRIEFING
            )
        )
        await act(client, h["id"], "approve")
        await act(client, h["id"], "execute")
        executed = await items(client, h["id"])
        assert {i["notification_status"] for i in executed.values()} == {"pending"}
        assert receiver.received == [], "nothing is sent inside the request"

        await run_due_work(factory)

        managers = {
            m["id"]: m
            for m in (await ok(await client.get("/v1/managers", params={"limit": 50})))["items"]
        }
        leaving = p["leaving"]
        notices = receiver.of_type("handover.customer_notification")
        assert len(notices) == 4
        for r in notices:
            data = r.verify(sub["secret"])["data"]
            item = executed[data["customer"]["id"]]
            new_owner = managers[item["final_manager_id"]]
            assert data["handover_id"] == h["id"]
            assert data["new_owner"] == {
                "id": new_owner["id"],
                "name": new_owner["name"],
                "email": new_owner["email"],
            }
            assert data["previous_owner"]["id"] == leaving["id"]
            assert data["previous_owner"]["email"] == leaving["email"]
            assert instant(data["effective_at"]) == instant(item["moved_at"])
            deadline = instant(data["refusal"]["deadline"])
            assert deadline - instant(item["moved_at"]) == timedelta(hours=24)
            assert data["refusal"]["path"].endswith(f"/items/{item['customer_id']}/refuse")
            assert new_owner["email"] in data["refusal"]["instructions"]

        briefings = receiver.of_type("handover.owner_briefing")
        owners = {i["final_manager_id"] for i in executed.values()}
        assert len(briefings) == len(owners)
        taken = {}
        for r in briefings:
            data = r.verify(sub["secret"])["data"]
            assert data["owner"]["id"] in owners
            for c in data["customers"]:
                assert executed[c["id"]]["final_manager_id"] == data["owner"]["id"]
                taken[c["id"]] = c
        assert set(taken) == set(executed), "every customer taken over is in one briefing"
        assert taken[strategic["id"]]["briefing"]["contract_status"] == "renewal due 2027-03"
        assert taken[strategic["id"]]["previous_owner"]["id"] == leaving["id"]

        sent = await items(client, h["id"])
        assert {i["notification_status"] for i in sent.values()} == {"sent"}
        assert all(i["notified_at"] and i["notification_error"] is None for i in sent.values())
        tasks = checklist(await ok(await client.get(f"/v1/handovers/{h['id']}")))
        assert tasks["customers_notified"]["done"] and tasks["team_informed"]["done"]
        assert tasks["customers_notified"]["done_by"] == "notifications"
        assert not tasks["successors_trained"]["done"]


async def test_undelivered_notifications_are_not_sent_and_tick_nothing(
    committed_client, factory, allow_loopback
):
    client = committed_client
    with running_receiver() as receiver:
        receiver.default = (410, {})  # the customers' channel is gone: no retry
        p = await portfolio(client, customers=2)
        await subscribe(client, receiver.url, ["handover.customer_notification"])
        h = await create(client, p["leaving"]["id"])
        await act(client, h["id"], "plan")
        await act(client, h["id"], "approve")
        await act(client, h["id"], "execute")
        await run_due_work(factory)

        assert len(receiver.of_type("handover.customer_notification")) == 2
        assert receiver.of_type("handover.owner_briefing") == []
        moved = await items(client, h["id"])
        assert {(i["notification_status"], i["notification_error"]) for i in moved.values()} == {
            ("not_sent", "delivery failed")
        }
        assert all(i["notified_at"] is None for i in moved.values())
        tasks = checklist(await ok(await client.get(f"/v1/handovers/{h['id']}")))
        assert not tasks["customers_notified"]["done"]
        assert not tasks["team_informed"]["done"], "no owner briefing subscriber"


async def test_a_delivery_still_retrying_keeps_the_notification_pending(
    committed_client, factory, allow_loopback
):
    client = committed_client
    with running_receiver() as receiver:
        receiver.default = (503, {})
        p = await portfolio(client, customers=1)
        await subscribe(client, receiver.url, NOTIFICATION_TYPES)
        h = await create(client, p["leaving"]["id"])
        await act(client, h["id"], "plan")
        await act(client, h["id"], "approve")
        await act(client, h["id"], "execute")
        await run_due_work(factory)
        assert len(receiver.received) == 2
        (item,) = (await items(client, h["id"])).values()
        assert item["notification_status"] == "pending" and item["notified_at"] is None
        tasks = checklist(await ok(await client.get(f"/v1/handovers/{h['id']}")))
        assert not tasks["customers_notified"]["done"]


async def test_notifications_still_retrying_do_not_hold_back_settled_ones(
    committed_client, factory, allow_loopback
):
    from datetime import UTC

    from app.handovers import notifications
    from app.webhooks.outbound import dispatcher
    from tests.integration.factories import create_manager, create_tiers

    client = committed_client
    with running_receiver() as receiver:
        await create_tiers(client)
        await create_manager(client, level=4, capacity=100)
        handovers = []
        for _ in range(2):
            leaving = await create_manager(client, level=4, capacity=100)
            await create_customer(client, tier="standard", manager_id=leaving["id"])
            handovers.append(await create(client, leaving["id"]))
        await subscribe(client, receiver.url, ["handover.customer_notification"])
        receiver.answers = [(503, {})]  # the first handover's notification will be retried
        for h in handovers:
            await act(client, h["id"], "plan")
            await act(client, h["id"], "approve")
            await act(client, h["id"], "execute")
            await dispatcher.drain(factory, settings=get_settings())

        async with factory() as session, session.begin():
            assert await notifications.settle(session, at=datetime.now(UTC), limit=1) == 1
        first, second = [list((await items(client, h["id"])).values()) for h in handovers]
        assert [i["notification_status"] for i in first] == ["pending"], "still retrying"
        assert [i["notification_status"] for i in second] == ["sent"]


class _Mailbox:
    """An SMTP server's sink: every message it accepted."""

    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope) -> str:
        from email import message_from_bytes, policy

        self.messages.append(
            (envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default))
        )
        return "250 OK"


@pytest.fixture
def smtp(monkeypatch):
    """A local SMTP server (aiosmtpd) and BATON_SMTP_URL pointing at it."""
    from aiosmtpd.controller import Controller

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mailbox = _Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("BATON_SMTP_URL", f"smtp://127.0.0.1:{port}")
    get_settings.cache_clear()
    yield mailbox
    controller.stop()
    monkeypatch.undo()
    get_settings.cache_clear()


async def test_notifications_are_emailed_when_smtp_is_configured(
    committed_client, factory, allow_loopback, smtp
):
    client = committed_client
    p = await portfolio(client, customers=2)
    h = await create(client, p["leaving"]["id"])
    await act(client, h["id"], "plan")
    contacts = {}
    for n, c in enumerate(p["customers"]):
        contacts[c["id"]] = f"buyer{n}@customer.example"
        briefing = {
            "key_contacts": [{"name": f"Buyer {n}", "email": contacts[c["id"]]}],
            "contract_status": f"renewal {n}",
        }
        await ok(
            await client.put(f"/v1/handovers/{h['id']}/items/{c['id']}/briefing", json=briefing)
        )
    await act(client, h["id"], "approve")
    await act(client, h["id"], "execute")
    moved = await items(client, h["id"])
    assert {i["notification_status"] for i in moved.values()} == {"pending"}, "mail to send"

    await run_due_work(factory)  # no webhook subscriber: the mails alone carry them

    managers = {
        m["id"]: m
        for m in (await ok(await client.get("/v1/managers", params={"limit": 50})))["items"]
    }
    by_recipient = {tuple(to): message for to, message in smtp.messages}
    for customer_id, address in contacts.items():
        message = by_recipient[(address,)]
        owner = managers[moved[customer_id]["final_manager_id"]]
        assert owner["name"] in message["Subject"]
        body = message.get_content()
        assert owner["email"] in body and p["leaving"]["name"] in body
        deadline = instant(moved[customer_id]["moved_at"]) + timedelta(hours=24)
        assert f"before {deadline:%Y-%m-%d %H:%M} UTC" in body
    owners = {i["final_manager_id"] for i in moved.values()}
    for owner_id in owners:
        body = by_recipient[(managers[owner_id]["email"],)].get_content()
        mine = [c for c, i in moved.items() if i["final_manager_id"] == owner_id]
        assert all(f"renewal {list(contacts).index(c)}" in body for c in mine)
    assert len(smtp.messages) == len(contacts) + len(owners)

    sent = await items(client, h["id"])
    assert {i["notification_status"] for i in sent.values()} == {"sent"}
    tasks = checklist(await ok(await client.get(f"/v1/handovers/{h['id']}")))
    assert tasks["customers_notified"]["done"] and tasks["team_informed"]["done"]


async def test_a_customer_without_an_address_or_subscriber_is_not_sent(
    committed_client, factory, allow_loopback, smtp
):
    client = committed_client
    p = await portfolio(client, customers=1)
    h = await create(client, p["leaving"]["id"])
    await act(client, h["id"], "plan")
    await act(client, h["id"], "approve")
    await act(client, h["id"], "execute")
    (item,) = (await items(client, h["id"])).values()
    assert item["notification_status"] == "not_sent"
    assert item["notification_error"] == "no subscriber and no e-mail address"
    await run_due_work(factory)
    assert [to for to, _ in smtp.messages] == [
        [m["email"]]
        for m in [await ok(await client.get(f"/v1/managers/{item['final_manager_id']}"))]
    ], "the new owner is still briefed"
    tasks = checklist(await ok(await client.get(f"/v1/handovers/{h['id']}")))
    assert tasks["team_informed"]["done"] and not tasks["customers_notified"]["done"]


async def test_a_mail_server_that_is_down_leaves_the_notification_pending(
    committed_client, factory, allow_loopback, monkeypatch
):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there
    monkeypatch.setenv("BATON_SMTP_URL", f"smtp://127.0.0.1:{port}")
    get_settings.cache_clear()
    try:
        client = committed_client
        p = await portfolio(client, customers=1)
        h = await create(client, p["leaving"]["id"])
        await act(client, h["id"], "plan")
        (customer,) = p["customers"]
        briefing = {"key_contacts": [{"name": "Buyer", "email": "buyer@customer.example"}]}
        await ok(
            await client.put(
                f"/v1/handovers/{h['id']}/items/{customer['id']}/briefing", json=briefing
            )
        )
        await act(client, h["id"], "approve")
        await act(client, h["id"], "execute")
        await run_due_work(factory)
        (item,) = (await items(client, h["id"])).values()
        assert item["notification_status"] == "pending" and item["notified_at"] is None
        tasks = checklist(await ok(await client.get(f"/v1/handovers/{h['id']}")))
        assert not tasks["customers_notified"]["done"] and not tasks["team_informed"]["done"]
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
