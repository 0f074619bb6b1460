"""Rule set resources."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.assignments.schemas import ViolationsDetected
from app.engine import RuleSet

RULES_EXAMPLE: dict[str, Any] = {
    "eligibility": [
        {
            "id": "strategic_senior_same_region",
            "description": "Strategic customers need a level ≥ 4 manager in their region.",
            "when": [{"field": "customer.tier", "op": "eq", "value": "strategic"}],
            "conditions": [
                {"field": "manager.level", "op": "gte", "value": 4},
                {"field": "manager.region", "op": "eq", "value": "$customer.region"},
            ],
        },
        {
            "id": "speaks_language",
            "description": "The manager speaks the customer's language.",
            "when": [{"field": "customer.language", "op": "exists", "value": True}],
            "conditions": [
                {"field": "manager.languages", "op": "contains", "value": "$customer.language"}
            ],
        },
    ],
    "preferences": [
        {
            "id": "same_industry",
            "weight": 5,
            "conditions": [
                {"field": "manager.industries", "op": "contains", "value": "$customer.industry"}
            ],
        },
        {
            "id": "former_owner",
            "weight": 8,
            "conditions": [{"field": "manager.is_former_owner", "op": "eq", "value": True}],
        },
    ],
}


class RuleSetIn(BaseModel):
    """A new rule set version. ``rules.version`` is assigned by the server."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"rules": RULES_EXAMPLE, "note": "Q4"}]}
    )

    rules: dict[str, Any] = Field(description="eligibility and preferences; see the example.")
    note: str | None = Field(None, max_length=2000)


class RuleSetOut(BaseModel):
    """A version of the rule set; version 0 is the built-in default."""

    version: int
    rules: RuleSet
    created_at: datetime | None
    created_by: str
    note: str | None


class RuleSetChangeOut(RuleSetOut, ViolationsDetected):
    """The new rule set, with the current owners its hard rules reject."""
