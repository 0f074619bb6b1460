"""An import records the same ownership violations as the same changes made one by one with
PATCH, although it checks only the owners its guard did not already settle."""

from __future__ import annotations

import json
import random

import pytest

from tests.integration.factories import create_customer, create_manager, create_tiers, ok

SAME_REGION = {
    "eligibility": [
        {
            "id": "same_region",
            "when": [{"field": "customer.tier", "op": "in", "value": ["strategic", "key"]}],
            "conditions": [{"field": "manager.region", "op": "eq", "value": "$customer.region"}],
        }
    ]
}
# reads a fact a move changes (whether the manager is the customer's owner): the intake guard
# allows a level-1 owner, who breaks the rule once the customer is theirs
KEEPERS = {
    "eligibility": [
        {
            "id": "keepers_are_seniors",
            "when": [{"field": "manager.is_current_owner", "op": "eq", "value": True}],
            "conditions": [{"field": "manager.level", "op": "gte", "value": 2}],
        }
    ]
}


async def _import(client, *rows: dict, **params) -> dict:
    body = "".join(json.dumps(r) + "\n" for r in rows)
    return await ok(
        await client.post(
            "/v1/imports/customers",
            content=body,
            headers={"Content-Type": "application/x-ndjson"},
            params=params,
        )
    )


async def _violations(client) -> list[dict]:
    return (await ok(await client.get("/v1/violations", params={"state": "all"})))["items"]


async def _by_ref(client, prefix: str) -> dict[str, dict]:
    items = (await ok(await client.get("/v1/customers", params={"limit": 200})))["items"]
    return {
        c["external_ref"].removeprefix(prefix): c
        for c in items
        if (c["external_ref"] or "").startswith(prefix)
    }


async def _left(client, prefix: str, managers: dict[str, str]) -> dict[str, list[tuple]]:
    """Per customer (its ref without the prefix): each violation recorded for it, oldest
    first, as (owner's name in the test, rules, open, resolution)."""
    customers = {c["id"]: ref for ref, c in (await _by_ref(client, prefix)).items()}
    name_of = {v: k for k, v in managers.items()}
    out: dict[str, list[tuple]] = {}
    for v in await _violations(client):
        if v["customer_id"] in customers:
            out.setdefault(customers[v["customer_id"]], []).append(
                (
                    name_of[v["manager_id"]],
                    [(r["rule"], r["message"]) for r in v["rules"]],
                    v["resolved_at"] is None,
                    v["resolution"],
                )
            )
    return out


