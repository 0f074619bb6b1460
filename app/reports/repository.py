"""SQL for reports: KPIs over a period and portfolios at an instant, read from the ledger.

Ownership at an instant ``t`` is the ledger row with ``started_at <= t < ended_at`` (or no end);
a customer is active at ``t`` unless ``churned_at <= t``. A score, a revenue event or a churn
belongs to the manager whose row was open when it happened. Everything is one statement over
the rows of the chosen managers that overlap the period; nothing loops per customer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import RowMapping, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.rows import rows_as
from app.vocabulary import AssignmentReason

Grouping = Literal["manager", "team", "region"]

# The columns a KPI page can be sorted by, each an output column of ``_KPIS``.
SORT_COLUMNS: dict[str, str] = {
    "key": "key",
    "name": "name",
    "book_start_customers": "start_customers",
    "book_end_customers": "end_customers",
    "book_end_workload": "end_workload",
    "book_end_annual_value": "end_value",
    "gained": "gained",
    "lost": "lost",
    "churned": "churned",
    "churned_value": "churned_value",
    "retention_rate": "with_manager_rate",
    "active_retention_rate": "active_rate",
    "satisfaction_average": "sat_average",
    "satisfaction_change": "sat_change",
    "received_weight": "received_weight",
    "refusals_received": "refusals",
}

_GROUP_KEY: dict[Grouping, str] = {
    "manager": "CAST(pm.id AS text)",
    "team": "pm.team",
    "region": "pm.region",
}

_KPIS = """
WITH m AS MATERIALIZED (
    SELECT id, name, team, region, level, status
      FROM managers
     WHERE (CAST(:manager_id AS uuid) IS NULL OR id = :manager_id)
       AND (CAST(:manager_ids AS uuid[]) IS NULL OR id = ANY(CAST(:manager_ids AS uuid[])))
       AND (CAST(:team AS text) IS NULL OR team = :team)
       AND (CAST(:region AS text) IS NULL OR region = :region)
       AND (CAST(:level AS int) IS NULL OR level = :level)
       AND (CAST(:status AS text) IS NULL OR status = :status)),
-- The chosen managers' ledger rows that overlap the period, with their customer's facts and
-- what each row was at the start (s) and at the end (e) of the period.
r AS MATERIALIZED (
    SELECT a.id, a.manager_id, a.customer_id, a.started_at, a.ended_at, a.reason, a.handover_id,
           c.churned_at, COALESCE(c.annual_value, 0) AS value, t.weight,
           (a.started_at <= :from_ AND (c.churned_at IS NULL OR c.churned_at > :from_)) AS s,
           ((a.ended_at IS NULL OR a.ended_at > :to_)
             AND (c.churned_at IS NULL OR c.churned_at > :to_)) AS e,
           (a.started_at > :from_) AS gained,
           (c.churned_at > :from_ AND c.churned_at <= :to_ AND c.churned_at >= a.started_at
             AND (a.ended_at IS NULL OR a.ended_at > c.churned_at)) AS churned_here
      FROM assignments AS a
      JOIN m ON m.id = a.manager_id
      JOIN customers AS c ON c.id = a.customer_id
      JOIN tiers AS t ON t.code = c.tier_code
     WHERE a.started_at <= :to_ AND (a.ended_at IS NULL OR a.ended_at > :from_)),
book AS (
    SELECT r.manager_id,
           count(*) FILTER (WHERE s) AS start_customers,
           COALESCE(sum(weight) FILTER (WHERE s), 0) AS start_workload,
           COALESCE(sum(value) FILTER (WHERE s), 0) AS start_value,
           count(*) FILTER (WHERE e) AS end_customers,
           COALESCE(sum(weight) FILTER (WHERE e), 0) AS end_workload,
           COALESCE(sum(value) FILTER (WHERE e), 0) AS end_value,
           count(*) FILTER (WHERE s AND (churned_at IS NULL OR churned_at > :to_)) AS still_active,
           count(*) FILTER (WHERE s AND e) AS kept,
           count(*) FILTER (WHERE churned_here) AS churned,
           COALESCE(sum(value) FILTER (WHERE churned_here), 0) AS churned_value,
           count(*) FILTER (WHERE gained) AS gained,
           COALESCE(sum(weight) FILTER (WHERE gained), 0) AS received_weight,
           count(*) FILTER (WHERE gained AND handover_id IS NOT NULL) AS customers_handed_in,
           count(DISTINCT handover_id) FILTER (WHERE gained) AS handovers_in
      FROM r
     GROUP BY r.manager_id),
