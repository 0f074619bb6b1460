"""Bulk import and export through the API: CSV and NDJSON, upsert by external_ref, per-row
errors, all-or-nothing and best-effort, owners through the ledger, streamed exports."""

from __future__ import annotations

import csv
import io
import json

import httpx

from tests.integration.factories import (
    assert_problem,
    collect_pages,
    create_manager,
    create_tiers,
    ok,
)

CSV = {"Content-Type": "text/csv"}
NDJSON = {"Content-Type": "application/x-ndjson"}


def _ndjson(*rows: dict) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


async def _customers(client: httpx.AsyncClient) -> dict[str, dict]:
    pages = await collect_pages(client, "/v1/customers", limit=500)
    return {c["external_ref"]: c for page in pages for c in page}


async def _import(client, resource: str, body: str | bytes, headers=CSV, **params):
    return await client.post(
        f"/v1/imports/{resource}", content=body, headers=headers, params=params
    )


async def test_csv_import_creates_then_updates_only_what_changed(client):
    await create_tiers(client)
    body = (
        "external_ref,name,tier,region,annual_value\n"
        "c-1,Alpha Ltd,key,east,1000.50\n"
        'c-2,"Beta, Gamma & Co",standard,,\n'
        "c-3,Delta,long_tail,west,\n"
    )
    report = await ok(await _import(client, "customers", body))
    assert report["rows"] == 3
    assert (report["created"], report["updated"], report["unchanged"], report["failed"]) == (
        3,
        0,
        0,
        0,
    )
    stored = await _customers(client)
    assert stored["c-1"]["annual_value"] == "1000.50" and stored["c-1"]["region"] == "east"
    assert stored["c-2"]["name"] == "Beta, Gamma & Co" and stored["c-2"]["region"] is None
    assert stored["c-1"]["status"] == "active" and stored["c-1"]["manager_id"] is None

    again = (
        "external_ref,name,tier,region\n"
        "c-1,Alpha Ltd,key,north\n"  # region changes
        'c-2,"Beta, Gamma & Co",standard,\n'  # same as stored
        "c-4,Epsilon,key,south\n"  # new
    )
    report = await ok(await _import(client, "customers", again))
    assert (report["created"], report["updated"], report["unchanged"]) == (1, 1, 1)
    after = await _customers(client)
    assert after["c-1"]["region"] == "north"
    assert after["c-1"]["annual_value"] == "1000.50", "a column absent from the file is kept"
    assert after["c-1"]["version"] == stored["c-1"]["version"] + 1
    assert after["c-2"]["version"] == stored["c-2"]["version"], "unchanged rows are not touched"
    assert after["c-3"] == stored["c-3"]


async def test_ndjson_import_with_owner_writes_the_ledger(client):
    await create_tiers(client)
    manager = await create_manager(client, external_ref="crm-owner-1", level=4, capacity=100)
    other = await create_manager(client, level=4, capacity=100)
    body = _ndjson(
        {
            "external_ref": "n-1",
            "name": "One",
            "tier": "key",
            "manager_external_ref": "crm-owner-1",
        },
        {"external_ref": "n-2", "name": "Two", "tier": "standard", "manager_id": other["id"]},
        {"external_ref": "n-3", "name": "Three", "tier": "standard"},
    )
    report = await ok(await _import(client, "customers", body, headers=NDJSON))
    assert report["created"] == 3 and report["owners_changed"] == 2
    stored = await _customers(client)
    assert stored["n-1"]["manager_id"] == manager["id"]
    assert stored["n-2"]["manager_id"] == other["id"]
    assert stored["n-3"]["manager_id"] is None
    history = await ok(await client.get(f"/v1/customers/{stored['n-1']['id']}/history"))
    [row] = history["items"]
    assert row["reason"] == "import" and row["actor"] == "test-admin"
    assert row["manager_id"] == manager["id"] and row["ended_at"] is None
    # importing the same owner again moves nothing
    report = await ok(await _import(client, "customers", body, headers=NDJSON))
    assert report["owners_changed"] == 0 and report["unchanged"] == 3
    history = await ok(await client.get(f"/v1/customers/{stored['n-1']['id']}/history"))
    assert len(history["items"]) == 1


