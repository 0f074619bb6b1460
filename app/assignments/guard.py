"""The placement guard as every write path calls it, and the record of what it overrode.

``check_move`` is the one place that decides whether a customer may be given to a manager by a
manual move, a create, an import row, a webhook or a handover override: it reads the facts,
asks the engine's pure ``placement_violations`` (built-in hard rules and the rule set's
eligibility rules), and refuses with 409 listing the rules, unless the caller may and does
force it. A forced move is recorded in the ledger note and in the audit trail of the request.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app import engine
from app.assignments import loading
from app.audit import service as audit
from app.errors import Conflict, Forbidden, InvalidInput, NotFound, RuleViolation
from app.rules.service import parse_stored

FORCE_ROLES = frozenset({"admin", "operator"})


def authorize_force(force: bool, role: str | None) -> None:
    """Only admin and operator keys may override hard rules (403 otherwise)."""
    if force and role is not None and role not in FORCE_ROLES:
        raise Forbidden(
            f"The '{role}' role may not force an assignment past hard rules; "
            "ask an operator or an admin.",
            role=role,
        )


def forced_note(violations: Sequence[engine.Violation], note: str | None) -> str:
    """The ledger note of a forced move: which rules it overrode, then the caller's note."""
    forced = "forced: " + ", ".join(v.rule for v in violations)
    return f"{forced}; {note}" if note else forced


@dataclass(frozen=True, slots=True)
class ManagerLocked:
    """Said by a caller that already took the manager's row lock (after the customer's) and
    read, in the same statement, the JSON text of the rule set in force (None: the default)
    and its version (0: none stored)."""

    rules_json: str | None
    rules_version: int


async def check_move(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    manager_id: uuid.UUID,
    force: bool = False,
    role: str | None = None,
    exclude_manager_ids: frozenset[uuid.UUID] = frozenset(),
    field: str = "manager_id",
    manager_locked: ManagerLocked | None = None,
) -> list[engine.Violation]:
    """Decide whether ``customer_id`` may be given to ``manager_id`` now.

    Locks the manager row (customers are locked by the caller first: every writer locks
    customers before managers), unless the caller says it did (``manager_locked``). Returns
    [] when allowed; with ``force`` (admin/operator only) returns the violations it overrides
    and records them for the audit trail; otherwise a violation is a 409 ``rule_violation``
    listing each rule.
    """
    violations, _ = await check_move_reading(
        session,
        customer_id=customer_id,
        manager_id=manager_id,
        force=force,
        role=role,
        exclude_manager_ids=exclude_manager_ids,
        field=field,
        manager_locked=manager_locked,
    )
    return violations


async def check_move_reading(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    manager_id: uuid.UUID,
    force: bool = False,
    role: str | None = None,
    exclude_manager_ids: frozenset[uuid.UUID] = frozenset(),
    field: str = "manager_id",
    manager_locked: ManagerLocked | None = None,
) -> tuple[list[engine.Violation], engine.Manager]:
    """``check_move``, answering also the manager as the guard read it after its lock (the
    facts it decided on: a placement compares them with the row it chose from)."""
    authorize_force(force, role)
    # Two round trips on the driver: the manager's lock with the rule set's version, then
    # every fact after the lock; the rule set is parsed once per stored text.
    if manager_locked is None:
        rules_json, version = await loading.lock_manager_for_move(session, manager_id)
    else:
        rules_json, version = manager_locked.rules_json, manager_locked.rules_version
    rules = parse_stored(rules_json)
    facts = await loading.load_move(session, customer_id, manager_id, rules=rules)
    if facts is not None and facts[3] != version:
        # A rule set stored while the lock statement waited (it kept its snapshot): decide
        # with the one in force now, read after the locks.
        rules = parse_stored((await loading.rules_in_force(session))[0])
        facts = await loading.load_move(session, customer_id, manager_id, rules=rules)
    if facts is None:
        raise NotFound(f"Customer {customer_id} does not exist.")
    customer, tier, manager, _ = facts
    if manager is None:
        raise InvalidInput(
            f"Manager {manager_id} does not exist.",
            errors=[{"loc": ["body", field], "msg": "unknown manager", "type": "not_found"}],
        )
    if manager.status == "departed":
        raise Conflict(f"Manager {manager_id} has departed and cannot own customers.")
    violations = engine.placement_violations(customer, manager, tier, rules)
    if manager_id in exclude_manager_ids:
        violations.append(engine.Violation("not_excluded", "the manager is excluded here"))
    if violations and not force:
        raise RuleViolation(
            "The assignment breaks hard rules: "
            + "; ".join(v.message for v in violations)
            + (". Pass force=true to override (operators and admins)." if role else "."),
            violations=[v.to_dict() for v in violations],
        )
    if violations:
        audit.details(session).setdefault("forced", []).append(
            {
                "customer_id": str(customer_id),
                "manager_id": str(manager_id),
                "rules": [v.to_dict() for v in violations],
            }
        )
    return violations, manager