-- Customers owned at the start who left during the period and came back to the same manager
-- before its end (their start row ended, a later row is open at the end).
returned AS (
    SELECT x.manager_id, count(*) AS returned
      FROM r AS x
     WHERE x.e AND x.gained
       AND EXISTS (SELECT 1 FROM r AS y
                    WHERE y.s AND NOT y.e AND y.manager_id = x.manager_id
                      AND y.customer_id = x.customer_id)
     GROUP BY x.manager_id),
-- Each row that ended in the period, and the row that followed it at that instant (none:
-- the customer went to the pool): why the manager lost the customer. The follower started in
-- the period too, so the join reads only rows of the period.
lost_rows AS (
    SELECT DISTINCT ON (r.id) r.manager_id, COALESCE(nx.reason, 'unassigned') AS reason,
           nx.handover_id
      FROM r
      LEFT JOIN assignments AS nx
        ON nx.customer_id = r.customer_id AND nx.started_at = r.ended_at AND nx.id <> r.id
       AND nx.started_at > :from_ AND nx.started_at <= :to_
     WHERE r.ended_at <= :to_
     ORDER BY r.id, nx.id),
lost AS (
    SELECT manager_id, count(*) AS lost,
           count(*) FILTER (WHERE handover_id IS NOT NULL) AS customers_handed_out,
           count(DISTINCT handover_id) AS handovers_out
      FROM lost_rows GROUP BY manager_id),
sat AS (
    SELECT r.manager_id, sum(sc.score) AS score_sum, count(*) AS scores
      FROM r
      JOIN satisfaction_scores AS sc
        ON sc.customer_id = r.customer_id
       AND sc.recorded_at > :from_ AND sc.recorded_at <= :to_
       AND sc.recorded_at >= r.started_at
       AND (r.ended_at IS NULL OR sc.recorded_at < r.ended_at)
     GROUP BY r.manager_id),
-- The latest score at or before the start (end) of each customer in the book then, read in
-- one pass over the scores of those customers.
latest AS (
    SELECT sc.customer_id,
           (array_agg(sc.score ORDER BY sc.recorded_at DESC, sc.id DESC)
              FILTER (WHERE sc.recorded_at <= :from_))[1] AS at_start,
           (array_agg(sc.score ORDER BY sc.recorded_at DESC, sc.id DESC))[1] AS at_end
      FROM satisfaction_scores AS sc
     WHERE sc.recorded_at <= :to_
       AND sc.customer_id IN (SELECT customer_id FROM r WHERE s OR e)
     GROUP BY sc.customer_id),
sat_book AS (
    SELECT r.manager_id,
           sum(l.at_start) FILTER (WHERE r.s) AS start_sum,
           count(l.at_start) FILTER (WHERE r.s) AS start_n,
           sum(l.at_end) FILTER (WHERE r.e) AS end_sum,
           count(l.at_end) FILTER (WHERE r.e) AS end_n
      FROM r JOIN latest AS l ON l.customer_id = r.customer_id
     WHERE r.s OR r.e
     GROUP BY r.manager_id),
refusals AS (
    SELECT hi.refused_manager_id AS manager_id, count(*) AS refusals
      FROM handover_items AS hi JOIN m ON m.id = hi.refused_manager_id
     WHERE hi.refused_at > :from_ AND hi.refused_at <= :to_
     GROUP BY hi.refused_manager_id),