async def test_all_or_nothing_rejects_the_file_with_every_row_error(client):
    await create_tiers(client)
    await create_manager(client, external_ref="gone", status="departed")
    body = (
        "external_ref,name,tier,satisfaction,manager_external_ref\n"
        "ok-1,Fine,key,8.5,\n"
        "bad-1,Bad tier,gold,,\n"
        "bad-2,,key,,\n"
        "bad-3,Too happy,key,11,\n"
        "ok-1,Again,key,,\n"
        "bad-4,Unknown owner,key,,nobody\n"
        "bad-5,Departed owner,key,,gone\n"
    )
    r = await _import(client, "customers", body)
    problem = assert_problem(r, 422)
    assert problem["code"] == "import_rejected" and problem["failed"] == 6
    found = {(e["line"], e["field"], e["type"]) for e in problem["errors"]}
    assert (3, "tier", "unknown_tier") in found
    assert (4, "name", "missing") in found
    assert (5, "satisfaction", "less_than_equal") in found
    assert (6, "external_ref", "duplicate") in found
    assert (7, "manager_external_ref", "unknown_manager") in found
    assert (8, "manager_external_ref", "manager_departed") in found
    assert [e["line"] for e in problem["errors"]] == sorted(e["line"] for e in problem["errors"])
    assert await _customers(client) == {}, "nothing is applied"


async def test_best_effort_applies_the_valid_rows_and_reports_the_rest(client):
    await create_tiers(client)
    body = (
        _ndjson(
            {"external_ref": "b-1", "name": "Good", "tier": "key"},
            {"external_ref": "b-2", "name": "Bad", "tier": "key", "colour": "red"},
            {"external_ref": "b-3", "name": "Good too", "tier": "standard", "pinned": True},
        )
        + "not json\n[1, 2]\n"
        # an integer past Python's 4 300-digit limit is no JSON it can read either
        + '{"external_ref": "b-6", "name": "Huge", "tier": "key", "annual_value": 1'
        + "1" * 5000
        + "}\n"
    )
    report = await ok(await _import(client, "customers", body, headers=NDJSON, mode="best_effort"))
    assert (report["rows"], report["created"], report["failed"]) == (6, 2, 4)
    errors = {(e["line"], e["field"], e["type"]) for e in report["errors"]}
    assert errors == {
        (2, "colour", "extra_forbidden"),
        (4, None, "row"),
        (5, None, "row"),
        (6, None, "row"),
    }
    assert next(e for e in report["errors"] if e["line"] == 2)["external_ref"] == "b-2"
    stored = await _customers(client)
    assert set(stored) == {"b-1", "b-3"} and stored["b-3"]["pinned"] is True


async def test_manager_import_csv_lists_and_email_rules(client):
    existing = await create_manager(client, email="taken@example.com")
    body = (
        "external_ref,name,email,level,capacity,languages,accepting_new\n"
        "m-1,Li Na,li.na@example.com,4,120,zh;en,\n"
        "m-2,Wang Wei,TAKEN@example.com,3,80,,false\n"
        "m-3,Copy,LI.NA@example.com,2,10,,\n"
        "m-4,Zero,zero@example.com,9,10,,\n"
    )
    r = await _import(client, "managers", body)
    problem = assert_problem(r, 422)
    found = {(e["line"], e["field"], e["type"]) for e in problem["errors"]}
    assert found == {
        (3, "email", "email_taken"),
        (4, "email", "duplicate"),
        (5, "level", "less_than_equal"),
    }
    assert existing["id"] in problem["errors"][0]["msg"]

    report = await ok(await _import(client, "managers", body, mode="best_effort"))
    assert (report["created"], report["failed"]) == (1, 3)
    pages = await collect_pages(client, "/v1/managers", limit=100)
    li = next(m for page in pages for m in page if m["external_ref"] == "m-1")
    assert li["languages"] == ["zh", "en"] and li["accepting_new"] is True and li["level"] == 4


