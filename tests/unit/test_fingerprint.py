"""Plan tokens and staleness digests come from the whole typed input: changing any field of any
fact changes them, so a field a rule reads cannot be left out."""

import dataclasses
from datetime import UTC, datetime, timedelta
from uuid import UUID

import numpy as np
import pytest

from app.engine import (
    Customer,
    CustomerColumns,
    FormerOwner,
    Manager,
    PlanOptions,
    RebalanceOptions,
    Tier,
    digest,
)
from app.vocabulary import ManagerStatus, Strategy

NOW = datetime(2025, 6, 1, tzinfo=UTC)
A, B = UUID(int=1), UUID(int=2)

TIER = Tier("key", 2, 4, 3)
MANAGER = Manager(id=A, level=3, capacity=40, workload=12)
FORMER = FormerOwner(manager_id=A, ended_at=NOW)
CUSTOMER = Customer(id=B, tier="key")
PLAN_OPTIONS = PlanOptions(now=NOW)
REBALANCE_OPTIONS = RebalanceOptions(now=NOW)

# For every field of every fact: another value. A new field without an entry fails the
# coverage test below, so the list here cannot fall behind the facts.
CHANGES = {
    Tier: {"code": "standard", "rank": 3, "weight": 2, "min_manager_level": 1},
    Manager: {
        "id": B,
        "level": 4,
        "capacity": 41,
        "workload": 13,
        "status": ManagerStatus.ON_LEAVE,
        "accepting_new": False,
        "region": "east",
        "languages": ("zh",),
        "industries": ("retail",),
        "team": "east-enterprise",
        "absent": True,
        "intake_room": 3,
        "tier_intake": (("standard", 1, 2),),
        "rotation_weight": 2,
        "off_hours": True,
    },
    FormerOwner: {"manager_id": B, "ended_at": NOW - timedelta(days=1)},
    Customer: {
        "id": A,
        "tier": "standard",
        "region": "east",
        "language": "zh",
        "industry": "retail",
        "annual_value": 5000.0,
        "satisfaction": 7.5,
        "pinned": True,
        "manager_id": A,
        "former_owners": (FORMER,),
        "last_moved_at": NOW,
    },
    PlanOptions: {
        "strategy": Strategy.OPTIMAL,
        "now": NOW + timedelta(seconds=1),
        "exclude_manager_ids": frozenset({A}),
        "successor_id": A,
        "force": True,
        "explain": "full",
        "utilization_penalty": 10.0,
        "solver_node_limit": 1_000,
        "rotation": (("pool", A),),
        "rotation_counts": (("pool", A, 3),),
        "deadline": 5.0,
    },
    RebalanceOptions: {
        "now": NOW + timedelta(seconds=1),
        "target_utilization": 0.9,
        "max_spread": 0.2,
        "min_days_since_move": 30,
        "exclude_manager_ids": frozenset({A}),
        "explain": "full",
        "utilization_penalty": 10.0,
        "deadline": 5.0,
    },
}
BASE = {
    Tier: TIER,
    Manager: MANAGER,
    FormerOwner: FORMER,
    Customer: CUSTOMER,
    PlanOptions: PLAN_OPTIONS,
    RebalanceOptions: REBALANCE_OPTIONS,
}


@pytest.mark.parametrize("fact", list(CHANGES), ids=lambda t: t.__name__)
def test_every_field_of_every_fact_has_a_change(fact):
    assert set(CHANGES[fact]) == {f.name for f in dataclasses.fields(fact)}


@pytest.mark.parametrize(
    ("fact", "field"),
    [(fact, name) for fact, changes in CHANGES.items() for name in changes],
    ids=lambda v: v if isinstance(v, str) else v.__name__,
)
def test_a_change_of_any_field_changes_the_digest(fact, field):
    base = BASE[fact]
    changed = dataclasses.replace(base, **{field: CHANGES[fact][field]})
    assert digest(changed) != digest(base)
    assert digest((changed,)) != digest((base,)), "inside a tuple too"


def _columns(**changes) -> CustomerColumns:
    values = {
        "ids": np.frombuffer(A.bytes + B.bytes, dtype="S16").copy(),
        "tier": np.array([0, 1], np.int16),
        "tier_codes": ("key", "standard"),
        "region": np.array([0, -1], np.int32),
        "regions": ("east",),
        "language": np.array([-1, 0], np.int32),
        "languages": ("zh",),
        "industry": np.array([0, 0], np.int32),
        "industries": ("retail",),
        "annual_value": np.array([1.0, np.nan]),
        "satisfaction": np.array([np.nan, 8.0]),
        "pinned": np.array([False, True]),
        "owner": np.array([0, -1], np.int32),
        "owner_ids": (A,),
        "last_moved_at": np.array([0, 86_400], np.int64),
        "former_owners": {0: (FORMER,)},
    }
    return CustomerColumns(**{**values, **changes})


COLUMN_CHANGES = {
    "ids": np.frombuffer(B.bytes + A.bytes, dtype="S16").copy(),
    "tier": np.array([1, 1], np.int16),
    "tier_codes": ("key", "strategic"),
    "region": np.array([0, 0], np.int32),
    "regions": ("west",),
    "language": np.array([0, 0], np.int32),
    "languages": ("en",),
    "industry": np.array([-1, 0], np.int32),
    "industries": ("banking",),
    "annual_value": np.array([2.0, np.nan]),
    "satisfaction": np.array([np.nan, 9.0]),
    "pinned": np.array([True, True]),
    "owner": np.array([0, 0], np.int32),
    "owner_ids": (B,),
    "last_moved_at": np.array([0, 86_401], np.int64),
    "former_owners": {1: (FORMER,)},
}


def test_every_customer_column_has_a_change():
    assert set(COLUMN_CHANGES) == {f.name for f in dataclasses.fields(CustomerColumns)}


@pytest.mark.parametrize("field", list(COLUMN_CHANGES))
def test_a_change_of_any_customer_column_changes_the_digest(field):
    assert digest(_columns(**{field: COLUMN_CHANGES[field]})) != digest(_columns())


def test_equal_inputs_give_equal_digests():
    assert digest(_columns(), (MANAGER,), 3) == digest(_columns(), (MANAGER,), 3)
    assert digest(MANAGER) == digest(dataclasses.replace(MANAGER, status="active"))


def test_an_unknown_type_is_refused_not_skipped():
    with pytest.raises(TypeError):
        digest(object())
