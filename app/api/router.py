"""The /v1 router: every domain's routes under one version prefix."""

from fastapi import APIRouter

from app.assignments.router import router as assignments
from app.audit.router import router as audit
from app.auth.router import router as api_keys
from app.customers.router import router as customers
from app.handovers.router import router as handovers
from app.imports.router import exports, imports
from app.managers.router import router as managers
from app.rules.router import router as rules
from app.satisfaction.router import router as satisfaction
from app.tiers.router import router as tiers
from app.webhooks.inbound.router import inbound as webhooks_inbound
from app.webhooks.inbound.router import inbox as webhooks_inbox
from app.webhooks.inbound.router import sources as webhook_sources
from app.webhooks.outbound.router import deliveries as webhook_deliveries
from app.webhooks.outbound.router import subscriptions as webhook_subscriptions

v1 = APIRouter(prefix="/v1")
for domain in (tiers, managers, customers, assignments, rules, handovers, satisfaction):
    v1.include_router(domain)
for domain in (api_keys, audit):
    v1.include_router(domain)
for domain in (
    webhook_subscriptions,
    webhook_deliveries,
    webhook_sources,
    webhooks_inbox,
    webhooks_inbound,
):
    v1.include_router(domain)
for domain in (imports, exports):
    v1.include_router(domain)
