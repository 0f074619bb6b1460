"""Hard-rule checks for a manual assignment of one customer to one manager."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def manual_violations(
    *, manager: Mapping[str, Any], tier: Mapping[str, Any], workload_after: int
) -> list[dict[str, str]]:
    """The hard rules a manual assignment would break, each with a stable code and message."""
    violations: list[dict[str, str]] = []
    if manager["level"] < tier["min_manager_level"]:
        violations.append(
            {
                "rule": "tier_min_level",
                "message": f"tier '{tier['code']}' needs level ≥ {tier['min_manager_level']}, "
                f"the manager is level {manager['level']}",
            }
        )
    if manager["status"] != "active":
        violations.append(
            {"rule": "manager_active", "message": f"the manager is {manager['status']}"}
        )
    if workload_after > manager["capacity"]:
        violations.append(
            {
                "rule": "capacity",
                "message": f"workload would be {workload_after} over a capacity of "
                f"{manager['capacity']}",
            }
        )
    return violations
