"""Rule sets are bounded, and the engine finishes on any rule set it accepts."""

from __future__ import annotations

import faulthandler

import numpy as np
import pytest
from _engine_facts import NOW, TIERS, cid, customer, manager, mid, options
from pydantic import ValidationError

from app.engine import EngineError, RebalanceOptions, RuleSet, plan_assignments, rebalance
from app.engine.lookahead import grouped_fill
from app.engine.rules import (
    MAX_CONDITIONS,
    MAX_LIST_VALUES,
    MAX_RULES,
    MAX_TEXT,
    MAX_WEIGHT,
    STORED,
)


@pytest.fixture(autouse=True)
def _no_hang():
    """A regression hangs in a loop that never yields; fail with a traceback instead."""
    faulthandler.dump_traceback_later(60, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def condition(field: str = "manager.region", op: str = "eq", value=None) -> dict:
    return {"field": field, "op": op, "value": "east" if value is None else value}


def preference(i: int, weight: float, **kw) -> dict:
    return {"id": f"p{i}", "weight": weight, "conditions": [condition(**kw)]}


def errors_of(payload: dict) -> list[tuple[tuple, str]]:
    with pytest.raises(ValidationError) as info:
        RuleSet.model_validate(payload)
    return [(tuple(e["loc"]), e["msg"]) for e in info.value.errors()]


@pytest.mark.parametrize(
    ("payload", "loc"),
    [
        ({"preferences": [preference(0, 1), preference(1, 1e308)]}, ("preferences", 1, "weight")),
        ({"preferences": [preference(0, -(MAX_WEIGHT + 1))]}, ("preferences", 0, "weight")),
        ({"preferences": [preference(0, float("nan"))]}, ("preferences", 0, "weight")),
        ({"preferences": [preference(0, float("inf"))]}, ("preferences", 0, "weight")),
        (
            {"preferences": [preference(i, 1) for i in range(MAX_RULES + 1)]},
            ("preferences",),
        ),
        (
            {
                "eligibility": [
                    {"id": f"e{i}", "conditions": [condition()]} for i in range(MAX_RULES + 1)
                ]
            },
            ("eligibility",),
        ),
        (
            {
                "eligibility": [
                    {"id": "ok", "conditions": [condition()]},
                    {
                        "id": "deep",
                        "when": [condition("customer.tier", "eq", "key")] * 2,
                        "conditions": [condition()] * (MAX_CONDITIONS - 1),
                    },
                ]
            },
            ("eligibility", 1),
        ),
        (
            {
                "eligibility": [
                    {
                        "id": "long_list",
                        "conditions": [
                            condition("manager.region", "in", ["r"] * (MAX_LIST_VALUES + 1))
                        ],
                    }
                ]
            },
            ("eligibility", 0, "conditions", 0, "value"),
        ),
        (
            {"preferences": [preference(0, 1, value="x" * (MAX_TEXT + 1))]},
            ("preferences", 0, "conditions", 0, "value"),
        ),
    ],
)
def test_rule_sets_beyond_the_limits_are_refused_at_the_rule(payload, loc):
    assert loc in [where for where, _ in errors_of(payload)]


def test_rule_sets_at_the_limits_are_accepted():
    rules = RuleSet.model_validate(
        {
            "eligibility": [
                {
                    "id": f"e{i}",
                    "when": [condition("customer.tier", "in", ["key"] * MAX_LIST_VALUES)],
                    "conditions": [condition("manager.level", "gte", 0)] * (MAX_CONDITIONS - 1),
                }
                for i in range(MAX_RULES)
            ],
            "preferences": [preference(i, MAX_WEIGHT) for i in range(MAX_RULES)],
        }
    )
    assert len(rules.preferences) == MAX_RULES


def test_duplicate_rule_id_message_names_the_id():
    rule = {"id": "same", "conditions": [condition()]}
    [(loc, msg)] = errors_of({"eligibility": [rule], "preferences": [{**rule, "weight": 1}]})
    assert loc == ("preferences", 0, "id")
    assert msg == "'same' is already used by a rule; rule ids must be unique"
    [(_, msg)] = errors_of({"eligibility": [{**rule, "id": "capacity"}]})
    assert msg == "'capacity' is already used by a built-in rule; rule ids must be unique"


def test_a_stored_rule_set_beyond_the_limits_still_loads():
    stored = {"preferences": [preference(0, 1e308), preference(1, 1e308)]}
    rules = RuleSet.model_validate(stored, context=STORED)
    assert [p.weight for p in rules.preferences] == [1e308, 1e308]


def _book(n_customers: int = 60, n_managers: int = 8):
    managers = [
        manager(i, capacity=60, region="east" if i % 2 else "west", languages=("en",))
        for i in range(n_managers)
    ]
    tiers = ("strategic", "key", "standard", "long_tail")
    customers = [
        customer(i, tiers[i % 4], region="east", language="en") for i in range(n_customers)
    ]
    return customers, managers


@pytest.mark.parametrize("sign", [1, -1, 0])
@pytest.mark.parametrize("strategy", ["balanced", "optimal", "round_robin"])
def test_huge_allowed_weights_plan_and_place_everyone(strategy, sign):
    # sign 0 alternates: scores up and down by the largest weights allowed
    weights = [MAX_WEIGHT * (sign or (-1) ** i) for i in range(MAX_RULES)]
    rules = RuleSet.model_validate(
        {"preferences": [preference(i, w) for i, w in enumerate(weights)]}
    )
    customers, managers = _book()
    plan = plan_assignments(customers, managers, TIERS, rules, options(strategy=strategy))
    assert plan.metrics.pooled == 0
    placed = {plan.decision(i).manager_id for i in range(len(customers))}
    assert placed <= {m.id for m in managers}
    if strategy == "balanced" and sign == 1:
        assert placed <= {mid(i) for i in range(1, 8, 2)}, "the preferred (east) managers"


def test_huge_allowed_weights_rebalance():
    rules = RuleSet.model_validate(
        {"preferences": [preference(i, MAX_WEIGHT) for i in range(MAX_RULES)]}
    )
    managers = [manager(i, capacity=40, region="east" if i % 2 else "west") for i in range(6)]
    customers = [customer(i, "key", region="east", manager_id=mid(0)) for i in range(10)]
    plan = rebalance(
        customers, managers, TIERS, rules, RebalanceOptions(now=NOW, target_utilization=0.5)
    )
    assert plan.metrics.peak_utilization <= 0.5
    assert plan.decision(0).customer_id == cid(0)


def test_weights_the_engine_cannot_add_up_are_an_engine_error():
    stored = RuleSet.model_validate(
        {"preferences": [preference(0, 1e308), preference(1, 1e308)]}, context=STORED
    )
    customers, managers = _book(4, 2)
    with pytest.raises(EngineError, match="preference weights add up"):
        plan_assignments(customers, managers, TIERS, stored, options())
    with pytest.raises(EngineError, match="preference weights add up"):
        rebalance(customers, managers, TIERS, stored, RebalanceOptions(now=NOW))


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_grouped_fill_stops_on_scores_that_do_not_compare():
    # Infinite preferences made every unit's score NaN: the hand-out loop never progressed.
    counts = grouped_fill(
        pref=np.array([np.inf, np.inf, 0.0]),
        load=np.zeros(3),
        capacity=np.full(3, 10),
        units=np.full(3, 10),
        group=np.array([0, 0, 1]),
        group_units=np.array([20, 10]),
        weight=1,
        n=12,
        penalty=50.0,
    )
    assert counts.sum() <= 12
