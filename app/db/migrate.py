"""Run Alembic migrations programmatically (``baton migrate``, start-up, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

ROOT = Path(__file__).resolve().parents[2]


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at this project's ``migrations/``, with ``url`` if given."""
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["skip_logging"] = True
    if url:
        config.attributes["url"] = url
    return config


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Autogenerate and drift checks skip the job queue's objects (pgqueuer owns them)."""
    return not (name or "").startswith("pgqueuer")


def upgrade(url: str, revision: str = "head") -> None:
    """Upgrade the database at ``url`` (blocking; call from a thread inside an event loop)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    """Downgrade the database at ``url``."""
    command.downgrade(alembic_config(url), revision)


def head_revision() -> str:
    """The newest migration revision the code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head
