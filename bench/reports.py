"""KPIs over a period: the service call against the plain SQL aggregates that compute the
same numbers, measured in the same run on the same database.

    .venv/bin/python -m bench.reports [--customers 100000] [--managers 1000] [--rounds 3]

The book is generated in SQL: every customer has a chain of ``--rows`` ledger rows over the
last two years (the last one open, its manager the customer's owner), about 3 % churned in
the last year, ``--scores`` satisfaction scores and ``--revenue`` revenue events each over
the last year, and a few refusals. The period is the last 90 days.

The baseline is the least SQL that gives the same figures: one plain aggregate statement per
KPI family (book, lost by the successor's reason, gained by reason, satisfaction in the period,
the book's satisfaction at start and end, revenue, refusals), run one after the other on a raw
asyncpg connection, rows left as they come. The service side is
``app.reports.service.manager_kpis`` as the API runs it (one statement, grouping, sorting,
pydantic rows). Both the whole company (every manager, one page of all rows) and one manager
are measured. The issue's target is at most 1.5× at 10 000 managers / 1M customers / 5M
ledger rows; this prints the size it ran at.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from app.db.session import create_session_factory, session_scope
from app.reports import service
from bench._db import scratch_database

HISTORY = [
    # A chain of ledger rows per customer; the last one is open and names the owner.
    "DELETE FROM assignments",
    """
    CREATE TEMP TABLE bench_managers AS
    SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM managers
    """,
    """
    INSERT INTO assignments (customer_id, manager_id, started_at, ended_at, reason, actor)
    SELECT c.id, m.id,
           now() - make_interval(days => (:rows - j) * (720 / :rows))
                 + make_interval(hours => (hashtext(c.id::text) & 2147483647)
                                          % (24 * (720 / :rows))),
           CASE WHEN j < :rows - 1
                THEN now() - make_interval(days => (:rows - j - 1) * (720 / :rows))
                           + make_interval(hours => (hashtext(c.id::text) & 2147483647)
                                                    % (24 * (720 / :rows))) END,
           (ARRAY['auto', 'manual', 'rebalance', 'handover'])
               [1 + ((hashtext(c.id::text) & 1023) + j) % 4],
           'bench'
      FROM customers AS c
     CROSS JOIN generate_series(0, :rows - 1) AS j
      JOIN bench_managers AS m
        ON m.n = ((hashtext(c.id::text) & 1048575) + j * 7919) % :managers
    """,
    """
    UPDATE customers AS c SET manager_id = a.manager_id, owner_since = a.started_at
      FROM assignments AS a WHERE a.customer_id = c.id AND a.ended_at IS NULL
    """,
    """
    UPDATE customers AS c SET status = 'churned',
           churned_at = c.owner_since + (now() - c.owner_since)
                        * ((hashtext(c.id::text || 'c') & 1023) / 1024.0)
     WHERE (hashtext(c.id::text || 'churn') & 2147483647) % 100 < 3
    """,
    """
    UPDATE customers SET annual_value = 10000 + (hashtext(id::text || 'v') & 65535)
    """,
    """
    INSERT INTO satisfaction_scores (customer_id, score, recorded_at, source)
    SELECT c.id, 3 + (hashtext(c.id::text || k) & 2147483647) % 7,
           now() - make_interval(days => 1 + (hashtext(c.id::text || k || 's') & 2147483647)
                                             % 364),
           'bench'
      FROM customers AS c CROSS JOIN generate_series(1, :scores) AS k
    """,
    """
    INSERT INTO revenue_events (customer_id, amount, currency, occurred_at, source, external_id)
    SELECT c.id, 100 + (hashtext(c.id::text || k || 'a') & 4095),
           CASE WHEN k % 4 = 0 THEN 'USD' ELSE 'EUR' END,
           now() - make_interval(days => 1 + (hashtext(c.id::text || k || 'r') & 2147483647)
                                             % 364),
           'bench', c.id::text || '-' || k
      FROM customers AS c CROSS JOIN generate_series(1, :revenue) AS k
    """,
    """
    INSERT INTO handovers (id, from_manager_id, reason, strategy, state, prior_manager_status,
                           created_by)
    SELECT gen_random_uuid(), id, 'rebalance', 'balanced', 'completed', 'active', 'bench'
      FROM managers LIMIT 1
    """,
    """
    INSERT INTO handover_items (handover_id, customer_id, status, refused_at,
                                refused_manager_id)
    SELECT h.id, c.id, 'refused', now() - interval '10 days', c.manager_id
      FROM customers AS c CROSS JOIN (SELECT id FROM handovers LIMIT 1) AS h
     WHERE (hashtext(c.id::text || 'refused') & 1023) = 0 AND c.manager_id IS NOT NULL
    """,
    "ANALYZE",
]

# The plain aggregates: $1 from, $2 to, $3 the manager; {manager} is written per case, so
# each case gets the statement a person would write for it (and its best plan).


def _rows(join: str = "") -> str:
    """The ledger rows overlapping the period, with their customer and an optional join."""
    return f"""
    FROM assignments AS a
    JOIN customers AS c ON c.id = a.customer_id
    {join}
   WHERE a.started_at <= $2 AND (a.ended_at IS NULL OR a.ended_at > $1)
     {{manager}}
