"""The /v1 router: every domain's routes under one version prefix."""

from fastapi import APIRouter

from app.customers.router import router as customers
from app.managers.router import router as managers
from app.tiers.router import router as tiers

v1 = APIRouter(prefix="/v1")
for domain in (tiers, managers, customers):
    v1.include_router(domain)
