"""HTTP routes for the assignment engine's rule set."""

from app.api.auth import ADMINS, STAFF, allow
from app.api.deps import CurrentCaller, DbSession
from app.api.routing import BatonRoute, PrefixedRouter
from app.errors import problem_responses
from app.flows import ownership
from app.rules import service
from app.rules.schemas import RuleSetChangeOut, RuleSetIn, RuleSetOut

router = PrefixedRouter(
    prefix="/rules",
    tags=["rules"],
    route_class=BatonRoute,
    dependencies=[allow(read=STAFF, write=ADMINS)],
)


@router.get(
    "", response_model=RuleSetOut, summary="The rule set in force", responses=problem_responses()
)
async def get_rules(session: DbSession) -> RuleSetOut:
    """The eligibility rules and weighted preferences the engine uses now. Built-in hard
    rules (tier minimum level, manager active and accepting, capacity, pinned, excluded
    managers) always apply on top."""
    return await service.current_rules(session)


@router.put(
    "",
    response_model=RuleSetChangeOut,
    summary="Replace the rule set",
    responses=problem_responses(503),
)
async def put_rules(session: DbSession, caller: CurrentCaller, body: RuleSetIn) -> RuleSetChangeOut:
    """Store a new version of the rule set; older versions are kept. An invalid rule set is a
    422 whose `errors[].loc` points at the offending rule and field. Current owners that the
    new hard rules reject are recorded as violations and listed in `violations_detected`
    (repair them with a `repair` plan). Rule sets are bounded: weights finite and within
    ±1 000 000, at most 200 eligibility rules and 200 preferences, 20 conditions per rule
    (`when` and `conditions` together), 1 000 values per list. Moves under way finish first
    and later ones wait for the new rule set, so every owner is either checked by it or
    decided under it; if a long writer (an import) holds on for more than 5 s, the answer is
    503 with `Retry-After` and nothing is stored."""
    return await ownership.replace_rules(
        session, payload=body.rules, actor=caller.name, note=body.note
    )


@router.get(
    "/versions",
    response_model=list[RuleSetOut],
    summary="Rule set history",
    responses=problem_responses(),
)
async def list_versions(session: DbSession) -> list[RuleSetOut]:
    """Every stored version of the rule set, newest first."""
    return await service.list_versions(session)
