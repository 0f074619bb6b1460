"""The handover state machine: which action is allowed from which state, and where it leads."""

from __future__ import annotations

from typing import Literal

from app.errors import InvalidTransition
from app.vocabulary import HandoverState

State = HandoverState
Action = Literal["plan", "approve", "execute", "complete", "cancel", "rollback"]

# action -> (states it may start from, state it leads to)
TRANSITIONS: dict[str, tuple[tuple[State, ...], State]] = {
    "plan": ((State.DRAFT, State.PLANNED), State.PLANNED),
    "approve": ((State.PLANNED,), State.APPROVED),
    "execute": ((State.APPROVED,), State.EXECUTING),
    "complete": ((State.EXECUTING,), State.COMPLETED),
    "cancel": ((State.DRAFT, State.PLANNED, State.APPROVED, State.EXECUTING), State.CANCELLED),
    "rollback": ((State.COMPLETED,), State.ROLLED_BACK),
}

# Actions a client can ask for (``complete`` is internal to execution).
PUBLIC_ACTIONS: tuple[Action, ...] = ("plan", "approve", "execute", "cancel", "rollback")


def allowed_actions(state: str) -> list[str]:
    """The client actions possible from ``state`` (shown in errors and on the resource)."""
    return [a for a in PUBLIC_ACTIONS if state in TRANSITIONS[a][0]]


def next_state(state: str, action: str) -> State:
    """The state ``action`` leads to from ``state``, or InvalidTransition (409) naming both the
    current state and what is allowed from it."""
    sources, target = TRANSITIONS[action]
    if state not in sources:
        allowed = allowed_actions(state)
        raise InvalidTransition(
            f"Cannot {action} a handover in state '{state}'; "
            + (f"allowed actions: {', '.join(allowed)}." if allowed else "it is final."),
            state=state,
            action=action,
            allowed_actions=allowed,
            allowed_from=list(sources),
        )
    return target