"""


_NEXT_ROW = """
    LEFT JOIN assignments AS nx
      ON nx.customer_id = a.customer_id AND nx.started_at = a.ended_at AND nx.id <> a.id
     AND nx.started_at > $1 AND nx.started_at <= $2
"""
_SCORES_THEN = """
    JOIN satisfaction_scores AS sc
      ON sc.customer_id = a.customer_id AND sc.recorded_at > $1 AND sc.recorded_at <= $2
     AND sc.recorded_at >= a.started_at AND (a.ended_at IS NULL OR sc.recorded_at < a.ended_at)
"""
_REVENUE_THEN = """
    JOIN revenue_events AS ev
      ON ev.customer_id = a.customer_id AND ev.occurred_at > $1 AND ev.occurred_at <= $2
     AND ev.occurred_at >= a.started_at AND (a.ended_at IS NULL OR ev.occurred_at < a.ended_at)
"""
_ROWS = _rows()
# The rows with whether each was the customer's at the start (s) and at the end (e).
_FLAGGED = f"""
    SELECT a.*,
           (a.started_at <= $1 AND (c.churned_at IS NULL OR c.churned_at > $1)) AS s,
           ((a.ended_at IS NULL OR a.ended_at > $2)
             AND (c.churned_at IS NULL OR c.churned_at > $2)) AS e
      {_ROWS}
