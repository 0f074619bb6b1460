"""The roles an API key can have (the set itself is in the vocabulary)."""

from __future__ import annotations

from app.vocabulary import Role

__all__ = ["ALL_ROLES", "Role"]

ALL_ROLES: frozenset[Role] = frozenset(Role)
