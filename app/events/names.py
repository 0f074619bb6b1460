"""Names of the events Baton sends and receives."""

from __future__ import annotations

from typing import Literal

OutboundType = Literal[
    "customer.assigned",
    "customer.unassigned",
    "customer.tier_changed",
    "customer.reclaim_warning",
    "customer.first_touch_missed",
    "ownership.changed.batch",
    "handover.planned",
    "handover.approved",
    "handover.completed",
    "handover.cancelled",
    "handover.rolled_back",
    "handover.item.refused",
    "handover.customer_notification",
    "handover.owner_briefing",
    "manager.capacity_exceeded",
    "manager.status_changed",
    "violation.detected",
    "scenario.activated",
]
OUTBOUND_TYPES: tuple[str, ...] = OutboundType.__args__  # type: ignore[attr-defined]

InboundType = Literal[
    "manager.upserted",
    "manager.deactivated",
    "customer.upserted",
    "customer.tier_changed",
    "customer.churned",
    "customer.satisfaction_recorded",
    "customer.revenue_recorded",
    "customer.transfer_refused",
    "customer.activity_recorded",
    "manager.absence_set",
    "manager.absence_changed",
    "manager.absence_ended",
    "manager.absence_cancelled",
]
INBOUND_TYPES: tuple[str, ...] = InboundType.__args__  # type: ignore[attr-defined]

# handover state reached -> the event announcing it
HANDOVER_STATE_EVENTS = {
    "planned": "handover.planned",
    "approved": "handover.approved",
    "completed": "handover.completed",
    "cancelled": "handover.cancelled",
    "rolled_back": "handover.rolled_back",
}