async def test_bad_files_are_rejected_whole(client):
    await create_tiers(client)
    r = await _import(client, "customers", "a,b\n1,2\n", headers={"Content-Type": "text/plain"})
    assert_problem(r, 415)
    r = await _import(client, "customers", "name,tier,colour\nx,key,red\n")
    problem = assert_problem(r, 422)
    messages = " ".join(e["msg"] for e in problem["errors"])
    assert "unknown column 'colour'" in messages and "missing column 'external_ref'" in messages
    r = await _import(client, "customers", 'external_ref,name,tier\nq-1,"never closed,key\n')
    assert "never closed" in assert_problem(r, 422)["detail"]
    r = await _import(client, "customers", b"external_ref,name,tier\n\xff\xfe,x,key\n")
    assert "UTF-8" in assert_problem(r, 422)["detail"]
    r = await _import(client, "customers", "", headers=CSV)
    assert "header" in assert_problem(r, 422)["detail"]
    r = await _import(client, "customers", "x", headers=CSV, mode="sometimes")
    assert_problem(r, 422)


async def test_quoted_newlines_and_crlf_keep_line_numbers(client):
    await create_tiers(client)
    body = 'external_ref,name,tier\r\nq-1,"Two\r\nlines",key\r\nq-2,Fine,nope\r\n'
    r = await _import(client, "customers", body, mode="best_effort")
    report = await ok(r)
    assert report["created"] == 1
    assert [(e["line"], e["field"]) for e in report["errors"]] == [(4, "tier")]
    assert (await _customers(client))["q-1"]["name"] == "Two\nlines"


async def test_viewers_may_export_but_not_import(api):
    viewer = await api.client("viewer")
    r = await _import(viewer, "customers", "external_ref,name,tier\n")
    assert_problem(r, 403)
    assert (await viewer.get("/v1/exports/customers")).status_code == 200


async def test_export_streams_csv_and_ndjson_that_import_back(client):
    await create_tiers(client)
    await create_manager(client, external_ref="owner-x", level=4, capacity=200)
    body = _ndjson(
        *(
            {
                "external_ref": f"e-{i:03}",
                "name": f"Customer, {i}",
                "tier": "standard",
                "annual_value": f"{i}.25",
                **({"manager_external_ref": "owner-x"} if i % 2 else {}),
            }
            for i in range(120)
        )
    )
    await ok(await _import(client, "customers", body, headers=NDJSON))

    r = await client.get("/v1/exports/customers")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 120
    assert [row["id"] for row in rows] == sorted(row["id"] for row in rows)
    one = next(row for row in rows if row["external_ref"] == "e-001")
    assert one["name"] == "Customer, 1" and one["manager_external_ref"] == "owner-x"
    assert one["annual_value"] == "1.25" and one["pinned"] == "false"

    # the export, edited, imports back: only the edited row changes
    edited = r.text.replace('"Customer, 7"', "Customer seven", 1)
    assert edited != r.text
    report = await ok(await _import(client, "customers", edited))
    assert (report["updated"], report["unchanged"], report["failed"]) == (1, 119, 0)

    r = await client.get("/v1/exports/customers", params={"format": "ndjson"})
    assert r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(x) for x in r.text.splitlines()]
    assert len(lines) == 120 and lines[0].keys() >= {"id", "external_ref", "manager_external_ref"}
    report = await ok(await _import(client, "customers", r.text, headers=NDJSON))
    assert report["unchanged"] == 120

    r = await client.get("/v1/exports/managers", params={"format": "csv"})
    managers = list(csv.DictReader(io.StringIO(r.text)))
    assert [m["external_ref"] for m in managers] == ["owner-x"]
    report = await ok(await _import(client, "managers", r.text))
    assert report["unchanged"] == 1


