"""Workloads summed from the loaded book."""

from __future__ import annotations

import uuid

import numpy as np

from app import engine
from app.assignments.columnar import with_workloads


def _manager() -> engine.Manager:
    return engine.Manager(id=uuid.uuid4(), level=3, capacity=10, workload=99, team="t")


def test_workloads_are_the_weights_of_each_managers_customers():
    managers = [_manager(), _manager()]
    tiers = [
        engine.Tier(code="key", rank=1, weight=4, min_manager_level=1),
        engine.Tier(code="standard", rank=2, weight=1, min_manager_level=1),
    ]
    book = engine.CustomerColumns(
        ids=np.zeros(4, dtype="S16"),
        tier=np.array([0, 1, 1, 0], dtype=np.int16),
        tier_codes=("key", "standard"),
        owner=np.array([0, 0, -1, 0], dtype=np.int32),
        owner_ids=tuple(m.id for m in managers),
    )
    loaded = with_workloads(managers, book, tiers)
    assert [m.workload for m in loaded] == [9, 0]
    assert [m.team for m in loaded] == ["t", "t"] and loaded[0].id == managers[0].id


def test_no_tiers_and_no_customers_leave_every_workload_at_zero():
    managers = [_manager()]
    book = engine.CustomerColumns(ids=np.zeros(0, dtype="S16"), tier=[], tier_codes=())
    assert [m.workload for m in with_workloads(managers, book, [])] == [0]
