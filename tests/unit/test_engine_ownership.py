"""The vectorised ownership check of a whole book agrees with the placement guard."""

from __future__ import annotations

from _engine_facts import TIERS, cid, mid
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.engine import Customer, Manager, RuleSet, owners_violating, placement_violations

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
