"""``/metrics``: Prometheus text format, unversioned like the health probes."""

from fastapi import Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.api.auth import public
from app.api.routing import PrefixedRouter
from app.observability.metrics import read_database_gauges, read_queue_gauges, render_metrics

router = PrefixedRouter(
    tags=["ops"],
    dependencies=[public("scraped by Prometheus from inside the deployment's network")],
)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    """Request counts and latency histograms by route template and status, engine plan
    durations, database pool usage (the read pool's too, and requests waiting for either),
    handovers by state, webhook deliveries by outcome and job-queue depth, in the Prometheus
    text format. Database-backed gauges are read at scrape time with a short statement
    timeout; if the database is slow or down they go stale and
    `baton_metrics_scrape_errors_total` grows, but this endpoint still answers."""
    state = request.app.state
    read_queue_gauges(getattr(state, "db_turns", None), getattr(state, "reader", None))
    engine = getattr(state, "db_engine", None)
    if engine is not None:
        await read_database_gauges(engine)
    return Response(render_metrics(), media_type=CONTENT_TYPE_LATEST)
