"""The vectorised ownership check of a whole book agrees with the placement guard."""

from __future__ import annotations

from dataclasses import replace

from _engine_facts import NOW, TIERS, cid, mid
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.engine import (
    Customer,
    FormerOwner,
    Manager,
    RuleSet,
    owners_violating,
    placement_violations,
)
from app.engine.guard import intake_implies_ownership

RULES = RuleSet.model_validate(
    {
        "eligibility": [
            {
                "id": "same_region",
                "when": [{"field": "customer.tier", "op": "in", "value": ["strategic", "key"]}],
                "conditions": [
                    {"field": "manager.region", "op": "eq", "value": "$customer.region"}
                ],
            },
            {
                "id": "keeps_own",
                "conditions": [
                    {"field": "manager.is_current_owner", "op": "eq", "value": True},
                    {"field": "manager.languages", "op": "contains", "value": "$customer.language"},
                ],
            },
        ]
    }
)
TIER = {t.code: t for t in TIERS}


@st.composite
def books(draw):
    managers = [
        Manager(
            id=mid(i),
            level=draw(st.integers(1, 5)),
            capacity=draw(st.integers(0, 40)),
            workload=0,
            status=draw(st.sampled_from(["active", "active", "on_leave", "departed"])),
            region=draw(st.sampled_from(["EU", "US", None])),
            languages=tuple(sorted(draw(st.sets(st.sampled_from(["en", "fr"]), max_size=2)))),
        )
        for i in range(draw(st.integers(1, 5)))
    ]
    customers = [
        Customer(
            id=cid(i),
            tier=draw(st.sampled_from(sorted(TIER))),
            region=draw(st.sampled_from(["EU", "US", None])),
            language=draw(st.sampled_from(["en", "fr", None])),
            manager_id=draw(st.sampled_from([None, *(m.id for m in managers)])),
        )
        for i in range(draw(st.integers(0, 25)))
    ]
    return customers, managers, draw(st.sampled_from([RULES, RuleSet.default()]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books())
def test_owners_violating_agrees_with_the_guard_in_ownership_mode(book):
    customers, managers, rules = book
    by_id = {m.id: m for m in managers}
    broken = owners_violating(customers, managers, TIERS, rules)
    found = broken.violating
    for i, c in enumerate(customers):
        expected = c.manager_id is not None and bool(
            placement_violations(c, by_id[c.manager_id], TIER[c.tier], rules, mode="ownership")
        )
        assert bool(found[i]) == expected, (c, by_id.get(c.manager_id))
        if expected:
            rule = placement_violations(
                c, by_id[c.manager_id], TIER[c.tier], rules, mode="ownership"
            )[0].rule
            assert broken.rules[broken.first[i]] == rule


FIT_RULES = RuleSet.model_validate(
    {
        "eligibility": [
            {
                "id": "same_region",
                "when": [{"field": "customer.tier", "op": "in", "value": ["strategic", "key"]}],
                "conditions": [
                    {"field": "manager.region", "op": "eq", "value": "$customer.region"}
                ],
            },
            {
                "id": "speaks_it",
                "when": [{"field": "manager.is_former_owner", "op": "eq", "value": False}],
                "conditions": [
                    {"field": "manager.languages", "op": "contains", "value": "$customer.language"}
                ],
            },
        ]
    }
)
LOAD_RULES = RuleSet.model_validate(
    {
        "eligibility": [
            {
                "id": "not_too_busy",
                "conditions": [{"field": "manager.utilization", "op": "lte", "value": 0.5}],
            }
        ]
    }
)


@st.composite
def moves(draw):
    customers, managers, _ = draw(books())
    rules = draw(st.sampled_from([FIT_RULES, RuleSet.default(), RULES, LOAD_RULES]))
    return customers, managers, rules


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(moves())
def test_an_owner_the_intake_guard_allows_keeps_the_customer_when_the_rules_allow_it(move):
    """``intake_implies_ownership``: for rule sets that read no fact a move changes, a
    customer moved to an owner the guard allows holds no violation in ownership mode."""
    customers, managers, rules = move
    assert intake_implies_ownership(rules) == (rules in (FIT_RULES, RuleSet.default()))
    if not intake_implies_ownership(rules):
        return
    for c in customers:
        for m in managers:
            tier = TIER[c.tier]
            if placement_violations(c, m, tier, rules) or c.manager_id == m.id:
                continue
            former = () if c.manager_id is None else (FormerOwner(c.manager_id, NOW),)
            moved = replace(
                c, manager_id=m.id, last_moved_at=NOW, former_owners=c.former_owners + former
            )
            owner = replace(m, workload=m.workload + tier.weight)
            assert placement_violations(moved, owner, tier, rules, mode="ownership") == []
