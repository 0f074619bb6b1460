"""The ownership checks run fewer statements: static reference locks, a customer's re-key
checked only when its id changes, the ledger's keys gathered in one statement

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02 12:00:00

Every write of an owner or a ledger period runs the statement-level checks of 0017–0019, and
on a one-customer move (a PATCH, a placement) their fixed cost was about half of Postgres'
work for the three statements. Three things went:

- ``ownership_require_keys`` built its lock query with ``EXECUTE format(...)`` for every call,
  so Postgres parsed and planned it again each time. For the two tables it is called for
  (managers and customers) the query is now written out, and PL/pgSQL keeps its plan; any
  other table still goes through ``EXECUTE``.
- The customers' update check compared the old and new ids of every updated row (a set
  difference over both transition tables) to refuse re-keying a customer the ledger names.
  That check is now a row trigger on ``UPDATE OF id`` whose ``WHEN`` clause is true only for
  a row whose id changed: an update that does not set ``id`` (every update Baton makes) pays
  nothing, and a re-key is refused with the same SQLSTATE (23503), constraint name and detail.
- The ledger's check gathered the open periods' and closed periods' customers and the
  managers in two statements over the inserted rows; now one. It calls a check only when there
  is something to check (the customers' check likewise skips a statement that set no owner).

The refusals, their order (customers before managers; a second open period before a missing
customer), their SQLSTATEs, constraint names and messages, and every lock are unchanged.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Lock the distinct keys a statement refers to, as a foreign key does, and fail on the first
# one missing; the lock query of managers and customers is static (its plan is kept).
_REQUIRE = """
CREATE OR REPLACE FUNCTION ownership_require_keys(
    keys uuid[], target regclass, constraint_name text, source text, source_column text
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    found uuid[];
    missing uuid;
BEGIN
    IF cardinality(keys) = 0 THEN
        RETURN;
    END IF;
    IF target = 'managers'::regclass THEN
        SELECT array_agg(id) INTO found
          FROM (SELECT id FROM managers WHERE id = ANY(keys) ORDER BY id FOR KEY SHARE)
               AS locked;
    ELSIF target = 'customers'::regclass THEN
        SELECT array_agg(id) INTO found
          FROM (SELECT id FROM customers WHERE id = ANY(keys) ORDER BY id FOR KEY SHARE)
               AS locked;
    ELSE
        EXECUTE format(
            'SELECT array_agg(id) FROM (SELECT id FROM %s WHERE id = ANY($1) '
            'ORDER BY id FOR KEY SHARE) AS locked', target)
          INTO found USING keys;
    END IF;
    IF cardinality(found) IS DISTINCT FROM cardinality(keys) THEN
        SELECT k INTO missing FROM unnest(keys) AS k
         WHERE k <> ALL(coalesce(found, '{}')) ORDER BY k LIMIT 1;
        RAISE EXCEPTION 'insert or update on table "%" violates foreign key constraint "%"',
              source, constraint_name
              USING ERRCODE = 'foreign_key_violation', CONSTRAINT = constraint_name,
                    TABLE = source,
                    DETAIL = format('Key (%s)=(%s) is not present in table "%s".',
                                    source_column, missing, target);
    END IF;
END;
$$
"""

# customers.manager_id → managers: the owners a statement set (inserted, or changed by an
# update: an unchanged owner was checked when it was set).
_CUSTOMERS = """
CREATE OR REPLACE FUNCTION customers_check_references() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    keys uuid[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(DISTINCT manager_id) FILTER (WHERE manager_id IS NOT NULL)
          INTO keys FROM new_rows;
    ELSE
        -- Set operations, not joins: a transition table has no statistics, and a nested
        -- loop over two of them is quadratic.
        SELECT array_agg(DISTINCT manager_id) INTO keys
          FROM (SELECT id, manager_id FROM new_rows WHERE manager_id IS NOT NULL
                EXCEPT SELECT id, manager_id FROM old_rows) AS changed;
    END IF;
    IF keys IS NOT NULL THEN
        PERFORM ownership_require_keys(
            keys, 'managers', 'fk_customers_manager_id_managers', 'customers', 'manager_id');
    END IF;
    RETURN NULL;
END;
$$
"""

# The referenced side of a customer's id: a re-keyed customer the ledger still names.
_REKEYED = """
CREATE FUNCTION customers_check_rekeyed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Checked at the end of the statement, as a foreign key is: the id may have been given
    -- to another row of the same statement.
    IF EXISTS (SELECT 1 FROM assignments AS a WHERE a.customer_id = OLD.id)
       AND NOT EXISTS (SELECT 1 FROM customers AS c WHERE c.id = OLD.id) THEN
        RAISE EXCEPTION 'update or delete on table "customers" violates foreign key '
              'constraint "fk_assignments_customer_id_customers" on table "assignments"'
              USING ERRCODE = 'foreign_key_violation',
                    CONSTRAINT = 'fk_assignments_customer_id_customers',
                    TABLE = 'assignments',
                    DETAIL = format('Key (id)=(%s) is still referenced from table '
                                    '"assignments".', OLD.id);
    END IF;
    RETURN NULL;
END;
$$
"""
_REKEYED_TRIGGER = (
    "CREATE TRIGGER customers_referenced_rekey AFTER UPDATE OF id ON customers "
    "FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) "
    "EXECUTE FUNCTION customers_check_rekeyed()"
)

# assignments.customer_id → customers and assignments.manager_id → managers, for the rows a
# statement inserted: the customers of open periods are locked and counted (0019), those named
# only by closed periods key-share locked, then the managers; keys gathered in one statement.
_ASSIGNMENTS = """
CREATE OR REPLACE FUNCTION assignments_check_references() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    open_keys uuid[];
    closed_keys uuid[];
    manager_keys uuid[];
BEGIN
    SELECT array_agg(customer_id) FILTER (WHERE opened),
           array_agg(customer_id) FILTER (WHERE NOT opened),
           (SELECT array_agg(DISTINCT manager_id) FROM new_rows)
      INTO open_keys, closed_keys, manager_keys
      FROM (SELECT customer_id, bool_or(ended_at IS NULL) AS opened FROM new_rows
             GROUP BY customer_id) AS per_customer;
    IF open_keys IS NOT NULL THEN
        PERFORM ledger_check_open_periods(open_keys);
    END IF;
    IF closed_keys IS NOT NULL THEN
        PERFORM ownership_require_keys(
            closed_keys, 'customers', 'fk_assignments_customer_id_customers', 'assignments',
            'customer_id');
    END IF;
    IF manager_keys IS NOT NULL THEN
        PERFORM ownership_require_keys(
            manager_keys, 'managers', 'fk_assignments_manager_id_managers', 'assignments',
            'manager_id');
    END IF;
    RETURN NULL;
END;
$$
"""


def upgrade() -> None:
    op.execute(_REQUIRE)
    op.execute(_CUSTOMERS)
    op.execute(_REKEYED)
    op.execute(_REKEYED_TRIGGER)
    op.execute(_ASSIGNMENTS)


def downgrade() -> None:
    op.execute(ASSIGNMENTS_0019)
    op.execute(CUSTOMERS_0017)
    op.execute("DROP TRIGGER customers_referenced_rekey ON customers")
    op.execute("DROP FUNCTION customers_check_rekeyed()")
    op.execute(REQUIRE_0017)


# What 0017 and 0019 had (restored by the downgrade; the benchmarks time them beside today's).
REQUIRE_0017 = """
CREATE OR REPLACE FUNCTION ownership_require_keys(
    keys uuid[], target regclass, constraint_name text, source text, source_column text
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    found uuid[];
    missing uuid;
BEGIN
    IF cardinality(keys) = 0 THEN
        RETURN;
    END IF;
    EXECUTE format(
        'SELECT array_agg(id) FROM (SELECT id FROM %s WHERE id = ANY($1) '
        'ORDER BY id FOR KEY SHARE) AS locked', target)
      INTO found USING keys;
    IF cardinality(found) IS DISTINCT FROM cardinality(keys) THEN
        SELECT k INTO missing FROM unnest(keys) AS k
         WHERE k <> ALL(coalesce(found, '{}')) ORDER BY k LIMIT 1;
        RAISE EXCEPTION 'insert or update on table "%" violates foreign key constraint "%"',
              source, constraint_name
              USING ERRCODE = 'foreign_key_violation', CONSTRAINT = constraint_name,
                    TABLE = source,
                    DETAIL = format('Key (%s)=(%s) is not present in table "%s".',
                                    source_column, missing, target);
    END IF;
END;
$$
"""

CUSTOMERS_0017 = """
CREATE OR REPLACE FUNCTION customers_check_references() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    keys uuid[];
    orphan uuid;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(DISTINCT manager_id) FILTER (WHERE manager_id IS NOT NULL)
          INTO keys FROM new_rows;
    ELSE
        -- Set operations, not joins: a transition table has no statistics, and a nested
        -- loop over two of them is quadratic.
        SELECT array_agg(DISTINCT manager_id) INTO keys
          FROM (SELECT id, manager_id FROM new_rows WHERE manager_id IS NOT NULL
                EXCEPT SELECT id, manager_id FROM old_rows) AS changed;
        SELECT gone.id INTO orphan
          FROM (SELECT id FROM old_rows EXCEPT SELECT id FROM new_rows) AS gone
         WHERE EXISTS (SELECT 1 FROM assignments AS a WHERE a.customer_id = gone.id)
         LIMIT 1;
        IF orphan IS NOT NULL THEN
            RAISE EXCEPTION 'update or delete on table "customers" violates foreign key '
                  'constraint "fk_assignments_customer_id_customers" on table "assignments"'
                  USING ERRCODE = 'foreign_key_violation',
                        CONSTRAINT = 'fk_assignments_customer_id_customers',
                        TABLE = 'assignments',
                        DETAIL = format('Key (id)=(%s) is still referenced from table '
                                        '"assignments".', orphan);
        END IF;
    END IF;
    PERFORM ownership_require_keys(
        coalesce(keys, '{}'), 'managers', 'fk_customers_manager_id_managers', 'customers',
        'manager_id');
    RETURN NULL;
END;
$$
"""

ASSIGNMENTS_0019 = """
CREATE OR REPLACE FUNCTION assignments_check_references() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    open_keys uuid[];
    closed_keys uuid[];
    manager_keys uuid[];
BEGIN
    SELECT array_agg(customer_id) FILTER (WHERE opened),
           array_agg(customer_id) FILTER (WHERE NOT opened)
      INTO open_keys, closed_keys
      FROM (SELECT customer_id, bool_or(ended_at IS NULL) AS opened FROM new_rows
             GROUP BY customer_id) AS per_customer;
    SELECT array_agg(DISTINCT manager_id) INTO manager_keys FROM new_rows;
    PERFORM ledger_check_open_periods(coalesce(open_keys, '{}'));
    PERFORM ownership_require_keys(
        coalesce(closed_keys, '{}'), 'customers', 'fk_assignments_customer_id_customers',
        'assignments', 'customer_id');
    PERFORM ownership_require_keys(
        coalesce(manager_keys, '{}'), 'managers', 'fk_assignments_manager_id_managers',
        'assignments', 'manager_id');
    RETURN NULL;
END;
$$
"""
