"""The single-customer placement makes the full engine's decision, on random instances."""

from __future__ import annotations

from datetime import timedelta

import pytest
from _engine_facts import NOW, cid, mid, options
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.engine import Customer, FormerOwner, Manager, RuleSet, Tier, plan_assignments
from app.engine.rules import Placement, TierCap
from app.engine.single import (
    CURRENT,
    EXCLUDED,
    FALLBACK,
    FORMER,
    ROW_FIELDS,
    SUCCESSOR,
    as_row,
    place_among,
    place_customer,
)
from app.vocabulary import Strategy

REGIONS = ["EU", "US", "APAC", None]
LANGUAGES = ["en", "fr", "de", "zh"]
TIER_CODES = ["strategic", "key", "standard", "long_tail"]


@st.composite
def tiers(draw):
    out = []
    for rank, code in enumerate(TIER_CODES, start=1):
        out.append(Tier(code, rank, draw(st.integers(1, 9)), draw(st.integers(1, 4))))
    return out


CONDITIONS = [
    {"field": "manager.languages", "op": "contains", "value": "$customer.language"},
    {"field": "manager.region", "op": "eq", "value": "$customer.region"},
    {"field": "manager.level", "op": "gte", "value": 3},
    {"field": "manager.utilization", "op": "lt", "value": 0.8},
    {"field": "manager.is_current_owner", "op": "eq", "value": True},
    {"field": "manager.is_former_owner", "op": "eq", "value": True},
    {"field": "manager.team", "op": "in", "value": ["a", "b"]},
    {"field": "manager.industries", "op": "overlaps", "value": ["retail", "energy"]},
    {"field": "manager.workload", "op": "lte", "value": 20},
    {"field": "customer.annual_value", "op": "gt", "value": 1000},
    {"field": "customer.tier", "op": "in", "value": ["strategic", "key"]},
    {"field": "customer.region", "op": "exists", "value": True},
    {"field": "customer.last_moved_at", "op": "lt", "value": "2025-05-01T00:00:00+00:00"},
]


@st.composite
def rule_sets(draw, managers):
    ids = [m.id for m in managers]
    eligibility = []
    for n in range(draw(st.integers(0, 2))):
        eligibility.append(
            {
                "id": f"hard_{n}",
                "when": draw(st.lists(st.sampled_from(CONDITIONS), max_size=1)),
                "conditions": draw(st.lists(st.sampled_from(CONDITIONS), min_size=1, max_size=2)),
            }
        )
    preferences = []
    for n in range(draw(st.integers(0, 5))):
        preferences.append(
            {
                "id": f"pref_{n}",
                "when": draw(st.lists(st.sampled_from(CONDITIONS), max_size=1)),
                "conditions": draw(st.lists(st.sampled_from(CONDITIONS), min_size=1, max_size=2)),
                "weight": draw(
                    st.one_of(
                        st.integers(-20, 60),
                        st.sampled_from([0.5, 2.5, 45.0, 1e-7, 0.1, 0.2, 0.3]),
                    )
                ),
            }
        )
    caps = {}
    for code in draw(st.lists(st.sampled_from(TIER_CODES), max_size=2, unique=True)):
        caps[code] = TierCap(
            max_new_per_day=draw(st.one_of(st.none(), st.integers(0, 3))),
            max_new_per_week=draw(st.one_of(st.none(), st.integers(0, 5))),
            fallback_manager_id=draw(st.one_of(st.none(), st.sampled_from(ids))),
        )
    placement = Placement(
        tier_caps=caps,
        fallback_manager_id=draw(st.one_of(st.none(), st.sampled_from(ids))),
    )
    rules = RuleSet.model_validate({"eligibility": eligibility, "preferences": preferences})
    return rules.model_copy(update={"placement": placement})


