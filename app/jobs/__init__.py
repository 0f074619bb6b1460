"""Jobs at the bottom of the house: job names, enqueueing in the caller's transaction, and the
registry each domain fills with its own tasks and sweeps. ``app.worker`` composes the
registries and runs them; no domain imports the worker."""
