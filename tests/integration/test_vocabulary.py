"""Every set of states in app.vocabulary is the set the migrated database accepts."""

import re
from enum import StrEnum

from sqlalchemy import text

from app import vocabulary as v

# (table, CHECK constraint) -> the vocabulary set it must allow, exactly.
EXPECTED: dict[tuple[str, str], tuple[StrEnum, ...]] = {
    ("managers", "ck_managers_status_valid"): tuple(v.ManagerStatus),
    ("customers", "ck_customers_status_valid"): tuple(v.CustomerStatus),
    ("assignments", "ck_assignments_reason_valid"): tuple(v.AssignmentReason),
    ("assignments", "ck_assignments_end_reason_valid"): tuple(v.AssignmentReason),
    ("manager_absences", "ck_manager_absences_kind_valid"): tuple(v.AbsenceKind),
    ("manager_absences", "ck_manager_absences_cover_valid"): tuple(v.AbsenceCover),
    ("customer_activities", "ck_customer_activities_kind_valid"): tuple(v.ActivityKind),
    ("handovers", "ck_handovers_reason_valid"): tuple(v.HandoverReason),
    ("handovers", "ck_handovers_strategy_valid"): tuple(v.Strategy),
    ("handovers", "ck_handovers_state_valid"): tuple(v.HandoverState),
    ("handover_items", "ck_handover_items_status_valid"): tuple(v.HandoverItemStatus),
    ("handover_items", "ck_handover_items_notification_status_valid"): tuple(v.NotificationStatus),
    ("handover_owner_notifications", "ck_handover_owner_notifications_status_valid"): tuple(
        v.NotificationStatus
    ),
    ("handover_emails", "ck_handover_emails_kind_valid"): tuple(v.EmailKind),
    ("handover_emails", "ck_handover_emails_status_valid"): tuple(v.EmailStatus),
    ("handover_tasks", "ck_handover_tasks_task_valid"): tuple(v.HandoverTask),
    ("webhook_sources", "ck_webhook_sources_adapter_valid"): tuple(v.WebhookAdapter),
    ("webhook_sources", "ck_webhook_sources_strategy_valid"): v.SOURCE_STRATEGIES,
    ("webhook_sources", "ck_webhook_sources_tier_action_valid"): tuple(v.TierChangeAction),
    ("webhook_inbound_events", "ck_webhook_inbound_events_status_valid"): tuple(
        v.InboundEventStatus
    ),
    ("webhook_deliveries", "ck_webhook_deliveries_status_valid"): tuple(v.DeliveryStatus),
    ("api_keys", "ck_api_keys_role_valid"): tuple(v.Role),
    ("scenarios", "ck_scenarios_state_valid"): tuple(v.ScenarioState),
    ("reclaim_policies", "ck_reclaim_policies_first_touch_action_valid"): tuple(v.FirstTouchAction),
}

_CHECKS = text(
    """
    SELECT c.relname AS table_name, k.conname AS name, pg_get_constraintdef(k.oid) AS definition
      FROM pg_constraint AS k JOIN pg_class AS c ON c.oid = k.conrelid
      JOIN pg_namespace AS n ON n.oid = c.relnamespace
     WHERE k.contype = 'c' AND n.nspname = 'public'
    """
)


async def test_every_status_set_is_what_its_check_constraint_allows(engine):
    async with engine.connect() as conn:
        rows = (await conn.execute(_CHECKS)).all()
    allowed = {
        (r.table_name, r.name): set(re.findall(r"'([^']*)'::text", r.definition))
        for r in rows
        if "ARRAY[" in r.definition
    }
    assert set(allowed) == set(EXPECTED), "a CHECK over a list of values has no vocabulary set"
    for key, values in EXPECTED.items():
        assert allowed[key] == {str(value) for value in values}, key


def test_the_open_handover_states_and_intake_reasons_are_members():
    assert set(v.OPEN_HANDOVER_STATES) < set(v.HandoverState)
    assert set(v.INTAKE_REASONS) < set(v.AssignmentReason)
    assert set(v.SOURCE_STRATEGIES) < set(v.Strategy)
