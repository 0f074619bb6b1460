"""Baton's assignment engine: a pure function from facts and rules to a plan.

No database, no HTTP, no clock: the service loads facts, calls `plan_assignments` or
`rebalance`, and writes the plan it gets back. (A plan's time budget reads the monotonic clock
to decide whether to go on, never what to decide: see `budget`.)
"""

from app.engine.budget import OverBudget
from app.engine.columns import NO_TIME, CustomerColumns, id_order
from app.engine.facts import Customer, EngineError, FormerOwner, Manager, Tier
from app.engine.fingerprint import digest
from app.engine.guard import BrokenRules, Violation, owners_violating, placement_violations
from app.engine.options import PlanOptions, RebalanceOptions
from app.engine.plan import Decision, ManagerLoad, Moves, OverTarget, Plan, PlanMetrics
from app.engine.planner import plan_assignments
from app.engine.rebalancing import rebalance
from app.engine.rules import Condition, Preference, Rule, RuleSet

__all__ = [
    "NO_TIME",
    "BrokenRules",
    "Condition",
    "Customer",
    "CustomerColumns",
    "Decision",
    "EngineError",
    "FormerOwner",
    "Manager",
    "ManagerLoad",
    "Moves",
    "OverBudget",
    "OverTarget",
    "Plan",
    "PlanMetrics",
    "PlanOptions",
    "Preference",
    "RebalanceOptions",
    "Rule",
    "RuleSet",
    "Tier",
    "Violation",
    "digest",
    "id_order",
    "owners_violating",
    "placement_violations",
    "plan_assignments",
    "rebalance",
]
