"""The ``baton`` command: serve, migrate, seed, openapi.

Each command imports what it runs inside its own body: the database stack and the domains
take seconds to import, which ``baton --help`` and a mistyped option should not wait for."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from types import FrameType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress

from app.db.url import pin_database_url
from app.imports.cli import export_command, import_command
from app.settings import get_settings

cli = typer.Typer(help="Baton: who manages this customer, and why.", no_args_is_help=True)
console = Console(stderr=True)

# How long in-flight requests get to finish after SIGTERM/SIGINT before they are cut.
GRACEFUL_SHUTDOWN_S = 20


# Set by a stop signal the process received before its event loop took signals over.
_stop_requested = False


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    global _stop_requested
    # Python runs the handler between any two bytecodes, also inside a finaliser or a weakref
    # callback, where the exit is printed and dropped: the flag keeps the request.
    _stop_requested = True
    raise SystemExit(0)


def _ask_to_stop(signum: int, frame: FrameType | None) -> None:
    global _stop_requested
    _stop_requested = True


def _stop_signals_only_ask() -> None:
    """Until the event loop takes SIGTERM and SIGINT over, make them only ask to stop (the
    loop's coroutine stops at once when it starts): an exit raised while ``asyncio.run``
    builds its loop would leave it half built (its finaliser prints a traceback) and the
    coroutine never run."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _ask_to_stop)


def _exit_if_stop_requested() -> None:
    """Exit now if a stop signal came earlier and its exit was dropped."""
    if _stop_requested:
        raise SystemExit(0)


def _stop_signals_exit_cleanly() -> None:
    """Make SIGTERM and SIGINT end the process with a normal exit (status 0), so atexit
    handlers run and the embedded Postgres this process started is stopped.

    uvicorn handles both signals while it serves (graceful shutdown), then restores the
    previous handlers and raises the signal again; with the default SIGTERM action the
    process would die there (status 143) and skip every cleanup."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_cleanly)


def _database_url() -> str:
    """The database the command uses (see ``pin_database_url``); without one, one line a
    container log shows as is, and exit status 2 ("misconfigured")."""
    from app.db.embedded import DatabaseNotConfigured

    try:
        return pin_database_url()
    except DatabaseNotConfigured as exc:
        console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _migrate(url: str) -> None:
    from app.db.migrate import upgrade

    upgrade(url)


async def _seed(
    url: str, customers: int, managers: int, only_if_empty: bool
) -> dict[str, int] | None:
    from app.db.session import create_engine, create_session_factory, session_scope
    from app.seed import database_is_empty, seed_demo

    engine = create_engine(url, get_settings())
    try:
        async with session_scope(create_session_factory(engine)) as session:
            if only_if_empty and not await database_is_empty(session):
                return None
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task("Seeding customers", total=customers)
                return await seed_demo(
                    session,
                    customers=customers,
                    managers=managers,
                    progress=lambda n: progress.advance(task, n),
                )
    finally:
        await engine.dispose()


@cli.command()
def migrate() -> None:
    """Upgrade the database schema to the newest revision."""
    _migrate(_database_url())
    console.print("[green]Database migrated.[/green]")


@cli.command()
def seed(
    customers: Annotated[int, typer.Option(min=0, help="Customers to create.")] = 2000,
    managers: Annotated[int, typer.Option(min=1, help="Managers to create.")] = 40,
    if_empty: Annotated[bool, typer.Option(help="Only when the database is empty.")] = False,
) -> None:
    """Insert realistic demo data (tiers, managers, customers placed within capacity)."""
    url = _database_url()
    _migrate(url)
    result = asyncio.run(_seed(url, customers, managers, if_empty))
    if result is None:
        console.print("Database already has data; nothing seeded.")
    else:
        console.print(f"Seeded {result}.")


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes.")] = 1,
    demo: Annotated[bool, typer.Option(help="Seed demo data when the database is empty.")] = False,
    worker: Annotated[
        bool, typer.Option(help="Also run the background worker in the API process.")
    ] = True,
) -> None:
    """Migrate, then serve the API with uvicorn (and, unless --no-worker, the worker)."""
    import uvicorn

    _stop_signals_exit_cleanly()
    os.environ["BATON_RUN_WORKER"] = "true" if worker else "false"
    url = _database_url()
    _migrate(url)
    if demo:
        result = asyncio.run(_seed(url, 2000, 40, only_if_empty=True))
        if result:
            console.print(f"Demo data: {result}.")
        key = asyncio.run(_ensure_demo_key(url))
        # soft_wrap: the hint stays one line (copyable) when the output is not a terminal
        console.print(
            f"Demo admin API key: [bold]{key}[/bold]\n"
            "  Swagger UI: Authorize → HTTPBearer, paste the key.  curl: "
            f"-H 'Authorization: Bearer {key}'",
            soft_wrap=True,
        )
    console.print(f"Baton on http://{host}:{port}  ·  API docs: http://{host}:{port}/docs")
    _exit_if_stop_requested()
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=get_settings().log_level.lower(),
        server_header=False,  # no "server: uvicorn": nothing to tell a scanner
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )


@cli.command("worker")
def worker_command() -> None:
    """Run a standalone background worker (scheduled handovers, cover returns, deliveries).

    Without DATABASE_URL it attaches to the same embedded Postgres as `baton serve`."""
    from app.observability.logging import configure_logging, use_json

    _stop_signals_exit_cleanly()
    settings = get_settings()
    configure_logging(level=settings.log_level, json=use_json(settings))
    url = _database_url()
    _migrate(url)
    _exit_if_stop_requested()
    _stop_signals_only_ask()
    console.print("Baton worker started; Ctrl+C or SIGTERM stops it.")
    asyncio.run(_work_until_signalled(url))


async def _work_until_signalled(url: str) -> None:
    """Run the worker until SIGTERM or SIGINT, then let its jobs finish (bounded)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # The loop takes the signals over before the worker's modules are imported (seconds on a
    # busy machine): a signal during the import sets ``stop`` once the worker awaits.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if _stop_requested:
        stop.set()
    from app.worker import run_worker

    await run_worker(url, get_settings(), stop)


async def _check(url: str) -> tuple[list[Any], int]:
    from app.check import count_recorded_violations, find_violations
    from app.db.session import create_engine, create_session_factory, session_scope

    engine = create_engine(url, get_settings())
    try:
        async with session_scope(create_session_factory(engine)) as session:
            return await find_violations(session), await count_recorded_violations(session)
    finally:
        await engine.dispose()


@cli.command()
def check() -> None:
    """Verify the ownership invariants and that every rule violation was reported; exit 1
    listing what does not hold."""
    violations, recorded = asyncio.run(_check(_database_url()))
    if recorded:
        console.print(
            f"[yellow]{recorded} reported rule violation(s) await repair[/yellow] "
            "(GET /v1/violations; POST /v1/assignments/plan with mode=repair)."
        )
    for v in violations:
        console.print(f"[red]{v.invariant}[/red]: {v.count} (e.g. {', '.join(v.sample[:3])})")
    if violations:
        raise typer.Exit(1)
    console.print("[green]All invariants hold.[/green]")


async def _ensure_demo_key(url: str) -> str:
    from app.auth.bootstrap import ensure_demo_key, load_or_create_demo_key
    from app.db.session import create_engine, create_session_factory

    settings = get_settings()
    key = load_or_create_demo_key(settings.data_dir / "demo-api-key")
    engine = create_engine(url, settings)
    try:
        await ensure_demo_key(create_session_factory(engine), key)
    finally:
        await engine.dispose()
    return key


apikey = typer.Typer(help="Manage API keys (shown once; stored as a hash).", no_args_is_help=True)
cli.add_typer(apikey, name="apikey")


async def _in_session(url: str, work: Any) -> Any:
    from app.db.session import create_engine, create_session_factory, session_scope

    engine = create_engine(url, get_settings())
    try:
        async with session_scope(create_session_factory(engine)) as session:
            return await work(session)
    finally:
        await engine.dispose()


@apikey.command("create")
def apikey_create(
    name: Annotated[str, typer.Option(help="Who uses the key; recorded as the actor.")],
    role: Annotated[str, typer.Option(help="admin | operator | viewer | integration")],
    expires_in_days: Annotated[
        int | None, typer.Option(min=1, help="Days until the key stops working.")
    ] = None,
) -> None:
    """Create an API key and print it (the only time it is shown)."""
    from datetime import UTC, datetime, timedelta

    from app.auth import service
    from app.auth.roles import Role
    from app.errors import BatonError

    try:
        role_value = Role(role)
    except ValueError:
        console.print(f"[red]Unknown role {role!r}; use one of: {', '.join(Role)}.[/red]")
        raise typer.Exit(2) from None
    expires = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
    url = _database_url()
    _migrate(url)
    try:
        created = asyncio.run(
            _in_session(
                url,
                lambda s: service.create_key(
                    s, name=name, role=role_value, actor="cli", expires_at=expires
                ),
            )
        )
    except BatonError as exc:
        console.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from None
    console.print(f"Created {created.role} key '{created.name}' (id {created.id}). Store it now:")
    typer.echo(created.key)


@apikey.command("list")
def apikey_list(
    all_keys: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
) -> None:
    """List API keys (prefix, name, role, dates; never the secret)."""
    from app.auth import service

    url = _database_url()
    _migrate(url)
    page = asyncio.run(
        _in_session(
            url, lambda s: service.list_keys(s, cursor=None, limit=500, include_revoked=all_keys)
        )
    )
    for k in page.items:
        state = "revoked" if k.revoked_at else "active"
        typer.echo(
            f"{k.id}  bt_{k.prefix}_…  {k.role:<11} {state:<8} {k.name}"
            f"  expires={k.expires_at or '-'}  last_used={k.last_used_at or '-'}"
        )


@apikey.command("revoke")
def apikey_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (from list).")]) -> None:
    """Revoke an API key at once."""
    import uuid

    from app.auth import service
    from app.errors import BatonError

    try:
        parsed = uuid.UUID(key_id)
    except ValueError:
        console.print("[red]Pass the key's id as shown by `baton apikey list`.[/red]")
        raise typer.Exit(2) from None
    url = _database_url()
    _migrate(url)
    try:
        revoked = asyncio.run(_in_session(url, lambda s: service.revoke_key(s, key_id=parsed)))
    except BatonError as exc:
        console.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from None
    console.print(f"Revoked '{revoked.name}' at {revoked.revoked_at}.")


@apikey.command("generate")
def apikey_generate() -> None:
    """Print a new random key without storing it, e.g. for BATON_BOOTSTRAP_ADMIN_KEY."""
    from app.auth.keys import generate_key

    typer.echo(generate_key())


cli.command("import")(import_command)
cli.command("export")(export_command)


@cli.command()
def openapi() -> None:
    """Print the OpenAPI spec the app serves."""
    from app.main import create_app

    typer.echo(json.dumps(create_app().openapi(), indent=2, ensure_ascii=False))


def main() -> None:
    """Console-script entry point."""
    cli()


if __name__ == "__main__":
    main()
