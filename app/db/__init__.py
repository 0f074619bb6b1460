"""Database layer: table models, engine and sessions, embedded Postgres."""
