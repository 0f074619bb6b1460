"""Which database the commands use, resolved once per process."""

from __future__ import annotations

import os

from app.settings import get_settings


def pin_database_url() -> str:
    """Resolve the database (starting the embedded one if needed) and pin it in the env, so
    uvicorn workers and child processes attach to the same server."""
    # imported here: SQLAlchemy is not needed to print a command's help
    from app.db.session import resolve_database_url

    url = resolve_database_url(get_settings())
    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    return url
