-- Session settings Baton sends at connect are ignored by PgBouncer in transaction mode; the
-- role carries the statement timeout instead (BATON_DB_STATEMENT_TIMEOUT_MS' default).
ALTER ROLE baton SET statement_timeout = '30s';
