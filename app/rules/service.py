"""The engine's rule set: versioned, the newest in force, old versions kept."""

from __future__ import annotations

import functools
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import RuleSetVersion
from app.engine import RuleSet
from app.engine.rules import STORED
from app.errors import InvalidInput
from app.rules import repository
from app.rules.schemas import RuleSetOut


def _out(row: RuleSetVersion | None) -> RuleSetOut:
    if row is None:
        return RuleSetOut(
            version=0, rules=RuleSet.default(), created_at=None, created_by="built-in", note=None
        )
    return RuleSetOut(
        version=row.version,
        rules=RuleSet.model_validate(row.rules, context=STORED),
        created_at=row.created_at,
        created_by=row.created_by,
        note=row.note,
    )


@functools.lru_cache(maxsize=32)
def parse_stored(rules_json: str | None) -> RuleSet:
    """A stored rule set from its JSON text (None: the built-in default), parsed once per
    text: a version never changes, so the hot paths (the placement guard, a single-customer
    placement) that read the JSON with their other facts skip validating it."""
    if rules_json is None:
        return RuleSet.default()
    return RuleSet.model_validate_json(rules_json, context=STORED)


async def current_rules(session: AsyncSession) -> RuleSetOut:
    """The rule set in force: the newest stored version, or the built-in default (version 0)."""
    return _out(await repository.latest(session))


async def list_versions(session: AsyncSession) -> list[RuleSetOut]:
    """Every stored version, newest first."""
    return [_out(r) for r in await repository.all_versions(session)]


def validate_rules(payload: dict[str, Any]) -> RuleSet:
    """Parse a rule set; errors point at the offending rule (``eligibility.2.conditions.0``)."""
    try:
        return RuleSet.model_validate(payload)
    except ValidationError as exc:
        errors = [
            {"loc": ["body", "rules", *e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        where = ".".join(str(p) for p in errors[0]["loc"][2:]) or "rules"
        raise InvalidInput(
            f"Invalid rule set at {where}: {errors[0]['msg']}", errors=errors
        ) from exc


async def replace_rules(
    session: AsyncSession, *, payload: dict[str, Any], actor: str, note: str | None
) -> RuleSetOut:
    """Store a new version of the rule set; it is in force from this transaction's commit."""
    rules = validate_rules(payload)
    row = await repository.insert_next(
        session, rules=rules.model_dump(mode="json"), actor=actor, note=note
    )
    return _out(row)
