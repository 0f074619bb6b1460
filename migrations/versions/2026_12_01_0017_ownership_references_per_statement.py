"""Check the owners' and the ledger's references once per statement, not once per row

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 21:10:00

A bulk move (100 000 customers) ran 300 000 foreign-key checks, one query each: the new
owner of every customer, the customer and the manager of every ledger row it opened. They
cost a move about as much as all its index upkeep. The three foreign keys on the hot paths
(``customers.manager_id`` → managers, ``assignments.customer_id`` → customers,
``assignments.manager_id`` → managers) become statement-level triggers over transition
tables: one set-based check of the distinct referenced keys per statement, which also
``FOR KEY SHARE``-locks them, as the per-row checks did, so a concurrent delete of a
referenced manager or customer waits for the writer and then fails (or the writer fails if
the delete committed first). The referenced side keeps ``ON DELETE RESTRICT`` and ``ON
UPDATE NO ACTION`` with statement-level triggers on managers and customers. Errors keep the
constraint names, SQLSTATE 23503 and messages of the constraints they replace.

A delete's check sees writers that committed while it waited only under READ COMMITTED
(every Baton transaction); a delete of a manager or a customer under a stricter isolation
level is refused rather than checked against a stale snapshot.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Lock the distinct keys a statement refers to, as the per-row checks did, and fail on the
# first one missing. ``keys`` comes from a transition table; nulls refer to nothing.
_REQUIRE = """
CREATE FUNCTION ownership_require_keys(
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

# customers.manager_id → managers: the owners a statement set (inserted, or changed by an
# update: an unchanged owner was checked when it was set). On update, also the referenced
# side: a customer's id still named by the ledger may not change.
_CUSTOMERS = """
CREATE FUNCTION customers_check_references() RETURNS trigger LANGUAGE plpgsql AS $$
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

# assignments.customer_id → customers and assignments.manager_id → managers, for the rows a
# statement inserted.
_ASSIGNMENTS = """
CREATE FUNCTION assignments_check_references() RETURNS trigger LANGUAGE plpgsql AS $$
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

# The referenced side: a deleted (or re-keyed) manager or customer may not be referenced.
_REFERENCED = """
CREATE FUNCTION ownership_check_referenced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    gone uuid[];
    orphan uuid;
    referrer record;
BEGIN
    IF TG_OP = 'DELETE' THEN
        SELECT array_agg(id) INTO gone FROM old_rows;
    ELSE
        SELECT array_agg(id) INTO gone
          FROM (SELECT id FROM old_rows EXCEPT SELECT id FROM new_rows) AS rekeyed;
    END IF;
    IF gone IS NULL THEN
        RETURN NULL;
    END IF;
    -- A stricter isolation level would check against the transaction's snapshot and miss a
    -- writer that committed while this statement waited for its lock.
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'deleting from or re-keying table "%" needs READ COMMITTED', TG_TABLE_NAME
              USING ERRCODE = 'serialization_failure';
    END IF;
    FOR referrer IN
        SELECT * FROM (VALUES
            ('managers', 'customers', 'manager_id', 'fk_customers_manager_id_managers'),
            ('managers', 'assignments', 'manager_id', 'fk_assignments_manager_id_managers'),
            ('customers', 'assignments', 'customer_id', 'fk_assignments_customer_id_customers')
        ) AS r (target, source, source_column, constraint_name)
        WHERE r.target = TG_TABLE_NAME
    LOOP
        EXECUTE format('SELECT %I FROM %I WHERE %I = ANY($1) LIMIT 1',
                       referrer.source_column, referrer.source, referrer.source_column)
           INTO orphan USING gone;
        IF orphan IS NOT NULL THEN
            RAISE EXCEPTION 'update or delete on table "%" violates foreign key constraint '
                  '"%" on table "%"', TG_TABLE_NAME, referrer.constraint_name, referrer.source
                  USING ERRCODE = 'foreign_key_violation',
                        CONSTRAINT = referrer.constraint_name, TABLE = referrer.source,
                        DETAIL = format('Key (id)=(%s) is still referenced from table "%s".',
                                        orphan, referrer.source);
        END IF;
    END LOOP;
    RETURN NULL;
END;
$$
"""

_TRIGGERS = (
    "CREATE TRIGGER customers_references_insert AFTER INSERT ON customers "
    "REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION customers_check_references()",
    "CREATE TRIGGER customers_references_update AFTER UPDATE ON customers "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION customers_check_references()",
    "CREATE TRIGGER customers_referenced_delete AFTER DELETE ON customers "
    "REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION ownership_check_referenced()",
    "CREATE TRIGGER assignments_references_insert AFTER INSERT ON assignments "
    "REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION assignments_check_references()",
    "CREATE TRIGGER assignments_references_update AFTER UPDATE OF customer_id, manager_id "
    "ON assignments FOR EACH ROW WHEN (OLD.customer_id IS DISTINCT FROM NEW.customer_id "
    "OR OLD.manager_id IS DISTINCT FROM NEW.manager_id) "
    "EXECUTE FUNCTION assignments_check_row_references()",
    "CREATE TRIGGER managers_referenced_delete AFTER DELETE ON managers "
    "REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION ownership_check_referenced()",
    "CREATE TRIGGER managers_referenced_update AFTER UPDATE ON managers "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION ownership_check_referenced()",
    "CREATE TRIGGER managers_referenced_truncate AFTER TRUNCATE ON managers "
    "FOR EACH STATEMENT EXECUTE FUNCTION ownership_check_truncated()",
    "CREATE TRIGGER customers_referenced_truncate AFTER TRUNCATE ON customers "
    "FOR EACH STATEMENT EXECUTE FUNCTION ownership_check_truncated()",
)

# The ledger's references never change in Baton (closing a period sets ``ended_at``); a
# hand-written update of them is checked row by row, so closing periods pays nothing.
_ASSIGNMENTS_ROW = """
CREATE FUNCTION assignments_check_row_references() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.customer_id IS DISTINCT FROM OLD.customer_id THEN
        PERFORM ownership_require_keys(
            ARRAY[NEW.customer_id], 'customers', 'fk_assignments_customer_id_customers',
            'assignments', 'customer_id');
    END IF;
    IF NEW.manager_id IS DISTINCT FROM OLD.manager_id THEN
        PERFORM ownership_require_keys(
            ARRAY[NEW.manager_id], 'managers', 'fk_assignments_manager_id_managers',
            'assignments', 'manager_id');
    END IF;
    RETURN NULL;
END;
$$
"""

# TRUNCATE fires no row or statement trigger of the kinds above; a foreign key refused it while
# a row still referred to the table. Checked after the whole command, so a TRUNCATE that
# empties the referring tables too passes, as it did (a CASCADE no longer reaches them).
_TRUNCATED = """
CREATE FUNCTION ownership_check_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (TG_TABLE_NAME = 'managers'
        AND (EXISTS (SELECT FROM customers WHERE manager_id IS NOT NULL)
             OR EXISTS (SELECT FROM assignments)))
       OR (TG_TABLE_NAME = 'customers' AND EXISTS (SELECT FROM assignments)) THEN
        RAISE EXCEPTION 'cannot truncate a table referenced by rows of another table'
              USING ERRCODE = 'feature_not_supported',
                    DETAIL = format('Table "%s" is still referenced.', TG_TABLE_NAME),
                    HINT = 'Truncate the referring tables in the same command.';
    END IF;
    RETURN NULL;
END;
$$
"""

_FOREIGN_KEYS = (
    ("fk_customers_manager_id_managers", "customers", "manager_id", "managers"),
    ("fk_assignments_customer_id_customers", "assignments", "customer_id", "customers"),
    ("fk_assignments_manager_id_managers", "assignments", "manager_id", "managers"),
)

_TRIGGER_NAMES = (
    ("customers_references_insert", "customers"),
    ("customers_references_update", "customers"),
    ("customers_referenced_delete", "customers"),
    ("assignments_references_insert", "assignments"),
    ("assignments_references_update", "assignments"),
    ("managers_referenced_delete", "managers"),
    ("managers_referenced_update", "managers"),
    ("managers_referenced_truncate", "managers"),
    ("customers_referenced_truncate", "customers"),
)


def upgrade() -> None:
    for function in (
        _REQUIRE,
        _CUSTOMERS,
        _ASSIGNMENTS,
        _ASSIGNMENTS_ROW,
        _REFERENCED,
        _TRUNCATED,
    ):
        op.execute(function)
    # No row may change between the constraints going and the triggers taking over.
    op.execute("LOCK TABLE managers, customers, assignments IN SHARE ROW EXCLUSIVE MODE")
    for name, table, _, _ in _FOREIGN_KEYS:
        op.drop_constraint(name, table, type_="foreignkey")
    for statement in _TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    for name, table in _TRIGGER_NAMES:
        op.execute(f"DROP TRIGGER {name} ON {table}")
    for function in (
        "ownership_check_truncated()",
        "ownership_check_referenced()",
        "assignments_check_row_references()",
        "assignments_check_references()",
        "customers_check_references()",
        "ownership_require_keys(uuid[], regclass, text, text, text)",
    ):
        op.execute(f"DROP FUNCTION {function}")
    for name, table, column, target in _FOREIGN_KEYS:
        op.create_foreign_key(name, table, target, [column], ["id"], ondelete="RESTRICT")