pm AS (
    SELECT m.*,
           COALESCE(bk.start_customers, 0) AS start_customers,
           COALESCE(bk.start_workload, 0) AS start_workload,
           COALESCE(bk.start_value, 0) AS start_value,
           COALESCE(bk.end_customers, 0) AS end_customers,
           COALESCE(bk.end_workload, 0) AS end_workload,
           COALESCE(bk.end_value, 0) AS end_value,
           COALESCE(bk.still_active, 0) AS still_active,
           COALESCE(bk.kept, 0) + COALESCE(rt.returned, 0) AS still_with_manager,
           COALESCE(bk.churned, 0) AS churned,
           COALESCE(bk.churned_value, 0) AS churned_value,
           COALESCE(bk.gained, 0) AS gained,
           COALESCE(bk.received_weight, 0) AS received_weight,
           COALESCE(bk.customers_handed_in, 0) AS customers_handed_in,
           COALESCE(bk.handovers_in, 0) AS handovers_in,
           COALESCE(l.lost, 0) AS lost,
           COALESCE(l.customers_handed_out, 0) AS customers_handed_out,
           COALESCE(l.handovers_out, 0) AS handovers_out,
           COALESCE(sa.score_sum, 0) AS score_sum, COALESCE(sa.scores, 0) AS scores,
           COALESCE(sb.start_sum, 0) AS sat_start_sum, COALESCE(sb.start_n, 0) AS sat_start_n,
           COALESCE(sb.end_sum, 0) AS sat_end_sum, COALESCE(sb.end_n, 0) AS sat_end_n,
           COALESCE(rf.refusals, 0) AS refusals
      FROM m
      LEFT JOIN book AS bk ON bk.manager_id = m.id
      LEFT JOIN returned AS rt ON rt.manager_id = m.id
      LEFT JOIN lost AS l ON l.manager_id = m.id
      LEFT JOIN sat AS sa ON sa.manager_id = m.id
      LEFT JOIN sat_book AS sb ON sb.manager_id = m.id
      LEFT JOIN refusals AS rf ON rf.manager_id = m.id),
-- Jain's index of the weight received, across each team's managers in the report.
pmj AS (
    SELECT pm.*,
           CASE WHEN sum(received_weight * received_weight) OVER team_w > 0
                THEN round(power(sum(received_weight) OVER team_w, 2)
                           / (count(*) OVER team_w * sum(received_weight * received_weight)
                              OVER team_w), 4) END AS team_jain
      FROM pm WINDOW team_w AS (PARTITION BY team)),
keyed AS (SELECT {key} AS key, pm.* FROM pmj AS pm),
by_reason AS (
    SELECT key, jsonb_object_agg(reason, n) AS gained_by_reason
      FROM (SELECT k.key, x.reason, sum(x.n) AS n
              FROM (SELECT manager_id, reason, count(*) AS n FROM r WHERE gained
                     GROUP BY manager_id, reason) AS x
              JOIN keyed AS k ON k.id = x.manager_id
             GROUP BY k.key, x.reason) AS y
     GROUP BY key),
lost_by_reason AS (
    SELECT key, jsonb_object_agg(reason, n) AS lost_by_reason
      FROM (SELECT k.key, x.reason, sum(x.n) AS n
              FROM (SELECT manager_id, reason, count(*) AS n FROM lost_rows
                     GROUP BY manager_id, reason) AS x
              JOIN keyed AS k ON k.id = x.manager_id
             GROUP BY k.key, x.reason) AS y
     GROUP BY key),
revenue AS (
    SELECT key, jsonb_object_agg(currency, CAST(amount AS text)) AS revenue
      FROM (SELECT k.key, ev.currency, sum(ev.amount) AS amount
              FROM r
              JOIN revenue_events AS ev
                ON ev.customer_id = r.customer_id
               AND ev.occurred_at > :from_ AND ev.occurred_at <= :to_
               AND ev.occurred_at >= r.started_at
               AND (r.ended_at IS NULL OR ev.occurred_at < r.ended_at)
              JOIN keyed AS k ON k.id = r.manager_id
             GROUP BY k.key, ev.currency) AS y
     GROUP BY key),
