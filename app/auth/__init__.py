"""API keys and roles: who may call Baton, and what each caller may do."""
