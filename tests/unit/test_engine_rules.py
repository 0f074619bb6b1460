"""Rule sets: validation (with error locations) and evaluation of every operator."""

from __future__ import annotations

import pytest
from _engine_facts import NOW, TIERS, customer, manager, mid, options
from pydantic import ValidationError

from app.engine import FormerOwner, RuleSet, plan_assignments


def rule_set(*conditions, when=(), kind="eligibility", weight=5.0) -> RuleSet:
    rule = {"id": "r", "conditions": list(conditions), "when": list(when)}
    if kind == "preferences":
        rule["weight"] = weight
    return RuleSet.model_validate({kind: [rule]})


def cond(field, op, value=None):
    return {"field": field, "op": op, "value": value}


def eligible(rules: RuleSet, c, managers) -> set:
    """Managers that pass every rule for customer c (capacity is ample)."""
    result = set()
    for m in managers:
        plan = plan_assignments([c], [m], TIERS, rules, options(explain="none"))
        if plan.decision(0).manager_id is not None:
            result.add(m.id)
    return result


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (cond("manager.region", "eq", "EU"), {0}),
        (cond("manager.region", "ne", "EU"), {1}),  # a missing region never matches
        (cond("manager.region", "in", ["EU", "US"]), {0, 1}),
        (cond("manager.region", "not_in", ["EU"]), {1}),
        (cond("manager.level", "gt", 3), {1}),
        (cond("manager.level", "gte", 3), {0, 1}),
        (cond("manager.level", "lt", 4), {0, 2}),
        (cond("manager.level", "lte", 2), {2}),
        (cond("manager.languages", "contains", "fr"), {1}),
        (cond("manager.languages", "overlaps", ["de", "fr"]), {0, 1}),
        (cond("manager.region", "exists", True), {0, 1}),
        (cond("manager.region", "exists", False), {2}),
        (cond("manager.languages", "exists", False), {2}),
        (cond("manager.region", "eq", "$customer.region"), {1}),
        (cond("manager.languages", "contains", "$customer.language"), {1}),
        (cond("customer.language", "in", "$manager.languages"), {1}),
        (cond("manager.utilization", "lt", 0.5), {0, 2}),
        (cond("manager.is_former_owner", "eq", True), {2}),
        (cond("manager.is_current_owner", "eq", False), {1, 2}),
    ],
)
def test_each_operator(condition, expected):
    managers = [
        manager(0, level=3, region="EU", languages=("de",), workload=10),
        manager(1, level=4, region="US", languages=("en", "fr"), workload=60),
        manager(2, level=2, region=None, languages=(), workload=0),
    ]
    c = customer(
        1,
        tier="long_tail",
        region="US",
        language="fr",
        manager_id=mid(0),
        former_owners=(FormerOwner(mid(2), NOW),),
    )
    assert eligible(rule_set(condition), c, managers) == {mid(i) for i in expected}


def test_customer_side_conditions_and_when_guard():
    strategic_needs_senior_local = RuleSet.model_validate(
        {
            "eligibility": [
                {
                    "id": "strategic_senior_local",
                    "description": "strategic customers need a level-4 manager in their region",
                    "when": [cond("customer.tier", "eq", "strategic")],
                    "conditions": [
                        cond("manager.level", "gte", 4),
                        cond("manager.region", "eq", "$customer.region"),
                    ],
                }
            ]
        }
    )
    managers = [
        manager(0, level=5, region="EU"),
        manager(1, level=4, region="US"),
        manager(2, level=3, region="EU"),
    ]
    strategic = customer(1, tier="strategic", region="EU")
    standard = customer(2, tier="standard", region="EU")
    assert eligible(strategic_needs_senior_local, strategic, managers) == {mid(0)}
    assert eligible(strategic_needs_senior_local, standard, managers) == {mid(0), mid(1), mid(2)}


def test_customer_only_condition_with_numbers():
    rules = rule_set(
        cond("manager.level", "gte", 5), when=[cond("customer.annual_value", "gte", 1e6)]
    )
    managers = [manager(0, level=5), manager(1, level=2)]
    big = customer(1, tier="long_tail", annual_value=2e6)
    small = customer(2, tier="long_tail", annual_value=1e3)
    unknown = customer(3, tier="long_tail")
    assert eligible(rules, big, managers) == {mid(0)}
    assert eligible(rules, small, managers) == {mid(0), mid(1)}
    assert eligible(rules, unknown, managers) == {mid(0), mid(1)}