@st.composite
def managers(draw, most=10):
    out = []
    for i in draw(st.lists(st.integers(0, 60), min_size=1, max_size=most, unique=True)):
        capacity = draw(st.sampled_from([0, 1, 2, 3, 5, 8, 10, 12, 20, 30, 40, 60, 100]))
        out.append(
            Manager(
                id=mid(i),
                level=draw(st.integers(1, 5)),
                capacity=capacity,
                workload=draw(st.integers(0, max(capacity + 5, 1))),
                status=draw(st.sampled_from(["active"] * 6 + ["on_leave", "departing"])),
                accepting_new=draw(st.integers(0, 6)) > 0,
                region=draw(st.sampled_from(REGIONS)),
                languages=tuple(sorted(draw(st.sets(st.sampled_from(LANGUAGES), max_size=3)))),
                industries=tuple(draw(st.sets(st.sampled_from(["retail", "energy"]), max_size=1))),
                team=draw(st.sampled_from(["a", "b", "c", None])),
                absent=draw(st.integers(0, 7)) == 0,
                intake_room=draw(st.sampled_from([None] * 5 + [0, 1, 2])),
                tier_intake=tuple(
                    (code, day, day + draw(st.integers(0, 2)))
                    for code in draw(st.sets(st.sampled_from(TIER_CODES), max_size=2))
                    for day in [draw(st.integers(0, 3))]
                ),
                rotation_weight=draw(st.integers(1, 3)),
                off_hours=draw(st.integers(0, 6)) == 0,
            )
        )
    draw(st.randoms()).shuffle(out)  # the given order must not matter
    return out


@st.composite
def cases(draw, most=10):
    staff = draw(managers(most))
    ids = [m.id for m in staff]
    rules = draw(rule_sets(staff))
    owner = draw(st.one_of(st.none(), st.sampled_from(ids), st.just(mid(99))))
    former = tuple(
        FormerOwner(manager_id=m, ended_at=NOW - timedelta(days=d))
        for m, d in draw(st.lists(st.tuples(st.sampled_from(ids), st.integers(1, 400)), max_size=2))
    )
    customer = Customer(
        id=cid(draw(st.integers(0, 5))),
        tier=draw(st.sampled_from(TIER_CODES)),
        region=draw(st.sampled_from(REGIONS)),
        language=draw(st.sampled_from([*LANGUAGES, None])),
        industry=draw(st.sampled_from(["retail", "energy", None])),
        annual_value=draw(st.sampled_from([None, 500.0, 5000.0, float("nan")])),
        pinned=draw(st.integers(0, 9)) == 0,
        manager_id=owner,
        former_owners=former,
        last_moved_at=draw(
            st.sampled_from([None, NOW - timedelta(days=90, microseconds=1500), NOW])
        ),
    )
    strategy = draw(st.sampled_from([Strategy.BALANCED] * 3 + [Strategy.SUCCESSOR]))
    successor = draw(st.sampled_from(ids)) if strategy == Strategy.SUCCESSOR else None
    opts = options(
        strategy=strategy,
        successor_id=successor,
        force=draw(st.booleans()),
        explain=draw(st.sampled_from(["none", "basic", "basic"])),
        exclude_manager_ids=frozenset(draw(st.lists(st.sampled_from(ids), max_size=1))),
    )
    return customer, staff, draw(tiers()), rules, opts


def _same_decision(case) -> None:
    customer, staff, tier_list, rules, opts = case
    single = place_customer(customer, staff, tier_list, rules, opts)
    if single is None:
        assert customer.pinned or opts.explain == "full"
        return
    full = plan_assignments([customer], staff, tier_list, rules, opts).decision(0)
    assert single == full


