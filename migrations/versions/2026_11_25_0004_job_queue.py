"""job queue (pgqueuer tables, functions and triggers)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 00:40:00
"""

from collections.abc import Sequence

from alembic import op
from pgqueuer.adapters.persistence.qb import QueryBuilderEnvironment
from sqlalchemy.util import await_only

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _run_script(sql: str) -> None:
    # A multi-statement script (with plpgsql bodies) needs the simple query protocol, which
    # asyncpg uses for an argument-less execute; it runs inside the migration's transaction.
    driver = op.get_bind().connection.dbapi_connection.driver_connection
    await_only(driver.execute(sql))


def upgrade() -> None:
    # The queue's schema comes from the pinned pgqueuer release, applied like any other change.
    _run_script(QueryBuilderEnvironment().build_install_query())


def downgrade() -> None:
    _run_script(QueryBuilderEnvironment().build_uninstall_query())
