"""Names that must agree wherever they are written."""

from typing import Literal, get_args, get_origin

import pytest

from app import vocabulary as v
from app.handovers.schemas import ItemOut
from app.reports.repository import SORT_COLUMNS
from app.reports.schemas import KpiSort
from app.webhooks.inbound.schemas import SourceCreate, SourceOut, SourceUpdate


def test_kpi_sorts_are_the_report_columns_in_their_order():
    assert get_args(KpiSort) == tuple(SORT_COLUMNS)


def _choices(annotation) -> set[str]:
    """The string choices of a Literal field (optional or not)."""
    found: set[str] = set()
    for arg in (annotation, *get_args(annotation)):
        if get_origin(arg) is Literal:
            found |= set(get_args(arg))
    return found


@pytest.mark.parametrize(
    ("model", "field", "values"),
    [
        (SourceCreate, "tier_change_action", v.TierChangeAction),
        (SourceUpdate, "tier_change_action", v.TierChangeAction),
        (SourceOut, "tier_change_action", v.TierChangeAction),
        (ItemOut, "notification_status", v.NotificationStatus),
    ],
)
def test_fields_still_written_as_literals_match_the_vocabulary(model, field, values):
    assert _choices(model.model_fields[field].annotation) == {str(x) for x in values}
