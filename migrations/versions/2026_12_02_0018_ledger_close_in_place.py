"""Close ledger periods in place (HOT updates): no index of the ledger mentions ``ended_at``,
its pages keep room, and one open period per customer is refused by the ledger's check

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 00:18:00

A move closed its customers' open ledger rows with updates Postgres could not do in place:
``ended_at`` was in the predicate of the partial unique index that held one open period per
customer, so every closed row got a new entry in each of the ledger's four indexes, and the
full pages sent the new row versions elsewhere. With no index naming ``ended_at`` (or
``end_reason``) and 15 % of each page left free, closing a period is a heap-only-tuple
update: no index entry at all.

One open period per customer is then refused by the ledger's statement-level check
(``assignments_check_references``, run once per inserting statement), with the SQLSTATE
(23505), the constraint name (``uq_assignments_open_per_customer``) and the message of the
index it replaces: it locks the customers of the open rows the statement inserted (``FOR NO
KEY UPDATE``, in id order, so writers of one customer wait for each other as the index made
them wait) and counts their open rows with a fresh snapshot. An update that reopens a period
or moves an open period to another customer is checked the same way, row by row (a close
pays nothing). Like deletes since 0017, an open period is written only under READ COMMITTED
(every Baton transaction): a stricter isolation level would count against a snapshot that
misses a writer which committed while the check waited for its lock, so it is refused.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FILLFACTOR = 85

# Lock the customers of open periods and refuse any of them with two.
_OPEN_PERIODS = """
CREATE FUNCTION ledger_check_open_periods(keys uuid[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    twice uuid;
BEGIN
    IF cardinality(keys) = 0 THEN
        RETURN;
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'opening a ledger period needs READ COMMITTED'
              USING ERRCODE = 'serialization_failure';
    END IF;
    -- Writers of the same customer wait here for each other; the count below then runs
    -- with a snapshot taken after the wait, so it sees the period a committed writer opened.
    PERFORM FROM customers WHERE id = ANY(keys) ORDER BY id FOR NO KEY UPDATE;
    SELECT a.customer_id INTO twice FROM assignments AS a
     WHERE a.customer_id = ANY(keys) AND a.ended_at IS NULL
     GROUP BY a.customer_id HAVING count(*) > 1
     ORDER BY a.customer_id LIMIT 1;
    IF twice IS NOT NULL THEN
        RAISE EXCEPTION 'duplicate key value violates unique constraint '
              '"uq_assignments_open_per_customer"'
              USING ERRCODE = 'unique_violation',
                    CONSTRAINT = 'uq_assignments_open_per_customer', TABLE = 'assignments',
                    DETAIL = format('Key (customer_id)=(%s) already exists.', twice);
    END IF;
END;
$$
"""

# 0017's check of the rows a statement inserted, with the open periods' customers locked
# first (customers before managers, as every writer locks) and counted last.
_ASSIGNMENTS = """
CREATE OR REPLACE FUNCTION assignments_check_references() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    customer_keys uuid[];
    manager_keys uuid[];
    open_keys uuid[];
BEGIN
    SELECT array_agg(DISTINCT customer_id), array_agg(DISTINCT manager_id),
           array_agg(DISTINCT customer_id) FILTER (WHERE ended_at IS NULL)
      INTO customer_keys, manager_keys, open_keys FROM new_rows;
    PERFORM ledger_check_open_periods(coalesce(open_keys, '{}'));
    PERFORM ownership_require_keys(
        coalesce(customer_keys, '{}'), 'customers', 'fk_assignments_customer_id_customers',
        'assignments', 'customer_id');
    PERFORM ownership_require_keys(
        coalesce(manager_keys, '{}'), 'managers', 'fk_assignments_manager_id_managers',
        'assignments', 'manager_id');
    RETURN NULL;
END;
$$
"""

_ASSIGNMENTS_0017 = """
CREATE OR REPLACE FUNCTION assignments_check_references() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    customer_keys uuid[];
    manager_keys uuid[];
BEGIN
    SELECT array_agg(DISTINCT customer_id), array_agg(DISTINCT manager_id)
      INTO customer_keys, manager_keys FROM new_rows;
    PERFORM ownership_require_keys(
        coalesce(customer_keys, '{}'), 'customers', 'fk_assignments_customer_id_customers',
        'assignments', 'customer_id');
    PERFORM ownership_require_keys(
        coalesce(manager_keys, '{}'), 'managers', 'fk_assignments_manager_id_managers',
        'assignments', 'manager_id');
    RETURN NULL;
END;
$$
"""

# A period reopened, or an open period moved to another customer: never in Baton, checked
# row by row (the WHEN clause keeps a close from queueing anything).
_ROW = """
CREATE FUNCTION assignments_check_open_period_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger_check_open_periods(ARRAY[NEW.customer_id]);
    RETURN NULL;
END;
$$
"""
_ROW_TRIGGER = (
    "CREATE TRIGGER assignments_open_period_update AFTER UPDATE OF customer_id, ended_at "
    "ON assignments FOR EACH ROW WHEN (NEW.ended_at IS NULL AND (OLD.ended_at IS NOT NULL "
    "OR OLD.customer_id IS DISTINCT FROM NEW.customer_id)) "
    "EXECUTE FUNCTION assignments_check_open_period_row()"
)


def upgrade() -> None:
    op.execute(_OPEN_PERIODS)
    op.execute(_ROW)
    # No period may open between the index going and the check taking over.
    op.execute("LOCK TABLE customers, assignments IN SHARE ROW EXCLUSIVE MODE")
    op.execute(_ASSIGNMENTS)
    op.execute(_ROW_TRIGGER)
    op.drop_index("uq_assignments_open_per_customer", table_name="assignments")
    # The room applies to pages written from now on; rewrite the ledger so that its existing
    # pages have it too (CLUSTER runs in a transaction, VACUUM FULL does not).
    op.execute(f"ALTER TABLE assignments SET (fillfactor = {FILLFACTOR})")
    op.execute("CLUSTER assignments USING pk_assignments")
    op.execute("ALTER TABLE assignments SET WITHOUT CLUSTER")


def downgrade() -> None:
    op.execute("ALTER TABLE assignments RESET (fillfactor)")
    op.create_index(
        "uq_assignments_open_per_customer",
        "assignments",
        ["customer_id"],
        unique=True,
        postgresql_where=sa.text("ended_at IS NULL"),
    )
    op.execute("DROP TRIGGER assignments_open_period_update ON assignments")
    op.execute(_ASSIGNMENTS_0017)
    op.execute("DROP FUNCTION assignments_check_open_period_row()")
    op.execute("DROP FUNCTION ledger_check_open_periods(uuid[])")
