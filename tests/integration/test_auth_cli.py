"""`baton apikey create/list/revoke/generate` and the demo key of `baton serve --demo`."""

import anyio
from typer.testing import CliRunner

from app.auth.keys import parse_key
from app.cli import cli
from app.settings import get_settings
from tests.integration.factories import assert_problem, ok


def _run(monkeypatch, url, *args):
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(cli, list(args))
    finally:
        get_settings.cache_clear()


async def test_create_list_revoke_from_the_command_line(monkeypatch, fresh_database, committed_api):
    created = await anyio.to_thread.run_sync(
        lambda: _run(
            monkeypatch, fresh_database, "apikey", "create", "--name", "ci", "--role", "operator"
        )
    )
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert parse_key(key) is not None
    ci = committed_api.anonymous()
    ci.headers["Authorization"] = f"Bearer {key}"
    await ok(await ci.get("/v1/customers"))
    assert_problem(await ci.get("/v1/api-keys"), 403)

    listed = await anyio.to_thread.run_sync(
        lambda: _run(monkeypatch, fresh_database, "apikey", "list")
    )
    assert listed.exit_code == 0 and "ci" in listed.stdout and key not in listed.stdout
    key_id = next(
        line.split()[0]
        for line in listed.stdout.splitlines()
        if line.endswith(" ci") or " ci " in line
    )
    bad_role = await anyio.to_thread.run_sync(
        lambda: _run(
            monkeypatch, fresh_database, "apikey", "create", "--name", "x", "--role", "root"
        )
    )
    assert bad_role.exit_code == 2
    revoked = await anyio.to_thread.run_sync(
        lambda: _run(monkeypatch, fresh_database, "apikey", "revoke", key_id)
    )
    assert revoked.exit_code == 0, revoked.output
    assert_problem(await ci.get("/v1/customers"), 401)


def test_generate_prints_a_well_formed_key_without_storing_it():
    result = CliRunner().invoke(cli, ["apikey", "generate"])
    assert result.exit_code == 0 and parse_key(result.stdout.strip()) is not None


async def test_the_demo_key_is_kept_and_works_on_every_start(tmp_path, committed_api):
    from app.auth.bootstrap import ensure_demo_key, load_or_create_demo_key

    key_file = tmp_path / "demo-api-key"
    key = load_or_create_demo_key(key_file)
    assert load_or_create_demo_key(key_file) == key
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    await ensure_demo_key(committed_api.factory, key)
    await ensure_demo_key(committed_api.factory, key)
    demo = committed_api.anonymous()
    demo.headers["X-API-Key"] = key
    keys = await ok(await demo.get("/v1/api-keys"))
    assert [k["name"] for k in keys["items"]] == ["demo-admin"]
