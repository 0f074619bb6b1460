"""Working hours and time zones: when the rule set asks for managers available now, a
single-customer placement passes over a manager outside their hours (``outside_hours``)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from tests.integration.factories import (
    assert_problem,
    create_customer,
    create_manager,
    create_tiers,
    ok,
)

ALL_WEEK = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def half_day(zone: str, *, working: bool) -> list[dict]:
    """Every day's half that contains (``working``) or does not contain now in ``zone``."""
    morning = datetime.now(UTC).astimezone(ZoneInfo(zone)).hour < 12
    if morning == working:
        return [{"days": ALL_WEEK, "start": "00:00", "end": "12:00"}]
    return [{"days": ALL_WEEK, "start": "12:00", "end": "24:00"}]


async def test_a_placement_for_now_skips_managers_outside_their_hours(client, api):
    await create_tiers(client)
    away = await create_manager(
        client,
        capacity=100,
        time_zone="Asia/Shanghai",
        working_hours=half_day("Asia/Shanghai", working=False),
    )
    assert away["time_zone"] == "Asia/Shanghai" and len(away["working_hours"]) == 1
    read = await ok(await client.get(f"/v1/managers/{away['id']}"))
    assert read["working_hours"] == away["working_hours"]
    rules = {"eligibility": [], "preferences": [], "placement": {"available_now": True}}
    await ok(await client.put("/v1/rules", json={"rules": rules}))

    customer = await create_customer(client)
    pooled = await ok(await client.post(f"/v1/customers/{customer['id']}/assign", json={}))
    assert pooled["decision"]["manager_id"] is None
    assert pooled["decision"]["reasons"] == ["outside_hours"]
    named = await client.post(
        f"/v1/customers/{customer['id']}/assign", json={"manager_id": away["id"]}
    )
    rules_broken = [v["rule"] for v in assert_problem(named, 409)["violations"]]
    assert "violates:outside_hours" in rules_broken

    at_work = await create_manager(
        client,
        capacity=100,
        time_zone="America/New_York",
        working_hours=half_day("America/New_York", working=True),
    )
    placed = await ok(await client.post(f"/v1/customers/{customer['id']}/assign", json={}))
    assert placed["decision"]["manager_id"] == at_work["id"]

    # a manual move is not a placement for now; without the setting hours do not count
    other = await create_customer(client)
    moved = await ok(
        await client.patch(f"/v1/customers/{other['id']}", json={"manager_id": away["id"]})
    )
    assert moved["manager_id"] == away["id"]
    await ok(await client.patch(f"/v1/managers/{at_work['id']}", json={"accepting_new": False}))
    await ok(await client.put("/v1/rules", json={"rules": {"eligibility": [], "preferences": []}}))
    third = await create_customer(client)
    anyway = await ok(await client.post(f"/v1/customers/{third['id']}/assign", json={}))
    assert anyway["decision"]["manager_id"] == away["id"]


async def test_working_hours_input_is_checked(client, api):
    for fields in (
        {"time_zone": "Mars/Olympus"},
        {"working_hours": [{"days": ["mon"], "start": "18:00", "end": "09:00"}]},
        {"working_hours": [{"days": ["someday"], "start": "09:00", "end": "17:00"}]},
        {"working_hours": [{"days": ["mon"], "start": "9am", "end": "17:00"}]},
        {"rotation_weight": 0},
    ):
        body = {"name": "N", "email": "n@example.com", "level": 3, "capacity": 5, **fields}
        assert_problem(await client.post("/v1/managers", json=body), 422)