async def test_csv_export_escapes_formulas_and_imports_back_unchanged(client):
    await create_tiers(client)
    names = {
        "f-1": '=HYPERLINK("http://evil.example","click")',
        "f-2": "+1 555 0100",
        "f-3": "-minus",
        "f-4": "@SUM(A1)",
        "f-5": "\tTabbed",
        "f-6": "'=already quoted",
        "f-7": "Plain, Ltd.",
    }
    body = _ndjson(*({"external_ref": k, "name": v, "tier": "key"} for k, v in names.items()))
    await ok(await _import(client, "customers", body, headers=NDJSON))

    r = await client.get("/v1/exports/customers")
    exported = {row["external_ref"]: row["name"] for row in csv.DictReader(io.StringIO(r.text))}
    assert exported == {
        "f-1": '\'=HYPERLINK("http://evil.example","click")',
        "f-2": "'+1 555 0100",
        "f-3": "'-minus",
        "f-4": "'@SUM(A1)",
        "f-5": "'\tTabbed",
        "f-6": "''=already quoted",
        "f-7": "Plain, Ltd.",
    }
    # the escaped file imports back as it is: the apostrophes are removed again
    report = await ok(await _import(client, "customers", r.text))
    assert (report["updated"], report["unchanged"]) == (0, len(names))
    assert {k: v["name"] for k, v in (await _customers(client)).items()} == names

    # the opt-out gives the cells as stored; NDJSON is never altered
    r = await client.get("/v1/exports/customers", params={"formulas": "keep"})
    kept = {row["external_ref"]: row["name"] for row in csv.DictReader(io.StringIO(r.text))}
    assert kept == names
    r = await client.get("/v1/exports/customers", params={"format": "ndjson"})
    assert {x["external_ref"]: x["name"] for x in map(json.loads, r.text.splitlines())} == names
    assert_problem(await client.get("/v1/exports/customers", params={"formulas": "no"}), 422)


async def test_exports_filter_by_tier_status_owner_and_team(client):
    await create_tiers(client)
    east = await create_manager(client, external_ref="east-1", team="east", capacity=100)
    west = await create_manager(client, external_ref="west-1", team="west", capacity=100)
    body = _ndjson(
        {"external_ref": "a", "name": "A", "tier": "key", "manager_external_ref": "east-1"},
        {"external_ref": "b", "name": "B", "tier": "standard", "manager_external_ref": "east-1"},
        {"external_ref": "c", "name": "C", "tier": "key", "manager_external_ref": "west-1"},
        {"external_ref": "d", "name": "D", "tier": "key", "status": "churned"},
    )
    await ok(await _import(client, "customers", body, headers=NDJSON))

    async def refs(resource: str, **params) -> list[str]:
        r = await client.get(f"/v1/exports/{resource}", params=params)
        assert r.status_code == 200, r.text
        return sorted(row["external_ref"] for row in csv.DictReader(io.StringIO(r.text)))

    assert await refs("customers") == ["a", "b", "c", "d"]
    assert await refs("customers", tier="key") == ["a", "c", "d"]
    assert await refs("customers", status="churned") == ["d"]
    assert await refs("customers", manager_id=east["id"]) == ["a", "b"]
    assert await refs("customers", team="west") == ["c"]
    assert await refs("customers", tier="key", team="east") == ["a"]
    assert await refs("customers", tier="nope") == []
    assert await refs("managers", team="west") == ["west-1"]
    assert await refs("managers", status="departed") == []
    r = await client.get("/v1/exports/customers", params={"format": "ndjson", "team": "east"})
    assert sorted(json.loads(x)["external_ref"] for x in r.text.splitlines()) == ["a", "b"]
    assert west["team"] == "west"
    for params in ({"status": "gone"}, {"manager_id": "x"}, {"region": "east"}):
        assert_problem(await client.get("/v1/exports/customers", params=params), 422)
    assert_problem(await client.get("/v1/exports/managers", params={"tier": "key"}), 422)


