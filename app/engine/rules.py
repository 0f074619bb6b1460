"""The declarative rule set: hard eligibility rules and weighted preferences.

A condition reads `customer.<attr>` or `manager.<attr>` and compares it with a literal or with a
reference `"$customer.<attr>"` / `"$manager.<attr>"`. A missing value (None, NaN) never satisfies
a condition, except through `exists`. The virtual manager fields `is_current_owner`,
`is_former_owner` (both about the customer being placed) and `utilization` (workload / capacity
as given, before the plan) are available too.

A rule set is bounded, so no plan it drives can overflow or run away: each preference weight is
a finite number of points within ±`MAX_WEIGHT`; at most `MAX_RULES` eligibility rules and
`MAX_RULES` preferences; at most `MAX_CONDITIONS` conditions per rule (`when` and `conditions`
together); at most `MAX_LIST_VALUES` values in a list literal, and literal texts of at most
`MAX_TEXT` characters. Stored rule sets are read back with `STORED` as validation context: one
written before a limit existed still loads (the engine refuses weights it cannot add up).
"""

from __future__ import annotations

import math
from dataclasses import fields
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from app.engine.facts import Customer, Manager

Op = Literal["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "contains", "overlaps", "exists"]

# Field types: str, num, bool, uuid, datetime, list (of str).
CUSTOMER_FIELDS: dict[str, str] = {
    "id": "uuid",
    "tier": "str",
    "region": "str",
    "language": "str",
    "industry": "str",
    "annual_value": "num",
    "satisfaction": "num",
    "pinned": "bool",
    "manager_id": "uuid",
    "last_moved_at": "datetime",
}
MANAGER_FIELDS: dict[str, str] = {
    "id": "uuid",
    "level": "num",
    "capacity": "num",
    "workload": "num",
    "status": "str",
    "accepting_new": "bool",
    "region": "str",
    "languages": "list",
    "industries": "list",
    "team": "str",
}
MANAGER_VIRTUAL_FIELDS: dict[str, str] = {
    "is_current_owner": "bool",
    "is_former_owner": "bool",
    "utilization": "num",
}
RELATION_FIELDS = frozenset({"is_current_owner", "is_former_owner"})

# Keep the rule vocabulary honest: every plain field must exist on its fact dataclass.
assert set(CUSTOMER_FIELDS) <= {f.name for f in fields(Customer)}
assert set(MANAGER_FIELDS) <= {f.name for f in fields(Manager)}

BUILTIN_RULE_IDS = (
    "tier_min_level",
    "manager_active",
    "manager_accepting",
    "absent",
    "intake_cap",
    "capacity",
    "not_excluded",
    "pinned",
    "outside_hours",
)

_ORDERED = frozenset({"num", "datetime"})
_SCALAR = frozenset({"str", "num", "bool", "uuid", "datetime"})
_OPS_BY_TYPE: dict[str, frozenset[str]] = {
    "str": frozenset({"eq", "ne", "in", "not_in", "exists"}),
    "uuid": frozenset({"eq", "ne", "in", "not_in", "exists"}),
    "bool": frozenset({"eq", "ne", "exists"}),
    "num": frozenset({"eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "exists"}),
    "datetime": frozenset({"eq", "ne", "gt", "gte", "lt", "lte", "exists"}),
    "list": frozenset({"contains", "overlaps", "exists"}),
}

MAX_WEIGHT = 1_000_000
"""Largest preference weight, in points (either sign): a point is worth 2 pp of utilization."""
MAX_RULES = 200
"""Most eligibility rules, and most preferences, in one rule set."""
MAX_CONDITIONS = 20
"""Most conditions in one rule, `when` and `conditions` together."""
MAX_LIST_VALUES = 1_000
"""Most values in one list literal (`in`, `not_in`, `overlaps`)."""
MAX_TEXT = 1_000
"""Longest text literal."""
STORED: dict[str, bool] = {"stored": True}
"""Validation context of a rule set read back from storage: the size limits are not applied."""

Literal_ = str | int | float | bool
JsonValue = Literal_ | list[Literal_] | None


def field_type(path: str) -> str | None:
    """The type of `customer.<attr>` / `manager.<attr>`, None when unknown."""
    side, _, attr = path.partition(".")
    if side == "customer":
        return CUSTOMER_FIELDS.get(attr)
    if side == "manager":
        return MANAGER_FIELDS.get(attr) or MANAGER_VIRTUAL_FIELDS.get(attr)
    return None


def _known_fields() -> str:
    names = [f"customer.{a}" for a in CUSTOMER_FIELDS]
    names += [f"manager.{a}" for a in (*MANAGER_FIELDS, *MANAGER_VIRTUAL_FIELDS)]
    return ", ".join(names)


class Condition(BaseModel):
    """`{field, op, value}`: one comparison; value is a literal or `"$customer.<attr>"`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str
    op: Op
    value: JsonValue = None

    @field_validator("field")
    @classmethod
    def _check_field(cls, value: str) -> str:
        if field_type(value) is None:
            raise ValueError(f"unknown field {value!r}; known fields: {_known_fields()}")
        return value

    @field_validator("op")
    @classmethod
    def _check_op(cls, value: str, info: ValidationInfo) -> str:
        ftype = field_type(info.data.get("field", ""))
        if ftype is not None and value not in _OPS_BY_TYPE[ftype]:
            allowed = ", ".join(sorted(_OPS_BY_TYPE[ftype]))
            raise ValueError(
                f"operator {value!r} makes no sense for {info.data['field']} ({ftype}); "
                f"use one of: {allowed}"
            )
        return value

    @field_validator("value")
    @classmethod
    def _check_value(cls, value: JsonValue, info: ValidationInfo) -> JsonValue:
        ftype = field_type(info.data.get("field", ""))
        op = info.data.get("op")
        if ftype is None or op is None:
            return value
        if _limits_apply(info):
            _check_size(value)
        if op == "exists":
            if not isinstance(value, bool):
                raise ValueError("`exists` takes true or false")
            return value
        if isinstance(value, str) and value.startswith("$"):
            rtype = field_type(value[1:])
            if rtype is None:
                raise ValueError(f"unknown reference {value!r}; known fields: {_known_fields()}")
            _check_reference(ftype, op, rtype)
            return value
        _check_literal(ftype, op, value)
        return value

    @property
    def reference(self) -> str | None:
        """The referenced field path (without `$`), if the value is a reference."""
        if isinstance(self.value, str) and self.value.startswith("$") and self.op != "exists":
            return self.value[1:]
        return None

    def reads(self) -> set[str]:
        """Field paths this condition reads."""
        ref = self.reference
        return {self.field} if ref is None else {self.field, ref}

    def literal(self) -> Any:
        """The literal value converted to the field's type (UUIDs, datetimes)."""
        ftype = field_type(self.field)
        value = self.value
        if ftype == "uuid":
            if isinstance(value, list):
                return tuple(UUID(str(v)) for v in value)
            return UUID(str(value))
        if ftype == "datetime" and isinstance(value, str):
            return datetime.fromisoformat(value)
        if isinstance(value, list):
            return tuple(value)
        return value

    def describe(self) -> str:
        """`manager.level gte 4` / `manager.languages contains $customer.language`."""
        value = self.value if self.reference else repr(self.value)
        return f"{self.field} {self.op} {value}"


def _limits_apply(info: ValidationInfo) -> bool:
    """Size limits hold for new rule sets, not for stored ones (see `STORED`)."""
    return not (isinstance(info.context, dict) and info.context.get("stored"))


def _check_size(value: JsonValue) -> None:
    if isinstance(value, list) and len(value) > MAX_LIST_VALUES:
        raise ValueError(f"a list may hold at most {MAX_LIST_VALUES} values, got {len(value)}")
    texts = value if isinstance(value, list) else [value]
    if any(isinstance(v, str) and len(v) > MAX_TEXT for v in texts):
        raise ValueError(f"a text value may be at most {MAX_TEXT} characters long")


def _check_reference(ftype: str, op: str, rtype: str) -> None:
    if op in ("eq", "ne") and rtype != ftype:
        raise ValueError(f"cannot compare a {ftype} field with a {rtype} reference")
    if op in ("in", "not_in") and rtype != "list":
        raise ValueError(f"`{op}` needs a list reference, got a {rtype}")
    if op == "contains" and rtype not in ("str",):
        raise ValueError(f"`contains` needs a text reference, got a {rtype}")
    if op == "overlaps" and rtype != "list":
        raise ValueError(f"`overlaps` needs a list reference, got a {rtype}")
    if op in ("gt", "gte", "lt", "lte") and rtype != ftype:
        raise ValueError(f"cannot order a {ftype} field against a {rtype} reference")


def _scalar_ok(ftype: str, value: Any) -> bool:
    if ftype == "num":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if ftype == "bool":
        return isinstance(value, bool)
    if ftype == "uuid":
        try:
            UUID(str(value))
        except ValueError:
            return False
        return isinstance(value, str)
    if ftype == "datetime":
        try:
            datetime.fromisoformat(str(value))
        except ValueError:
            return False
        return isinstance(value, str)
    return isinstance(value, str)


def _check_literal(ftype: str, op: str, value: Any) -> None:
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not all(_scalar_ok(ftype, v) for v in value):
            raise ValueError(f"`{op}` needs a list of {ftype} values")
    elif op == "overlaps":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError("`overlaps` needs a list of text values")
    elif op == "contains":
        if not isinstance(value, str):
            raise ValueError("`contains` needs a text value")
    elif not _scalar_ok(ftype, value):
        raise ValueError(f"{op} needs a {ftype} value, got {value!r}")


class Rule(BaseModel):
    """A hard eligibility rule: where `when` holds (or is empty), all `conditions` must hold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]
    description: str | None = None
    when: list[Condition] = Field(default_factory=list)
    conditions: Annotated[list[Condition], Field(min_length=1)]

    @model_validator(mode="after")
    def _bounded(self, info: ValidationInfo) -> Rule:
        size = len(self.when) + len(self.conditions)
        if size > MAX_CONDITIONS and _limits_apply(info):
            raise ValueError(
                f"a rule may have at most {MAX_CONDITIONS} conditions (`when` and `conditions` "
                f"together), {self.id!r} has {size}"
            )
        return self

    def reads(self) -> set[str]:
        """Field paths this rule reads."""
        return set().union(*(c.reads() for c in (*self.when, *self.conditions)))


class Preference(Rule):
    """A soft rule: `weight` is added to the score where `when` and all `conditions` hold."""

    weight: float

    @field_validator("weight")
    @classmethod
    def _finite(cls, value: float, info: ValidationInfo) -> float:
        if not math.isfinite(value):
            raise ValueError("weight must be a finite number")
        if abs(value) > MAX_WEIGHT and _limits_apply(info):
            raise ValueError(f"weight must be between -{MAX_WEIGHT} and {MAX_WEIGHT} points")
        return value


RotationPeriod = Literal["none", "day", "week", "month"]


class TierCap(BaseModel):
    """Intake caps of one tier: at most so many new customers *of this tier* per manager in
    any 24 hours / 7 days (null: none), and who takes them when every eligible manager is
    capped (null: the rule set's ``fallback_manager_id``, else the pool)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_new_per_day: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    max_new_per_week: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    fallback_manager_id: UUID | None = None


class Placement(BaseModel):
    """How placements treat availability, intake and rotation (every field has a default).

    - ``rotation_period``: ``weighted_round_robin`` counters start again at each UTC day,
      week (Monday) or month; ``none`` never.
    - ``available_now``: a single-customer placement (``/customers/{id}/assign``, an inbound
      webhook's) skips managers outside their working hours (reason ``outside_hours``).
    - ``drain_pool``: the worker places waiting pool customers whenever some can be placed.
    - ``fallback_manager_id``: who takes a customer every eligible manager is capped for.
    - ``intake_counts_handovers``: handovers (and their covers) count toward intake caps.
    - ``tier_caps``: intake caps per tier code.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rotation_period: RotationPeriod = "none"
    available_now: bool = False
    drain_pool: bool = False
    fallback_manager_id: UUID | None = None
    intake_counts_handovers: bool = False
    tier_caps: dict[Annotated[str, Field(max_length=64)], TierCap] = Field(
        default_factory=dict, max_length=MAX_RULES
    )

    def fallback_for(self, tier: str) -> UUID | None:
        """The fallback owner of a tier's capped customers (the tier's, else the rule set's)."""
        cap = self.tier_caps.get(tier)
        if cap is not None and cap.fallback_manager_id is not None:
            return cap.fallback_manager_id
        return self.fallback_manager_id


class RuleSet(BaseModel):
    """The versioned, JSON-serialisable rules of the engine."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Annotated[int, Field(ge=1)] = 1
    eligibility: list[Rule] = Field(default_factory=list)
    preferences: list[Preference] = Field(default_factory=list)
    placement: Placement = Field(default_factory=Placement)

    @model_validator(mode="after")
    def _bounded_with_unique_ids(self, info: ValidationInfo) -> RuleSet:
        seen = set(BUILTIN_RULE_IDS)
        errors: list[InitErrorDetails] = []
        for kind in ("eligibility", "preferences"):
            count = len(getattr(self, kind))
            if count > MAX_RULES and _limits_apply(info):
                errors.append(
                    InitErrorDetails(
                        type=PydanticCustomError(
                            "too_many_rules",
                            "a rule set may have at most {limit} {kind}, got {count}",
                            {
                                "limit": MAX_RULES,
                                "kind": "preferences" if kind == "preferences" else "rules",
                                "count": count,
                            },
                        ),
                        loc=(kind,),
                        input=count,
                    )
                )
        for kind in ("eligibility", "preferences"):
            for i, rule in enumerate(getattr(self, kind)):
                if rule.id in seen:
                    what = "built-in rule" if rule.id in BUILTIN_RULE_IDS else "rule"
                    errors.append(
                        InitErrorDetails(
                            type=PydanticCustomError(
                                "duplicate_rule_id",
                                "'{id}' is already used by a {what}; rule ids must be unique",
                                {"id": rule.id, "what": what},
                            ),
                            loc=(kind, i, "id"),
                            input=rule.id,
                        )
                    )
                seen.add(rule.id)
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    def reads(self) -> set[str]:
        """Every field path read by some rule or preference."""
        return set().union(*(r.reads() for r in (*self.eligibility, *self.preferences)))

    @classmethod
    def default(cls) -> RuleSet:
        """Baton's default rules: no extra hard rule, continuity and fit as preferences.

        Scores are in points; with the default utilization penalty (50 points per unit of
        utilization) one point is worth two percentage points of a manager's utilization.
        """
        return cls.model_validate(
            {
                "eligibility": [],
                "preferences": [
                    {
                        "id": "stay_with_current_owner",
                        "description": "Continuity: keep the customer with its current owner",
                        "conditions": [
                            {"field": "manager.is_current_owner", "op": "eq", "value": True}
                        ],
                        "weight": 10,
                    },
                    {
                        "id": "prefer_former_owner",
                        "description": "Continuity: a manager who owned the customer before",
                        "conditions": [
                            {"field": "manager.is_former_owner", "op": "eq", "value": True}
                        ],
                        "weight": 8,
                    },
                    {
                        "id": "prefer_customer_language",
                        "description": "The manager speaks the customer's language",
                        "conditions": [
                            {
                                "field": "manager.languages",
                                "op": "contains",
                                "value": "$customer.language",
                            }
                        ],
                        "weight": 5,
                    },
                    {
                        "id": "prefer_same_industry",
                        "description": "The manager knows the customer's industry",
                        "conditions": [
                            {
                                "field": "manager.industries",
                                "op": "contains",
                                "value": "$customer.industry",
                            }
                        ],
                        "weight": 5,
                    },
                    {
                        "id": "prefer_same_region",
                        "description": "The manager works in the customer's region",
                        "conditions": [
                            {"field": "manager.region", "op": "eq", "value": "$customer.region"}
                        ],
                        "weight": 3,
                    },
                ],
            }
        )


def compare(op: str, left: Any, right: Any) -> bool:
    """Apply one operator to two plain values (None never matches, except via exists)."""
    if op == "exists":
        present = left is not None and left != ()
        return present == bool(right)
    if left is None or right is None:
        return False
    if isinstance(left, float) and math.isnan(left):
        return False
    match op:
        case "eq":
            return bool(left == right)
        case "ne":
            return bool(left != right)
        case "in":
            return left in right
        case "not_in":
            return left not in right
        case "gt":
            return bool(left > right)
        case "gte":
            return bool(left >= right)
        case "lt":
            return bool(left < right)
        case "lte":
            return bool(left <= right)
        case "contains":
            return right in left
        case "overlaps":
            return bool(set(left) & set(right))
    raise ValueError(f"unknown operator {op!r}")