"""
BASELINE = [
    # the book at start and end, retention, churn, gained and received weight, handovers in
    f"""
    SELECT a.manager_id,
           count(*) FILTER (WHERE s), sum(t.weight) FILTER (WHERE s),
           sum(c.annual_value) FILTER (WHERE s),
           count(*) FILTER (WHERE e), sum(t.weight) FILTER (WHERE e),
           sum(c.annual_value) FILTER (WHERE e),
           count(*) FILTER (WHERE s AND (c.churned_at IS NULL OR c.churned_at > $2)),
           count(*) FILTER (WHERE s AND e),
           count(*) FILTER (WHERE c.churned_at > $1 AND c.churned_at <= $2
                              AND c.churned_at >= a.started_at
                              AND (a.ended_at IS NULL OR a.ended_at > c.churned_at)),
           sum(c.annual_value) FILTER (WHERE c.churned_at > $1 AND c.churned_at <= $2
                              AND c.churned_at >= a.started_at
                              AND (a.ended_at IS NULL OR a.ended_at > c.churned_at)),
           count(*) FILTER (WHERE a.started_at > $1),
           sum(t.weight) FILTER (WHERE a.started_at > $1),
           count(*) FILTER (WHERE a.started_at > $1 AND a.handover_id IS NOT NULL),
           count(DISTINCT a.handover_id) FILTER (WHERE a.started_at > $1)
      FROM ({_FLAGGED}) AS a
      JOIN customers AS c ON c.id = a.customer_id
      JOIN tiers AS t ON t.code = c.tier_code
     GROUP BY a.manager_id
    """,
    # customers of the starting book who left and came back to the same manager
    f"""
    WITH f AS ({_FLAGGED})
    SELECT x.manager_id, count(*) FROM f AS x
     WHERE x.e AND x.started_at > $1
       AND EXISTS (SELECT 1 FROM f AS y WHERE y.s AND NOT y.e AND y.manager_id = x.manager_id
                      AND y.customer_id = x.customer_id)
     GROUP BY 1
    """,
    # gained by reason
    f"""
    SELECT a.manager_id, a.reason, count(*) {_ROWS} AND a.started_at > $1
     GROUP BY a.manager_id, a.reason
    """,
    # lost by the reason of the row that followed, handovers out
    f"""
    SELECT manager_id, reason, count(*), count(DISTINCT handover_id)
      FROM (SELECT DISTINCT ON (a.id) a.manager_id, COALESCE(nx.reason, 'unassigned') AS reason,
                   nx.handover_id
              {_rows(_NEXT_ROW)}
               AND a.ended_at <= $2
             ORDER BY a.id, nx.id) AS x
     GROUP BY 1, 2
    """,
    # satisfaction recorded in the period, attributed to the owner then
    f"""
    SELECT a.manager_id, avg(sc.score), count(*)
      {_rows(_SCORES_THEN)}
     GROUP BY a.manager_id
    """,
    # the book's latest score at the start and at the end
    f"""
    WITH f AS ({_FLAGGED}),
    latest AS (
        SELECT sc.customer_id,
               (array_agg(sc.score ORDER BY sc.recorded_at DESC, sc.id DESC)
                  FILTER (WHERE sc.recorded_at <= $1))[1] AS at_start,
               (array_agg(sc.score ORDER BY sc.recorded_at DESC, sc.id DESC))[1] AS at_end
          FROM satisfaction_scores AS sc
         WHERE sc.recorded_at <= $2 AND sc.customer_id IN (SELECT customer_id FROM f)
         GROUP BY sc.customer_id)
    SELECT f.manager_id, avg(l.at_start) FILTER (WHERE f.s), avg(l.at_end) FILTER (WHERE f.e)
      FROM f JOIN latest AS l ON l.customer_id = f.customer_id
     WHERE f.s OR f.e
     GROUP BY f.manager_id
    """,
    # revenue in the period by currency, attributed to the owner then
    f"""
    SELECT a.manager_id, ev.currency, sum(ev.amount)
      {_rows(_REVENUE_THEN)}
     GROUP BY 1, 2
    """,
    # refusals received
    """
    SELECT refused_manager_id, count(*) FROM handover_items
     WHERE refused_at > $1 AND refused_at <= $2
       {manager}
     GROUP BY 1
    """,
]


async def _timed(call) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


async def main(args: argparse.Namespace) -> None:
    _, engine = await scratch_database(args.customers, args.managers)
    started = time.perf_counter()
    async with engine.begin() as conn:
        for statement in HISTORY:
            params = {
                "rows": args.rows,
                "managers": args.managers,
                "scores": args.scores,
                "revenue": args.revenue,
            }
            await conn.execute(text(statement), params)
        sizes = (
            await conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM managers), (SELECT count(*) FROM customers),"
                    " (SELECT count(*) FROM assignments),"
                    " (SELECT count(*) FROM satisfaction_scores),"
                    " (SELECT count(*) FROM revenue_events)"
                )
            )
        ).one()
    print(
        f"history in {time.perf_counter() - started:.1f} s: {sizes[0]:,} managers, "
        f"{sizes[1]:,} customers, {sizes[2]:,} ledger rows, {sizes[3]:,} satisfaction scores, "
        f"{sizes[4]:,} revenue events"
    )
    factory = create_session_factory(engine)
    to = datetime.now(UTC)
    from_ = to - timedelta(days=90)
    async with engine.connect() as conn:
        one = (await conn.execute(text("SELECT id FROM managers ORDER BY id LIMIT 1"))).scalar()
        raw = (await conn.get_raw_connection()).driver_connection

        company = [sql.format(manager="") for sql in BASELINE]
        single = [
            sql.format(
                manager="AND refused_manager_id = $3"
                if "handover_items" in sql
                else "AND a.manager_id = $3"
            )
            for sql in BASELINE
        ]

        async def baseline(manager) -> None:  # type: ignore[no-untyped-def]
            for sql in company if manager is None else single:
                await raw.fetch(sql, from_, to, *([manager] if manager else []))

        async def through_service(manager, limit) -> None:  # type: ignore[no-untyped-def]
            async with session_scope(factory) as session:
                await service.manager_kpis(
                    session, from_=from_, to=to, manager_id=manager, limit=limit
                )

        cases = [
            ("whole company, every row", None, None),
            ("whole company, first page of 50", None, 50),
            ("one manager", one, 50),
        ]
        for label, manager, limit in cases:
            await baseline(manager)  # warm both once
            await through_service(manager, limit)
            floor, ours = [], []
            for _ in range(args.rounds):  # interleaved, so drift hits both alike
                floor.append(await _timed(lambda m=manager: baseline(m)))
                ours.append(await _timed(lambda m=manager, n=limit: through_service(m, n)))
            f, o = statistics.median(floor), statistics.median(ours)
            print(
                f"{label:34s} plain SQL {f * 1000:9.1f} ms   service {o * 1000:9.1f} ms   "
                f"ratio {o / f:.2f}×"
            )
    await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--managers", type=int, default=1_000)
    parser.add_argument("--rows", type=int, default=5, help="ledger rows per customer")
    parser.add_argument("--scores", type=int, default=2, help="satisfaction scores per customer")
    parser.add_argument("--revenue", type=int, default=2, help="revenue events per customer")
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
