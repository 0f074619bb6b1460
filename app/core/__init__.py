"""Values the domains share with the HTTP layer without depending on it: list pages and
cursors, preconditions, schema pieces. Nothing here imports FastAPI."""