async def test_an_import_leaves_the_violations_a_patch_of_the_same_changes_leaves(client):
    await create_tiers(client)
    managers = {
        "junior": (await create_manager(client, level=1, region="east", capacity=100))["id"],
        "senior": (await create_manager(client, level=4, region="east", capacity=100))["id"],
        "west": (await create_manager(client, level=4, region="west", capacity=100))["id"],
    }
    await ok(await client.put("/v1/rules", json={"rules": SAME_REGION}))

    async def book(prefix: str) -> dict[str, dict]:
        """The same customers for each path; some already with an open violation."""
        rows = {
            "tier-up": ("long_tail", "east", "junior"),
            "forced": ("key", "east", "senior"),
            "moves-west": ("key", "east", "senior"),
            "fixed-by-move": ("long_tail", "east", "junior"),
            "fixed-by-tier": ("long_tail", "east", "junior"),
            "renamed": ("long_tail", "east", "junior"),
            "untouched": ("standard", "east", "senior"),
            "to-west": ("standard", "east", "senior"),
        }
        made = {}
        for ref, (tier, region, owner) in rows.items():
            made[ref] = await create_customer(
                client,
                external_ref=f"{prefix}{ref}",
                name=ref,
                tier=tier,
                region=region,
                manager_id=managers[owner],
            )
        for ref in ("fixed-by-move", "fixed-by-tier", "renamed"):  # junior cannot own key ones
            made[ref] = await ok(
                await client.patch(f"/v1/customers/{made[ref]['id']}", json={"tier": "key"})
            )
        return made

    # (ref, fields, new owner or None), all forced
    changes: list[tuple[str, dict, str | None]] = [
        ("tier-up", {"tier": "key"}, None),
        ("forced", {}, "junior"),
        ("moves-west", {"region": "west"}, "west"),
        ("fixed-by-move", {}, "senior"),
        ("fixed-by-tier", {"tier": "long_tail"}, None),
        ("renamed", {"name": "Renamed"}, None),
        ("to-west", {"region": "west"}, None),
        ("to-west", {"tier": "key"}, None),
    ]
    patched = await book("p-")
    for ref, fields, owner in changes:
        body = {**fields, **({"manager_id": managers[owner]} if owner else {})}
        await ok(
            await client.patch(
                f"/v1/customers/{patched[ref]['id']}", json=body, params={"force": "true"}
            )
        )
    created = await create_customer(
        client, external_ref="p-new-forced", name="n", tier="key", region="east"
    )
    await ok(
        await client.patch(
            f"/v1/customers/{created['id']}",
            json={"manager_id": managers["junior"]},
            params={"force": "true"},
        )
    )
    created = await create_customer(
        client, external_ref="p-new-ok", name="n", tier="key", region="east"
    )
    await ok(
        await client.patch(
            f"/v1/customers/{created['id']}", json={"manager_id": managers["senior"]}
        )
    )

    imported = await book("i-")
    merged: dict[str, dict] = {}
    for ref, fields, owner in changes:
        c = imported[ref]
        row = merged.setdefault(
            ref,
            {k: c[k] for k in ("external_ref", "name", "tier", "region", "language", "industry")},
        )
        row.update(fields)
        if owner:
            row["manager_id"] = managers[owner]
    report = await _import(
        client,
        *merged.values(),
        {"external_ref": "i-untouched", "name": "untouched", "tier": "standard", "region": "east"},
        *(
            {"external_ref": f"i-{ref}", "name": "n", "tier": "key", "region": "east"}
            | {"manager_id": managers[owner]}
            for ref, owner in (("new-forced", "junior"), ("new-ok", "senior"))
        ),
        force="true",
    )
    assert report["owners_changed"] == 5 and report["created"] == 2, report

    by_patch = await _left(client, "p-", managers)
    by_import = await _left(client, "i-", managers)
    assert by_import == by_patch
    # what the scenario covers: new, forced, fixed by a move and by a change, untouched
    [(owner, rules, still_open, _)] = by_import["new-forced"]
    assert (owner, [r for r, _ in rules], still_open) == ("junior", ["tier_min_level"], True)
    assert [v[2:] for v in by_import["fixed-by-move"]] == [(False, "moved")]
    assert [v[2:] for v in by_import["fixed-by-tier"]] == [(False, "compliant")]
    assert (
        "moves-west" not in by_import and "untouched" not in by_import and "new-ok" not in by_import
    )
    assert [v[2] for v in by_import["renamed"]] == [True]
    assert [v[0] for v in by_import["to-west"]] == ["senior"]
    assert {c["customer_id"] for c in report["violations_detected"]} == {
        imported[r]["id"] for r in ("tier-up", "forced", "to-west")
    } | {(await _by_ref(client, "i-"))["new-forced"]["id"]}


@pytest.mark.parametrize("rules", [SAME_REGION, KEEPERS], ids=["fit", "keepers"])
@pytest.mark.parametrize("seed", range(3))
async def test_random_imports_leave_no_unreported_violation(client, api, rules, seed):
    """Property: whatever an import changes (tiers, regions, owners, forced or not, new
    customers), every owner that breaks a hard rule afterwards has an open violation, and
    every open violation still holds (``baton check``)."""
    from app.check import find_violations

    rnd = random.Random(seed)
    await create_tiers(client)
    tiers = ["strategic", "key", "standard", "long_tail"]
    regions = ["east", "west"]
    managers = [
        (
            await create_manager(
                client, level=rnd.randint(1, 5), capacity=12, region=rnd.choice(regions)
            )
        )["id"]
        for _ in range(4)
    ]
    await ok(await client.put("/v1/rules", json={"rules": rules}))
    refs = [f"c-{i}" for i in range(10)]
    for _ in range(6):
        rows = []
        for ref in rnd.sample(refs, rnd.randint(1, len(refs))):
            row = {"external_ref": ref, "name": ref, "tier": rnd.choice(tiers)}
            if rnd.random() < 0.7:
                row["region"] = rnd.choice(regions)
            if rnd.random() < 0.6:
                row["manager_id"] = rnd.choice(managers)
            rows.append(row)
        await _import(client, *rows, force="true")
        async with api.factory() as session:
            assert await find_violations(session) == [], rows
