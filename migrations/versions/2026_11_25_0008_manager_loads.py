"""manager_loads: active customers per manager and tier, kept by triggers on customers

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 03:20:00

A workload was a scan of every customer (a single-customer placement read a million rows);
now it is a sum over a manager's rows here. Statement-level AFTER triggers with transition
tables append one delta row per (manager, tier) a statement changed, in the transaction of the
change. Appending locks nothing another writer could wait for: counters updated in place were
row locks held to commit, and two writers taking them in different statements deadlocked. The
worker's sweep folds the deltas into one row per (manager, tier).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FUNCTION = """
CREATE FUNCTION manager_loads_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO manager_loads (manager_id, tier_code, customers)
        SELECT manager_id, tier_code, count(*) FROM new_rows
         WHERE status = 'active' AND manager_id IS NOT NULL
         GROUP BY manager_id, tier_code;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO manager_loads (manager_id, tier_code, customers)
        SELECT manager_id, tier_code, -count(*) FROM old_rows
         WHERE status = 'active' AND manager_id IS NOT NULL
         GROUP BY manager_id, tier_code;
    ELSE
        INSERT INTO manager_loads (manager_id, tier_code, customers)
        SELECT manager_id, tier_code, sum(delta) FROM (
               SELECT manager_id, tier_code, 1 AS delta FROM new_rows
                WHERE status = 'active' AND manager_id IS NOT NULL
               UNION ALL
               SELECT manager_id, tier_code, -1 FROM old_rows
                WHERE status = 'active' AND manager_id IS NOT NULL) AS changes
         GROUP BY manager_id, tier_code HAVING sum(delta) <> 0;
    END IF;
    RETURN NULL;
END;
$$
"""

_TRIGGERS = (
    "CREATE TRIGGER customers_loads_insert AFTER INSERT ON customers "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION manager_loads_apply()",
    "CREATE TRIGGER customers_loads_update AFTER UPDATE ON customers "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION manager_loads_apply()",
    "CREATE TRIGGER customers_loads_delete AFTER DELETE ON customers "
    "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION manager_loads_apply()",
)


def upgrade() -> None:
    op.create_table(
        "manager_loads",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("manager_id", sa.UUID(), nullable=False),
        sa.Column("tier_code", sa.Text(), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manager_loads")),
    )
    op.create_index("ix_manager_loads_manager_tier", "manager_loads", ["manager_id", "tier_code"])
    op.execute(_FUNCTION)
    # No customer may change between the recount and the triggers taking over.
    op.execute("LOCK TABLE customers IN SHARE MODE")
    for statement in _TRIGGERS:
        op.execute(statement)
    op.execute(
        "INSERT INTO manager_loads (manager_id, tier_code, customers) "
        "SELECT manager_id, tier_code, count(*) FROM customers "
        "WHERE status = 'active' AND manager_id IS NOT NULL GROUP BY manager_id, tier_code"
    )


def downgrade() -> None:
    for name in ("customers_loads_insert", "customers_loads_update", "customers_loads_delete"):
        op.execute(f"DROP TRIGGER {name} ON customers")
    op.execute("DROP FUNCTION manager_loads_apply()")
    op.drop_table("manager_loads")