async def test_large_csv_import_in_several_batches(client):
    """Larger than the 1 MiB limit of other requests, and more rows than one batch."""
    await create_tiers(client)
    n = 30_001

    async def stream():
        yield b"external_ref,name,tier\n"
        for start in range(0, n, 1000):
            yield "".join(
                f"big-{i},Customer {i} of the long tail,long_tail\n"
                for i in range(start, min(n, start + 1000))
            ).encode()

    r = await client.post("/v1/imports/customers", content=stream(), headers=CSV)
    report = await ok(r)
    assert report["created"] == n and report["failed"] == 0
    r = await client.get("/v1/exports/customers", params={"format": "ndjson"})
    assert len(r.text.splitlines()) == n


async def _baton(database: str, *args: str) -> tuple[int, str, str]:
    import asyncio
    import os
    import sys
    from pathlib import Path

    baton = Path(sys.executable).with_name("baton")
    process = await asyncio.create_subprocess_exec(
        str(baton),
        *args,
        env={**os.environ, "DATABASE_URL": database},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


async def test_cli_import_and_export(fresh_database, committed_client, tmp_path):
    await create_tiers(committed_client)
    managers = tmp_path / "managers.ndjson"
    managers.write_text(
        _ndjson(
            {
                "external_ref": "o-1",
                "name": "Owner",
                "email": "o1@example.com",
                "level": 4,
                "capacity": 50,
            }
        )
    )
    code, _, err = await _baton(fresh_database, "import", "managers", str(managers))
    assert code == 0, err
    customers = tmp_path / "customers.csv"
    customers.write_text(
        "external_ref,name,tier,manager_external_ref\nk-1,One,key,o-1\nk-2,Two,nope,\n"
    )
    code, _, err = await _baton(fresh_database, "import", "customers", str(customers))
    assert code == 1 and "line 3: tier: unknown tier 'nope'" in err
    assert await _customers(committed_client) == {}
    code, _, err = await _baton(
        fresh_database, "import", "customers", str(customers), "--best-effort"
    )
    assert code == 1 and "1 created" in err and "1 owners set" in err
    stored = await _customers(committed_client)
    assert set(stored) == {"k-1"} and stored["k-1"]["manager_id"] is not None

    code, out, err = await _baton(fresh_database, "export", "customers", "--format", "ndjson")
    assert code == 0, err
    [line] = [json.loads(x) for x in out.splitlines()]
    assert line["external_ref"] == "k-1" and line["manager_external_ref"] == "o-1"


async def test_an_export_cut_short_gives_its_connection_up(committed_api, committed_client):
    """A client that leaves mid-export: the COPY stops and the connection is not reused
    half-way through it; the next export is whole."""
    from app.imports import service

    await create_tiers(committed_client)
    n = 6_000
    body = "external_ref,name,tier\n" + "".join(
        f"cut-{i},Customer {i} with a name long enough to fill chunks,standard\n" for i in range(n)
    )
    await ok(await _import(committed_client, "customers", body))
    for _ in range(3):
        stream = service.export_rows(committed_api.factory, resource="customers", fmt="csv")
        first = await stream.__anext__()
        assert first.startswith(b"id,external_ref,") and len(first) < n * 80
        await stream.aclose()
    r = await committed_client.get("/v1/exports/customers")
    assert r.status_code == 200 and len(r.text.splitlines()) == n + 1


async def test_a_file_sent_as_octet_stream_says_its_format_in_the_query(client):
    await create_tiers(client)
    octet = {"content-type": "application/octet-stream"}
    rows = "external_ref,name,tier\nfile-1,File One,standard\n"
    unsaid = await _import(client, "customers", rows, headers=octet)
    assert unsaid.status_code == 422, unsaid.text
    assert "?format=csv" in unsaid.json()["detail"]
    assert unsaid.json()["errors"][0]["loc"] == ["query", "format"]
    said = await _import(client, "customers", rows, headers=octet, format="csv")
    assert said.status_code == 200 and said.json()["created"] == 1, said.text
    lines = _ndjson({"external_ref": "file-2", "name": "File Two", "tier": "standard"})
    ndjson = await _import(client, "customers", lines, headers=octet, format="ndjson")
    assert ndjson.status_code == 200 and ndjson.json()["created"] == 1, ndjson.text
    disagree = await _import(client, "customers", rows, headers=CSV, format="ndjson")
    assert disagree.status_code == 422, disagree.text
    customers = await _customers(client)
    assert {"file-1", "file-2"} <= set(customers)


async def test_new_customers_get_their_owner_with_the_writes_of_a_move(client, allow_loopback):
    """An import that creates customers writes each with its owner at once; the ledger rows,
    outbound events, audit and workloads are those of the same owners given through the ledger
    to customers that already exist (created in the pool by an earlier import)."""
    tiers = {t["code"]: t for t in await create_tiers(client)}
    owners = [await create_manager(client, level=4, capacity=100) for _ in range(2)]
    await ok(
        await client.post(
            "/v1/webhook-subscriptions",
            json={"url": "http://127.0.0.1:9/baton", "event_types": ["customer.assigned"]},
        ),
        201,
    )

    def body(prefix: str, *, with_owners: bool) -> str:
        rows = [
            f"{prefix}-{i},Customer {i},{('key', 'standard')[i % 2]},"
            + (owners[i % 2]["id"] if with_owners else "")
            for i in range(4)
        ]
        return "external_ref,name,tier,manager_id\n" + "\n".join(rows) + "\n"

    direct = await ok(await _import(client, "customers", body("d", with_owners=True)))
    await ok(await _import(client, "customers", body("m", with_owners=False)))
    moved = await ok(await _import(client, "customers", body("m", with_owners=True)))
    assert (direct["created"], direct["owners_changed"]) == (4, 4)
    assert (moved["updated"], moved["owners_changed"]) == (0, 4)
    assert direct["violations_detected_count"] == moved["violations_detected_count"] == 0

    stored = await _customers(client)
    deliveries = await ok(await client.get("/v1/webhook-deliveries", params={"limit": 50}))
    events = {}
    for d in deliveries["items"]:
        detail = await ok(await client.get(f"/v1/webhook-deliveries/{d['id']}"))
        events[detail["payload"]["data"]["customer_id"]] = detail["payload"]["data"]
    assert len(events) == 8

    def without_ids(row: dict) -> dict:
        per_request = ("id", "customer_id", "started_at", "at", "correlation_id")
        return {k: v for k, v in row.items() if k not in per_request}

    for i in range(4):
        d, m = stored[f"d-{i}"], stored[f"m-{i}"]
        assert d["manager_id"] == m["manager_id"] == owners[i % 2]["id"]
        [d_row] = (await ok(await client.get(f"/v1/customers/{d['id']}/history")))["items"]
        [m_row] = (await ok(await client.get(f"/v1/customers/{m['id']}/history")))["items"]
        assert d["updated_at"] == d_row["started_at"]  # changed last when it got its owner
        assert without_ids(d_row) == without_ids(m_row)
        assert d_row["reason"] == "import" and d_row["ended_at"] is None
        d_event, m_event = events[d["id"]], events[m["id"]]
        assert without_ids(d_event) == without_ids(m_event)
        assert d_event["old_manager_id"] is None and d_event["reason"] == "import"

    trail = (await ok(await client.get("/v1/audit", params={"limit": 50})))["items"]
    imports = [e for e in trail if e["action"] == "import_customers"]
    assert len(imports) == 3, trail
    kept = ("actor", "role", "resource_type", "resource_id", "status_code", "details")
    direct_audit, moved_audit = imports[-1], imports[0]  # newest first
    assert {k: direct_audit[k] for k in kept} == {k: moved_audit[k] for k in kept}

    weights = {code: t["weight"] for code, t in tiers.items()}
    for n, owner in enumerate(owners):
        got = await ok(await client.get(f"/v1/managers/{owner['id']}"))
        assert got["customer_count"] == 4
        assert got["workload"] == 4 * weights[("key", "standard")[n]]