def test_preference_examples_score():
    rules = RuleSet.model_validate(
        {
            "preferences": [
                {
                    "id": "same_industry",
                    "conditions": [cond("manager.industries", "contains", "$customer.industry")],
                    "weight": 5,
                },
                {
                    "id": "former_owner",
                    "conditions": [cond("manager.is_former_owner", "eq", True)],
                    "weight": 8,
                },
            ]
        }
    )
    managers = [manager(0, industries=("retail",)), manager(1), manager(2)]
    c = customer(1, industry="retail", former_owners=(FormerOwner(mid(1), NOW),))
    plan = plan_assignments([c], managers, TIERS, rules, options(utilization_penalty=0))
    decision = plan.decision(0)
    assert decision.manager_id == mid(1)
    assert decision.score == 8
    prefs = {p["id"]: p for p in decision.explanation["preferences"]}
    assert prefs["former_owner"] == {
        "id": "former_owner",
        "weight": 8.0,
        "matched": True,
        "contribution": 8.0,
    }
    assert prefs["same_industry"]["matched"] is False


@pytest.mark.parametrize(
    ("payload", "loc"),
    [
        (
            {"eligibility": [{"id": "a", "conditions": [cond("manager.levle", "eq", 1)]}]},
            ("eligibility", 0, "conditions", 0, "field"),
        ),
        (
            {
                "eligibility": [
                    {"id": "a", "conditions": [cond("manager.level", "gte", 1)]},
                    {"id": "b", "conditions": [cond("manager.level", "gte", 1)]},
                    {"id": "c", "conditions": [cond("manager.level", "contains", 1)]},
                ]
            },
            ("eligibility", 2, "conditions", 0, "op"),
        ),
        (
            {"eligibility": [{"id": "a", "conditions": [cond("manager.level", "gte", "high")]}]},
            ("eligibility", 0, "conditions", 0, "value"),
        ),
        (
            {"eligibility": [{"id": "a", "conditions": [cond("manager.region", "eq", "$x.y")]}]},
            ("eligibility", 0, "conditions", 0, "value"),
        ),
        (
            {
                "eligibility": [
                    {
                        "id": "a",
                        "conditions": [cond("manager.region", "eq", "$customer.annual_value")],
                    }
                ]
            },
            ("eligibility", 0, "conditions", 0, "value"),
        ),
        (
            {
                "preferences": [
                    {"id": "a", "conditions": [cond("manager.level", "gte", 1)], "weight": 1},
                    {"id": "a", "conditions": [cond("manager.level", "gte", 2)], "weight": 1},
                ]
            },
            ("preferences", 1, "id"),
        ),
        (
            {"eligibility": [{"id": "capacity", "conditions": [cond("manager.level", "gte", 1)]}]},
            ("eligibility", 0, "id"),
        ),
        (
            {
                "eligibility": [
                    {
                        "id": "a",
                        "when": [cond("customer.tier", "gt", 1)],
                        "conditions": [cond("manager.level", "gte", 1)],
                    }
                ]
            },
            ("eligibility", 0, "when", 0, "op"),
        ),
        (
            {"eligibility": [{"id": "a", "conditions": [cond("manager.region", "in", "EU")]}]},
            ("eligibility", 0, "conditions", 0, "value"),
        ),
        (
            {"eligibility": [{"id": "a", "conditions": []}]},
            ("eligibility", 0, "conditions"),
        ),
        ({"eligibility": [], "extra": 1}, ("extra",)),
    ],
)
def test_invalid_rule_sets_point_at_the_offending_rule(payload, loc):
    with pytest.raises(ValidationError) as info:
        RuleSet.model_validate(payload)
    assert loc in [tuple(e["loc"]) for e in info.value.errors()]


def test_default_rule_set_round_trips_through_json():
    rules = RuleSet.default()
    assert RuleSet.model_validate_json(rules.model_dump_json()) == rules
    assert {p.id: p.weight for p in rules.preferences}["prefer_former_owner"] == 8