grouped AS (
    SELECT key,
           count(*) AS managers,
           CASE WHEN count(*) = 1 THEN min(CAST(id AS text)) END AS manager_id,
           CASE WHEN count(*) = 1 THEN min(name) END AS name,
           CASE WHEN count(DISTINCT team) = 1 THEN min(team) END AS team,
           CASE WHEN count(DISTINCT region) = 1 THEN min(region) END AS region,
           CASE WHEN count(*) = 1 THEN min(level) END AS level,
           CASE WHEN count(*) = 1 THEN min(status) END AS status,
           sum(start_customers) AS start_customers, sum(start_workload) AS start_workload,
           sum(start_value) AS start_value,
           sum(end_customers) AS end_customers, sum(end_workload) AS end_workload,
           sum(end_value) AS end_value,
           sum(still_active) AS still_active, sum(still_with_manager) AS still_with_manager,
           CASE WHEN sum(start_customers) > 0
                THEN round(sum(still_active) / sum(start_customers), 4) END AS active_rate,
           CASE WHEN sum(start_customers) > 0
                THEN round(sum(still_with_manager) / sum(start_customers), 4)
                END AS with_manager_rate,
           sum(churned) AS churned, sum(churned_value) AS churned_value,
           sum(gained) AS gained, sum(lost) AS lost, sum(received_weight) AS received_weight,
           sum(customers_handed_in) AS customers_handed_in, sum(handovers_in) AS handovers_in,
           sum(customers_handed_out) AS customers_handed_out,
           sum(handovers_out) AS handovers_out,
           sum(scores) AS scores,
           CASE WHEN sum(scores) > 0 THEN round(sum(score_sum) / sum(scores), 4)
                END AS sat_average,
           CASE WHEN sum(sat_start_n) > 0 THEN round(sum(sat_start_sum) / sum(sat_start_n), 4)
                END AS sat_start,
           CASE WHEN sum(sat_end_n) > 0 THEN round(sum(sat_end_sum) / sum(sat_end_n), 4)
                END AS sat_end,
           CASE WHEN sum(sat_start_n) > 0 AND sum(sat_end_n) > 0
                THEN round(sum(sat_end_sum) / sum(sat_end_n)
                           - sum(sat_start_sum) / sum(sat_start_n), 4) END AS sat_change,
           sum(refusals) AS refusals,
           CASE WHEN :grouping = 'manager' THEN min(team_jain)
                WHEN sum(received_weight * received_weight) > 0
                THEN round(power(sum(received_weight), 2)
                           / (count(*) * sum(received_weight * received_weight)), 4)
                END AS received_jain
      FROM keyed GROUP BY key)
SELECT g.*, COALESCE(br.gained_by_reason, '{{}}') AS gained_by_reason,
       COALESCE(lr.lost_by_reason, '{{}}') AS lost_by_reason,
       COALESCE(rv.revenue, '{{}}') AS revenue
  FROM grouped AS g
  LEFT JOIN by_reason AS br
         ON COALESCE(br.key, '') = COALESCE(g.key, '') AND (br.key IS NULL) = (g.key IS NULL)
  LEFT JOIN lost_by_reason AS lr
         ON COALESCE(lr.key, '') = COALESCE(g.key, '') AND (lr.key IS NULL) = (g.key IS NULL)
  LEFT JOIN revenue AS rv
         ON COALESCE(rv.key, '') = COALESCE(g.key, '') AND (rv.key IS NULL) = (g.key IS NULL)
 ORDER BY g.{sort} {direction} NULLS LAST, g.key NULLS LAST
 LIMIT :limit OFFSET :offset