def _rows_as_read(case):
    """The case's managers as the service reads them: rows in id order, each related to the
    customer marked by position (the marks the candidates' statement computes)."""
    customer, staff, tier_list, rules, opts = case
    ordered = sorted(staff, key=lambda m: m.id.int)
    tier = next(t for t in tier_list if t.code == customer.tier)
    former = {f.manager_id for f in customer.former_owners}
    marks = {}
    for i, m in enumerate(ordered):
        bits = (
            (CURRENT if m.id == customer.manager_id else 0)
            | (FORMER if m.id in former else 0)
            | (SUCCESSOR if m.id == opts.successor_id else 0)
            | (FALLBACK if m.id == rules.placement.fallback_for(tier.code) else 0)
            | (EXCLUDED if m.id in opts.exclude_manager_ids else 0)
        )
        if bits:
            marks[i] = bits
    return tier, [as_row(m) for m in ordered], marks


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_single_placement_decides_as_the_engine(case) -> None:
    _same_decision(case)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_rows_in_id_order_with_their_marks_decide_as_the_engine(case) -> None:
    """The form the service calls: rows read in id order (no ranks), marks by position."""
    customer, staff, tier_list, rules, opts = case
    tier, rows, marks = _rows_as_read(case)
    single = place_among(customer, tier, rules, opts, rows, marks)
    if single is None:
        assert customer.pinned or opts.explain == "full"
        return
    full = plan_assignments([customer], staff, tier_list, rules, opts).decision(0)
    assert single == full


def test_a_row_is_a_manager_in_its_field_order() -> None:
    m = Manager(
        id=mid(1),
        level=3,
        capacity=10,
        workload=4,
        region="EU",
        languages=("en",),
        tier_intake=(("key", 1, 2),),
        off_hours=True,
    )
    assert ROW_FIELDS[:4] == ("id", "level", "capacity", "workload")
    assert Manager(*as_row(m)) == m


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(most=40))
def test_many_managers_where_the_placement_skips_those_that_cannot_win(case) -> None:
    _same_decision(case)


def _manager(i: int, **kw) -> Manager:
    kw.setdefault("level", 5)
    kw.setdefault("capacity", 10)
    kw.setdefault("workload", 0)
    return Manager(id=mid(i), **kw)


TIERS = [Tier("standard", 1, 1, 1)]


@pytest.mark.parametrize("explain", ["none", "basic"])
def test_a_tie_the_fill_breaks_by_its_own_count_is_broken_the_same_way(explain) -> None:
    """Equal exact scores, different capacities: 0 - 50 × 1/10 = 45 - 50 × 1/1. The engine's
    fill counts the first unit of the manager with the smaller slope first."""
    rules = RuleSet.model_validate(
        {
            "preferences": [
                {
                    "id": "team_a",
                    "conditions": [{"field": "manager.team", "op": "eq", "value": "a"}],
                    "weight": 45,
                }
            ]
        }
    )
    staff = [_manager(0, capacity=10, team="b"), _manager(1, capacity=1, team="a")]
    case = (Customer(id=cid(0), tier="standard"), staff, TIERS, rules, options(explain=explain))
    _same_decision(case)


def test_identical_managers_go_to_the_lowest_id() -> None:
    staff = [_manager(i) for i in (3, 1, 2)]
    customer = Customer(id=cid(0), tier="standard")
    decision = place_customer(customer, staff, TIERS, RuleSet(), options())
    assert decision is not None and decision.manager_id == mid(1)
    _same_decision((customer, staff, TIERS, RuleSet(), options()))


def test_other_strategies_and_pinned_customers_are_left_to_the_engine() -> None:
    staff = [_manager(0)]
    customer = Customer(id=cid(0), tier="standard")
    for strategy in (Strategy.OPTIMAL, Strategy.ROUND_ROBIN, Strategy.WEIGHTED_ROUND_ROBIN):
        assert place_customer(customer, staff, TIERS, RuleSet(), options(strategy=strategy)) is None
    assert place_customer(customer, staff, TIERS, RuleSet(), options(explain="full")) is None
    pinned = Customer(id=cid(0), tier="standard", pinned=True)
    assert place_customer(pinned, staff, TIERS, RuleSet(), options()) is None
