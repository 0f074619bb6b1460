"""Engine and session factories; ``session_scope()`` gives CLI and jobs the request's semantics."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from asyncpg import InterfaceError, PostgresConnectionError
from asyncpg.exceptions import ConnectionDoesNotExistError
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.db.embedded import DatabaseNotConfigured, start_embedded_postgres
from app.settings import Settings

SessionFactory = async_sessionmaker[AsyncSession]


def resolve_database_url(settings: Settings) -> str:
    """The asyncpg URL to use: ``DATABASE_URL`` if set, else the embedded server's."""
    if settings.database_url is not None:
        try:
            url = make_url(settings.database_url.get_secret_value())
        except (ValueError, ArgumentError):
            # Their text quotes the URL's parts, a password's among them: not repeated here.
            raise DatabaseNotConfigured(
                "DATABASE_URL is not a valid database URL (postgresql://user:password@host/db);"
                " characters such as @ : / ? # in the user name or password must be"
                " percent-encoded (@ as %40)"
            ) from None
        if url.drivername in (
            "postgresql",
            "postgres",
            "postgresql+psycopg",
            "postgresql+psycopg2",
        ):
            url = url.set(drivername="postgresql+asyncpg")
        return url.render_as_string(hide_password=False)
    if settings.environment == "production":
        raise DatabaseNotConfigured(
            "DATABASE_URL is not set: in production (BATON_ENVIRONMENT=production) Baton needs "
            "DATABASE_URL=postgresql://user:password@host/db"
        )
    return start_embedded_postgres(settings.pgdata_dir)


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """The plain libpq URL asyncpg accepts, from an SQLAlchemy ``postgresql+asyncpg`` URL."""
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(False)


def statement_cache_args(settings: Settings) -> dict[str, Any]:
    """``asyncpg.connect`` arguments for ``settings.db_statement_cache`` (off: no cache)."""
    return {} if settings.db_statement_cache else {"statement_cache_size": 0}


def statement_cache_off(url: str, settings: Settings) -> tuple[str, dict[str, Any]]:
    """``url`` and SQLAlchemy connect arguments honouring ``settings.db_statement_cache``.

    Off (behind PgBouncer in transaction mode), neither asyncpg nor SQLAlchemy caches a
    statement and each prepared statement gets a name of its own, so no statement is looked
    for on a server connection other than the one it was prepared on."""
    if settings.db_statement_cache:
        return url, {}
    uncached = make_url(url).update_query_dict({"prepared_statement_cache_size": "0"})
    return uncached.render_as_string(hide_password=False), {
        **statement_cache_args(settings),
        "prepared_statement_name_func": lambda: f"__baton_{uuid.uuid4().hex}__",
    }


def create_engine(url: str, settings: Settings) -> AsyncEngine:
    """An async engine with a bounded pool and a statement timeout on every connection."""
    url, cache_args = statement_cache_off(url, settings)
    engine = create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        hide_parameters=True,  # an error's text never carries the values (keys, secrets)
        connect_args={
            "server_settings": {
                "statement_timeout": str(settings.db_statement_timeout_ms),
                "application_name": "baton",
            },
            **cache_args,
        },
    )
    event.listen(engine.sync_engine, "checkout", _skip_closed_connection)
    event.listen(engine.sync_engine, "checkin", _note_idle_since)
    return engine


# A connection idle this long is pinged before it is handed out: a firewall, NAT or load
# balancer may have dropped it without the server closing it.
IDLE_PING_SECONDS = 30.0