"""


async def plan_for_these_values(session: AsyncSession) -> None:
    """Plan the transaction's next statements for their parameter values, never a generic
    plan: with optional filters (``:x IS NULL OR …``) and a period, the best plan for one
    manager (index scans) and for the whole company (hash joins) differ, and a prepared
    statement reused across calls would otherwise settle on one of them."""
    await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


@dataclass(frozen=True)
class KpiQuery:
    """What a KPI report covers: the period, the grouping, the managers, the page."""

    from_: datetime
    to: datetime
    grouping: Grouping
    sort: str
    descending: bool
    offset: int
    limit: int | None
    manager_id: uuid.UUID | None = None
    manager_ids: tuple[uuid.UUID, ...] | None = None
    team: str | None = None
    region: str | None = None
    level: int | None = None
    status: str | None = None


async def kpis(session: AsyncSession, query: KpiQuery) -> list[RowMapping]:
    """One row per manager, team or region (``query.grouping``) over the chosen managers,
    sorted and sliced in the database."""
    sql = _KPIS.format(
        key=_GROUP_KEY[query.grouping],
        sort=SORT_COLUMNS[query.sort],
        direction="DESC" if query.descending else "ASC",
    )
    params: dict[str, Any] = {
        "from_": query.from_,
        "to_": query.to,
        "grouping": query.grouping,
        "manager_id": query.manager_id,
        "manager_ids": list(query.manager_ids) if query.manager_ids is not None else None,
        "team": query.team,
        "region": query.region,
        "level": query.level,
        "status": query.status,
        "limit": query.limit,
        "offset": query.offset,
    }
    await plan_for_these_values(session)
    return list((await session.execute(text(sql), params)).mappings())


# -- portfolio at an instant ---------------------------------------------------------------------
_PORTFOLIO_AT = """
SELECT c.id AS customer_id, c.name, c.tier_code AS tier, c.region, c.annual_value,
       a.manager_id, m.name AS manager_name, m.team, a.started_at AS owned_since, a.reason,
       (c.churned_at IS NULL OR c.churned_at > :at) AS active
  FROM assignments AS a
  JOIN managers AS m ON m.id = a.manager_id
  JOIN customers AS c ON c.id = a.customer_id
 WHERE a.started_at <= :at AND (a.ended_at IS NULL OR a.ended_at > :at)
   AND (CAST(:manager_id AS uuid) IS NULL OR a.manager_id = :manager_id)
   AND (CAST(:team AS text) IS NULL OR m.team = :team)
   AND (CAST(:active AS boolean) IS NULL
        OR (c.churned_at IS NULL OR c.churned_at > :at) = :active)
   AND (CAST(:after AS uuid) IS NULL OR c.id > :after)
 ORDER BY c.id
 LIMIT :limit
"""


@dataclass(frozen=True, slots=True)
class PortfolioRow:
    """A customer owned at an instant, by whom, since when and why."""

    customer_id: uuid.UUID
    name: str
    tier: str
    region: str | None
    annual_value: Decimal | None
    manager_id: uuid.UUID
    manager_name: str
    team: str | None
    owned_since: datetime
    reason: AssignmentReason
    active: bool


async def portfolio_at(
    session: AsyncSession,
    *,
    at: datetime,
    manager_id: uuid.UUID | None,
    team: str | None,
    active: bool | None,
    after: uuid.UUID | None,
    limit: int,
) -> list[PortfolioRow]:
    """The ledger rows open at ``at`` for one manager or a team's managers, by customer id."""
    await plan_for_these_values(session)
    params = {
        "at": at,
        "manager_id": manager_id,
        "team": team,
        "active": active,
        "after": after,
        "limit": limit,
    }
    return rows_as(PortfolioRow, (await session.execute(text(_PORTFOLIO_AT), params)).mappings())


_CUSTOMERS_AT = """
SELECT c.*, c.tier_code AS tier
  FROM assignments AS a JOIN customers AS c ON c.id = a.customer_id
 WHERE a.manager_id = :manager_id
   AND a.started_at <= :at AND (a.ended_at IS NULL OR a.ended_at > :at)
   AND (CAST(:status AS text) IS NULL
        OR CASE WHEN c.churned_at IS NULL OR c.churned_at > :at THEN 'active' ELSE 'churned' END
           = :status)
   AND (CAST(:tier AS text) IS NULL OR c.tier_code = :tier)
   AND (CAST(:after AS uuid) IS NULL OR a.customer_id > :after)
 ORDER BY a.customer_id
 LIMIT :limit
"""


async def customers_at(
    session: AsyncSession,
    *,
    manager_id: uuid.UUID,
    at: datetime,
    status: str | None,
    tier: str | None,
    after: uuid.UUID | None,
    limit: int,
) -> list[RowMapping]:
    """The customers ``manager_id`` owned at ``at`` (``status`` as it was then), as they are
    now, by id."""
    await plan_for_these_values(session)
    params = {
        "manager_id": manager_id,
        "at": at,
        "status": status,
        "tier": tier,
        "after": after,
        "limit": limit,
    }
    return list((await session.execute(text(_CUSTOMERS_AT), params)).mappings())
