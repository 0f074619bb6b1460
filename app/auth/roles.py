"""The roles an API key can have."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """``admin`` does everything; ``operator`` runs the portfolio (assign, handovers,
    customers, managers, tiers); ``viewer`` only reads; ``integration`` is for CRMs
    (customer/manager upserts and inbound webhooks)."""

    admin = "admin"
    operator = "operator"
    viewer = "viewer"
    integration = "integration"


ALL_ROLES: frozenset[Role] = frozenset(Role)
