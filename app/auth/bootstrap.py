"""Keys made at start-up: ``BATON_BOOTSTRAP_ADMIN_KEY`` and the demo key of ``make run``."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from app.auth import service
from app.auth.keys import generate_key
from app.auth.roles import Role
from app.db.session import SessionFactory, session_scope

BOOTSTRAP_KEY_NAME = "bootstrap-admin"
DEMO_KEY_NAME = "demo-admin"


async def ensure_bootstrap_key(factory: SessionFactory, key: SecretStr) -> None:
    """Make the configured key a working admin key (idempotent across restarts and replicas)."""
    async with session_scope(factory) as session:
        await service.ensure_key(
            session,
            key=key.get_secret_value(),
            name=BOOTSTRAP_KEY_NAME,
            role=Role.admin,
            actor="bootstrap",
        )


def load_or_create_demo_key(key_file: Path) -> str:
    """The demo admin key kept in ``key_file`` (made on first use, mode 0600), so `make run`
    prints a key that works on every start."""
    key = key_file.read_text().strip() if key_file.exists() else ""
    if not key:
        key = generate_key()
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.touch(mode=0o600)
        key_file.write_text(key + "\n")
    return key


async def ensure_demo_key(factory: SessionFactory, key: str) -> None:
    """Make the demo key a working admin key."""
    async with session_scope(factory) as session:
        await service.ensure_key(
            session, key=key, name=DEMO_KEY_NAME, role=Role.admin, actor="baton serve --demo"
        )