def _note_idle_since(dbapi_connection: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _skip_closed_connection(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Hand out no connection the server has closed (a restart, an idle timeout), that
    stopped answering while idle, or that is inside a transaction: the pool replaces it.

    Instead of SQLAlchemy's ``pool_pre_ping``, which costs every transaction three round trips
    on asyncpg (BEGIN, an empty statement, ROLLBACK): asyncpg reads every connection all the
    time, so one the server closed is known closed without asking, and only a connection idle
    for ``IDLE_PING_SECONDS`` is pinged (one a middlebox dropped silently)."""
    driver = getattr(dbapi_connection, "driver_connection", None)
    if driver is not None and driver.is_closed():
        raise DisconnectionError("the server closed this connection")
    if driver is not None and driver.is_in_transaction():
        # Handed back inside a transaction nobody tracks (a BEGIN interrupted by a
        # cancellation while its reply was on the way): the next session's transaction would
        # be a savepoint in it, its commit lost. Closed instead; the server rolls it back.
        raise DisconnectionError("the connection was returned inside a transaction")
    idle_since = record.info.get("idle_since")
    if idle_since is not None and time.monotonic() - idle_since > IDLE_PING_SECONDS:
        try:
            dbapi_connection.ping()
        except Exception as exc:
            raise DisconnectionError("an idle connection stopped answering") from exc


def is_disconnect(exc: BaseException) -> bool:
    """Whether ``exc`` means the database went away (a restart, a network cut, a connection
    refused while the server starts or stops), not a bad statement or a fault of Baton's.
    Looks through SQLAlchemy's wrappers (a ``DBAPIError``, or the asyncpg adapter's own error
    raised where SQLAlchemy does not wrap it) to the driver's exception."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = getattr(exc.orig, "__cause__", None) or exc.orig or exc
    elif not isinstance(exc, asyncpg.PostgresError | InterfaceError | OSError):
        cause = exc.__cause__
        if isinstance(cause, asyncpg.PostgresError | InterfaceError):
            exc = cause
    if isinstance(exc, (OSError, TimeoutError, PostgresConnectionError, *_LOST_IN_PROTOCOL)):
        return True
    if type(exc) is InterfaceError:
        # asyncpg's own "connection is closed" (no SQLSTATE); its subclasses are a value it
        # cannot encode (DataError) or a configuration the client lacks: faults, not outages.
        return "closed" in str(exc)
    sqlstate = getattr(exc, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(("08", "57P"))


# The connection broke mid-message, or none of the hosts could be reached as asked. Not
# ``OutdatedSchemaCacheError`` (also an ``InternalClientError``): a type changed under a
# prepared statement, a fault to see with its traceback.
_LOST_IN_PROTOCOL = (
    ConnectionDoesNotExistError,
    asyncpg.exceptions.ProtocolError,
    asyncpg.exceptions.TargetServerAttributeNotMatched,
)


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    """Sessions that keep loaded values after commit (responses are built after flush), and
    know whether their connections keep prepared statements (``cached_plans``)."""
    caches = engine.url.query.get("prepared_statement_cache_size") != "0"
    return async_sessionmaker(
        engine, expire_on_commit=False, autoflush=False, info={_CACHED_PLANS: caches}
    )


_CACHED_PLANS = "cached_plans"


def cached_plans(session: AsyncSession) -> bool:
    """Whether the session's connection keeps its prepared statements, and so their plans
    (not behind PgBouncer in transaction mode, ``BATON_DB_STATEMENT_CACHE=false``): the
    argument of ``GENERIC_PLANS``."""
    return bool(session.info.get(_CACHED_PLANS, True))


@asynccontextmanager
async def session_scope(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """One transaction: committed when the block ends, rolled back if it raises."""
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


# A select-list item for the first statement of a one-customer write (a manual move, a
# placement), ``{}`` the position of a boolean parameter (``cached_plans``): the rest of the
# transaction runs its statements on the plan Postgres made once per connection. A
# one-customer statement's best plan does not depend on which customer: left to choose,
# Postgres planned the move and its facts again for their values on most executions once the
# workload journal's statistics had moved (0.6-0.8 ms of planning each, about a third of its
# time per move). Where statements are not kept (PgBouncer), each is planned once anyway,
# best with its values: the parameter is false and nothing is set. ``set_config(..., true)``
# ends with the transaction.
GENERIC_PLANS = (
    "CASE WHEN ${}::boolean THEN set_config('plan_cache_mode', 'force_generic_plan', true) END"
)


_DRIVER = "driver_connection"


async def transaction_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under the session, with the session's transaction begun on it,
    for hot paths that run their statements on the driver directly (prepared once per
    connection, no SQLAlchemy statement handling) in the request's transaction.

    SQLAlchemy's asyncpg adapter begins its transaction lazily, at its first statement; a
    statement sent to the driver before that would run on its own and commit at once. The
    connection is remembered for the rest of the transaction (finding it through SQLAlchemy
    cost more than the statement)."""
    transaction = session.sync_session.get_transaction()
    cached = session.info.get(_DRIVER)
    if cached is not None and transaction is not None and cached[0] is transaction:
        raw: asyncpg.Connection = cached[1]
        if raw.is_in_transaction():
            return raw
    connection = await session.connection()
    adapted: Any = await connection.get_raw_connection()
    found: asyncpg.Connection | None = adapted.driver_connection
    if found is None:  # only after the connection was invalidated
        raise RuntimeError("the session's connection has no driver connection")
    if not found.is_in_transaction():
        begin = getattr(adapted, "_start_transaction", None)
        if begin is not None:
            try:
                await begin()  # the adapter's own BEGIN, so it commits and rolls back as usual
            except Exception as exc:
                # SQLAlchemy does not wrap an error of its adapter called directly: the
                # driver's own error goes on, which the service answers (a lost connection:
                # 503, retry) as it answers the same error from any statement.
                cause = exc.__cause__
                if isinstance(cause, asyncpg.PostgresError | InterfaceError):
                    raise cause from None
                raise
        else:
            await session.execute(text("SELECT 1"))
    session.info[_DRIVER] = (session.sync_session.get_transaction(), found)
    return found


async def driver_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under the session's transaction, for COPY and other driver-only
    calls (the work joins the session's transaction)."""
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    if raw is None:  # only after the connection was invalidated
        raise RuntimeError("the session's connection has no driver connection")
    return raw
