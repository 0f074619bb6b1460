"""Scenario use cases: draft a re-division, preview it against the live book, compare
previews, activate one in a single transaction."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app import engine
from app.assignments import columnar, compliance, loading
from app.assignments.repository import move_customers
from app.assignments.service import lock_placements
from app.audit import service as audit
from app.core.pagination import (
    Page,
    cursor_key,
    keyset_page,
)
from app.customers import service as customers
from app.errors import Conflict, InvalidInput, InvalidTransition, NotFound
from app.events import outbox
from app.managers import repository as manager_rows
from app.managers import service as managers
from app.observability.metrics import time_engine
from app.rules import service as rules
from app.rules.service import current_rules, validate_rules
from app.scenarios import planning, repository
from app.scenarios.repository import ScenarioRow
from app.scenarios.schemas import (
    ComparedScenario,
    Comparison,
    NewManager,
    PreviewOptions,
    PreviewOut,
    PreviewSummary,
    ScenarioChanges,
    ScenarioCreate,
    ScenarioOut,
    ScenarioState,
    ScenarioUpdate,
    TeamChange,
)
from app.tiers import service as tiers
from app.tiers.schemas import TierUpdate


class StaleScenario(Conflict):
    code = "stale_scenario"
    title = "The preview is stale"


class NotPreviewed(Conflict):
    code = "not_previewed"
    title = "The scenario has no preview"


def _out(row: ScenarioRow) -> ScenarioOut:
    preview = row.preview
    summary = None
    if preview is not None:
        summary = PreviewSummary(
            computed_at=preview["computed_at"],
            moves=preview["moves"],
            continuity=preview["continuity"],
            violations_left=preview["violations_left"],
            peak_utilization=preview["after"]["peak_utilization"],
            utilization_spread=preview["after"]["utilization_spread"],
        )
    return ScenarioOut.model_validate({**asdict(row), "preview": summary})


async def _get(
    session: AsyncSession, scenario_id: uuid.UUID, *, lock: bool = False, moves: bool = False
) -> ScenarioRow:
    row = await repository.get(session, scenario_id, lock=lock, moves=moves)
    if row is None:
        raise NotFound(f"Scenario {scenario_id} does not exist.")
    return row


def _draft(row: ScenarioRow, action: str) -> None:
    if row.state != "draft":
        raise InvalidTransition(
            f"Scenario {row.id} is {row.state}; only a draft can be {action}.",
            state=row.state,
        )


async def _checked_changes(session: AsyncSession, changes: ScenarioChanges) -> dict[str, Any]:
    """The changes as stored (new managers get their ids), after checking that every
    manager, tier and rule they name exists or parses and that new managers' emails are
    free (422 naming the field otherwise; activation checks again)."""
    errors: list[dict[str, Any]] = []
    if changes.rules is not None:
        validate_rules(changes.rules)
    wanted = [m.manager_id for m in changes.managers]
    known = await repository.existing_managers(session, wanted) if wanted else set()
    for i, m in enumerate(changes.managers):
        if m.manager_id not in known:
            errors.append(
                {"loc": ["body", "changes", "managers", i, "manager_id"], "msg": "unknown manager"}
            )
    if len(set(wanted)) != len(wanted):
        errors.append({"loc": ["body", "changes", "managers"], "msg": "a manager is listed twice"})
    codes = await repository.tier_codes(session)
    for i, t in enumerate(changes.tiers):
        if t.code not in codes:
            errors.append({"loc": ["body", "changes", "tiers", i, "code"], "msg": "unknown tier"})
    for i, c in enumerate(changes.customers):
        if c.set.tier is not None and c.set.tier not in codes:
            errors.append(
                {"loc": ["body", "changes", "customers", i, "set", "tier"], "msg": "unknown tier"}
            )
        owner = c.filter.manager_id if c.filter is not None else None
        if owner is not None and not await repository.existing_managers(session, [owner]):
            errors.append(
                {
                    "loc": ["body", "changes", "customers", i, "filter", "manager_id"],
                    "msg": "unknown manager",
                }
            )
    emails = [m.email.lower() for m in changes.new_managers]
    for i, new in enumerate(changes.new_managers):
        taken = await manager_rows.find_conflict(
            session, email=new.email, external_ref=new.external_ref, exclude=None
        )
        if taken is not None or emails.count(new.email.lower()) > 1:
            errors.append(
                {
                    "loc": ["body", "changes", "new_managers", i, taken or "email"],
                    "msg": f"another manager already has this {taken or 'email'}",
                }
            )
    if errors:
        raise InvalidInput(
            f"The scenario's changes name what does not exist: {errors[0]['msg']} at "
            + ".".join(str(p) for p in errors[0]["loc"][1:]),
            errors=errors,
        )
    stored = changes.model_dump(mode="json", exclude_unset=True)
    stored["new_managers"] = [
        {**m.model_dump(mode="json"), "id": str(m.id or uuid.uuid4())} for m in changes.new_managers
    ]
    stored["managers"] = [m.model_dump(mode="json", exclude_unset=True) for m in changes.managers]
    stored["tiers"] = [t.model_dump(mode="json", exclude_unset=True) for t in changes.tiers]
    stored["customers"] = [
        {
            **c.model_dump(mode="json", exclude_unset=True, exclude={"set", "filter"}),
            **(
                {"filter": c.filter.model_dump(mode="json", exclude_unset=True)}
                if c.filter is not None
                else {}
            ),
            "set": c.set.model_dump(mode="json", exclude_unset=True),
        }
        for c in changes.customers
    ]
    return stored


async def create_scenario(
    session: AsyncSession, *, data: ScenarioCreate, actor: str
) -> ScenarioOut:
    """Save a draft re-division; nothing live changes."""
    changes = await _checked_changes(session, data.changes)
    scenario_id = await repository.insert_scenario(
        session,
        {
            "name": data.name,
            "description": data.description,
            "changes": changes,
            "created_by": actor,
        },
    )
    return _out(await _get(session, scenario_id))


async def get_scenario(session: AsyncSession, *, scenario_id: uuid.UUID) -> ScenarioOut:
    """One scenario, or NotFound."""
    return _out(await _get(session, scenario_id))


async def list_scenarios(
    session: AsyncSession, *, cursor: str | None, limit: int, state: ScenarioState | None
) -> Page[ScenarioOut]:
    """Scenarios newest first; archived ones only when asked for."""
    states: list[str] = [state] if state is not None else ["draft", "activated"]
    after = cursor_key(cursor, (datetime, uuid.UUID))
    rows = await repository.list_page(
        session, states=states, after=(after[0], after[1]) if after else None, limit=limit + 1
    )
    items, next_cursor = keyset_page(
        rows,
        limit=limit,
        item=_out,
        key=lambda r: [r.created_at.isoformat(), str(r.id)],
    )
    return Page[ScenarioOut](items=items, next_cursor=next_cursor)


async def update_scenario(
    session: AsyncSession, *, scenario_id: uuid.UUID, data: ScenarioUpdate
) -> ScenarioOut:
    """Change a draft; new changes drop the stored preview (preview again)."""
    row = await _get(session, scenario_id, lock=True)
    _draft(row, "changed")
    values: dict[str, Any] = data.model_dump(exclude_unset=True, exclude={"changes"})
    if data.changes is not None:
        values["changes"] = await _checked_changes(session, data.changes)
        values.update(
            preview=None,
            preview_options=None,
            preview_digests=None,
            preview_moves=None,
            previewed_at=None,
            previewed_by=None,
        )
    if values:
        await repository.update_fields(session, scenario_id, values)
    return _out(await _get(session, scenario_id))


async def archive_scenario(session: AsyncSession, *, scenario_id: uuid.UUID) -> ScenarioOut:
    """Put a draft away (kept, listed with `state=archived`)."""
    row = await _get(session, scenario_id, lock=True)
    _draft(row, "archived")
    await repository.update_fields(session, scenario_id, {"state": "archived"})
    return _out(await _get(session, scenario_id))


async def load_book(session: AsyncSession, *, lock: bool = False) -> planning.Book:
    """The live book as engine facts: one binary COPY of every active owned customer (in id
    order, so digests and plans do not depend on read order), the
    managers (``lock``: their rows locked, so workloads hold until the transaction ends),
    tiers and the rule set in force."""
    tier_facts = await loading.load_tiers(session)
    include = await repository.departed_owners(session)
    manager_facts = await loading.load_managers(
        session, include=include, lock=lock, workloads=False
    )
    book = await columnar.load_owned_customer_columns(
        session, tiers=tier_facts, managers=manager_facts
    )
    manager_facts = columnar.with_workloads(manager_facts, book, tier_facts)
    in_force = await current_rules(session)
    return planning.Book(
        customers=book,
        managers=manager_facts,
        tiers=tier_facts,
        rules=in_force.rules,
        rules_version=in_force.version,
    )


def _compute(
    book: planning.Book, changes: dict[str, Any], options: dict[str, Any], now: datetime
) -> planning.Redivision:
    scenario_rules = validate_rules(changes["rules"]) if changes.get("rules") else None
    try:
        with time_engine("scenario_preview"):
            changed = planning.apply_changes(book, changes, scenario_rules)
            return planning.redivide(book, changed, options=options, now=now)
    except engine.EngineError as exc:
        raise InvalidInput(str(exc)) from exc


async def preview_scenario(
    session: AsyncSession, *, scenario_id: uuid.UUID, options: PreviewOptions, actor: str
) -> PreviewOut:
    """Against the live book with the scenario's changes applied in memory: the fewest moves
    that make every owner compliant under the new rules (and, unless ``fix_only``, bring
    utilization under the target). Stored with digests of its inputs, for activation."""
    row = await _get(session, scenario_id, lock=True)
    _draft(row, "previewed")
    book = await load_book(session)
    now = datetime.now(UTC)
    opts = options.model_dump(mode="json")
    result = _compute(book, row.changes, opts, now)
    out = PreviewOut.model_validate(
        {
            **result.report,
            "scenario_id": scenario_id,
            "computed_at": now,
            "options": opts,
            "digests": planning.digests(book, row.changes, opts),
        }
    )
    await repository.update_fields(
        session,
        scenario_id,
        {
            "preview": out.model_dump(mode="json"),
            "preview_options": opts,
            "preview_digests": out.digests,
            "preview_moves": planning.pack_moves(result),
            "previewed_at": now,
            "previewed_by": actor,
        },
    )
    audit.details(session).update(
        moves=out.moves, violations_left=out.violations_left, digests=out.digests
    )
    return out


async def get_preview(session: AsyncSession, *, scenario_id: uuid.UUID) -> PreviewOut:
    """The stored preview, or 409 when there is none."""
    row = await _get(session, scenario_id)
    if row.preview is None:
        raise NotPreviewed(f"Scenario {scenario_id} has not been previewed.")
    return PreviewOut.model_validate(row.preview)


async def compare_scenarios(session: AsyncSession, *, ids: list[uuid.UUID]) -> Comparison:
    """Previews side by side, in the order asked."""
    rows = {r.id: r for r in await repository.get_many(session, ids)}
    missing = [str(i) for i in ids if i not in rows]
    if missing:
        raise NotFound(f"Scenario(s) not found: {', '.join(missing)}.", missing=missing)
    before = None
    compared = []
    for scenario_id in ids:
        row = rows[scenario_id]
        preview = row.preview
        if preview is None:
            compared.append(
                ComparedScenario(
                    id=row.id,
                    name=row.name,
                    state=row.state,
                    previewed_at=None,
                    moves=None,
                    moves_by_reason=None,
                    peak_utilization=None,
                    utilization_spread=None,
                    continuity=None,
                    violations_left=None,
                    teams=[],
                )
            )
            continue
        before = before or preview["before"]
        compared.append(
            ComparedScenario(
                id=row.id,
                name=row.name,
                state=row.state,
                previewed_at=preview["computed_at"],
                moves=preview["moves"],
                moves_by_reason=preview["moves_by_reason"],
                peak_utilization=preview["after"]["peak_utilization"],
                utilization_spread=preview["after"]["utilization_spread"],
                continuity=preview["continuity"],
                violations_left=preview["violations_left"],
                teams=[
                    TeamChange(
                        team=t["team"],
                        workload_before=t["workload_before"],
                        workload_after=t["workload_after"],
                        utilization_before=t["utilization_before"],
                        utilization_after=t["utilization_after"],
                    )
                    for t in preview["teams"]
                ],
            )
        )
    return Comparison(before=before, scenarios=compared)


async def activate_scenario(
    session: AsyncSession, *, scenario_id: uuid.UUID, actor: str, note: str | None = None
) -> ScenarioOut:
    """Apply the previewed scenario in this transaction: the rule set, the tier, manager and
    customer changes, and the preview's moves (ledger reason ``redivision``); record the
    violations of the new state. Placements are serialised and the rows read are locked
    before the inputs are digested again: if anything the preview read changed, 409
    ``stale_scenario`` names what, and nothing is applied (preview again)."""
    row = await _get(session, scenario_id, lock=True, moves=True)
    _draft(row, "activated")
    if row.preview_digests is None or row.preview_moves is None or row.preview_options is None:
        raise NotPreviewed(f"Scenario {scenario_id} has not been previewed; preview it first.")
    changes: dict[str, Any] = row.changes
    options: dict[str, Any] = row.preview_options
    customer_ids, owners, violators = planning.unpack_moves(row.preview_moves)
    await lock_placements(session)
    # Every row written is locked before the managers (the order every writer keeps), and the
    # selections are made once, on live values, before any change.
    selections = [
        await repository.select_customers(session, c) for c in changes.get("customers", [])
    ]
    await repository.lock_customers(
        session, sorted({*customer_ids, *(i for ids in selections for i in ids)})
    )
    book = await load_book(session, lock=True)
    digests = planning.digests(book, changes, options)
    stored: dict[str, str] = row.preview_digests
    changed = sorted(k for k, v in digests.items() if stored.get(k) != v)
    if changed:
        raise StaleScenario(
            "What the preview read changed since (" + ", ".join(changed) + "); preview the "
            "scenario again and review it.",
            changed=changed,
        )
    now = datetime.now(UTC)
    summary: dict[str, Any] = {"rules_version": book.rules_version}
    if changes.get("rules"):
        replaced = await rules.replace_rules(
            session, payload=changes["rules"], actor=actor, note=f"scenario {row.name}"
        )
        summary["rules_version"] = replaced.version
    for t in changes.get("tiers", []):
        await tiers.update_tier(
            session, code=t["code"], data=TierUpdate(**{k: v for k, v in t.items() if k != "code"})
        )
    summary["tiers_updated"] = len(changes.get("tiers", []))
    for new in changes.get("new_managers", []):
        await managers.create_manager(session, data=NewManager.model_validate(new))
    summary["managers_created"] = len(changes.get("new_managers", []))
    summary["managers_updated"] = await managers.update_managers(
        session,
        changes=[
            (uuid.UUID(m["manager_id"]), {k: v for k, v in m.items() if k != "manager_id"})
            for m in changes.get("managers", [])
        ],
    )
    updated = 0
    for change, ids in zip(changes.get("customers", []), selections, strict=True):
        updated += await customers.update_customers(
            session, customer_ids=ids, values=change["set"], actor=actor
        )
    summary["customer_updates"] = updated
    summary["moves"] = await move_customers(
        session,
        customer_ids=customer_ids,
        manager_ids=owners,
        reason="redivision",
        actor=actor,
        at=now,
        note=note or f"scenario {row.name}",
    )
    in_force = validate_rules(changes["rules"]) if changes.get("rules") else book.rules
    if "manager.is_former_owner" in in_force.reads():
        # the preview's columns carry no former owners: check every owner with the guard
        scope = compliance.Scope.all()
    else:
        scope = compliance.Scope.customers(
            {*violators, *await repository.open_violation_customers(session)}
        )
    found = await compliance.record(session, scope, cause="redivision", actor=actor)
    summary["violations_recorded"] = len(found)
    await outbox.emit(
        session,
        "scenario.activated",
        {"scenario_id": scenario_id, "name": row.name, "actor": actor, **summary},
    )
    await repository.update_fields(
        session,
        scenario_id,
        {"state": "activated", "activated_at": now, "activated_by": actor, "activation": summary},
    )
    audit.details(session).update(scenario=row.name, **summary)
    return _out(await _get(session, scenario_id))
