"""Names that must agree wherever they are written."""

from typing import get_args

from app.reports.repository import SORT_COLUMNS
from app.reports.schemas import KpiSort


def test_kpi_sorts_are_the_report_columns_in_their_order():
    assert get_args(KpiSort) == tuple(SORT_COLUMNS)
