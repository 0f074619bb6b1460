"""The /v1 API: every domain's router, included under one version prefix."""

from app.absences.router import router as absences
from app.activities.router import router as activities
from app.api.routing import PrefixedRouter
from app.assignments.router import router as assignments
from app.audit.router import router as audit
from app.auth.router import router as api_keys
from app.customers.router import router as customers
from app.handovers.router import router as handovers
from app.imports.router import exports, imports
from app.managers.router import router as managers
from app.pool.router import claims as pool_claims
from app.pool.router import router as pool
from app.reports.router import router as reports
from app.revenue.router import imports as revenue_imports
from app.revenue.router import router as revenue
from app.rules.router import router as rules
from app.satisfaction.router import router as satisfaction
from app.scenarios.router import router as scenarios
from app.tiers.router import router as tiers
from app.webhooks.inbound.router import inbound as webhooks_inbound
from app.webhooks.inbound.router import inbox as webhooks_inbox
from app.webhooks.inbound.router import sources as webhook_sources
from app.webhooks.outbound.router import deliveries as webhook_deliveries
from app.webhooks.outbound.router import subscriptions as webhook_subscriptions

PREFIX = "/v1"

# Included one by one under the prefix rather than through one /v1 router: FastAPI matches a
# request by walking each level of nested routers, so one level less is a cheaper match.
ROUTERS: tuple[PrefixedRouter, ...] = (
    tiers,
    managers,
    absences,
    customers,
    activities,
    pool,
    pool_claims,
    assignments,
    rules,
    handovers,
    scenarios,
    satisfaction,
    revenue,
    reports,
    api_keys,
    audit,
    webhook_subscriptions,
    webhook_deliveries,
    webhook_sources,
    webhooks_inbox,
    webhooks_inbound,
    imports,
    revenue_imports,
    exports,
)
