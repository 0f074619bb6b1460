"""HTTP routes for webhook subscriptions and the delivery log."""

import uuid
from typing import Annotated

from fastapi import Path, Response, status

from app.api.auth import ADMINS, allow
from app.api.deps import DbSession
from app.api.pagination import PageQuery
from app.api.routing import BatonRoute, PrefixedRouter
from app.core.pagination import Page
from app.errors import problem_responses
from app.events.names import OutboundType
from app.webhooks.outbound import service
from app.webhooks.outbound.schemas import (
    DeliveryDetail,
    DeliveryOut,
    DeliveryStatus,
    SecretRotation,
    SubscriptionCreate,
    SubscriptionOut,
    SubscriptionUpdate,
    SubscriptionWithSecret,
)

_admin_only = [allow(read=ADMINS, write=ADMINS)]
subscriptions = PrefixedRouter(
    prefix="/webhook-subscriptions",
    tags=["webhooks"],
    route_class=BatonRoute,
    dependencies=_admin_only,
)
deliveries = PrefixedRouter(
    prefix="/webhook-deliveries",
    tags=["webhooks"],
    route_class=BatonRoute,
    dependencies=_admin_only,
)


@subscriptions.post(
    "",
    response_model=SubscriptionWithSecret,
    status_code=status.HTTP_201_CREATED,
    summary="Create a webhook subscription",
    responses=problem_responses(),
)
async def create_subscription(
    session: DbSession, data: SubscriptionCreate
) -> SubscriptionWithSecret:
    """Subscribe a URL to Baton's events. The response carries the signing secret
    (`whsec_…`) — the only time it is shown. Private and loopback targets are refused."""
    return await service.create_subscription(session, data=data)


@subscriptions.get(
    "",
    response_model=Page[SubscriptionOut],
    summary="List webhook subscriptions",
    responses=problem_responses(),
)
async def list_subscriptions(session: DbSession, page: PageQuery) -> Page[SubscriptionOut]:
    """Every subscription, oldest first; secrets are never listed."""
    return await service.list_subscriptions(session, cursor=page.cursor, limit=page.limit)


@subscriptions.get(
    "/{subscription_id}",
    response_model=SubscriptionOut,
    summary="Get a webhook subscription",
    responses=problem_responses(404),
)
async def get_subscription(session: DbSession, subscription_id: uuid.UUID) -> SubscriptionOut:
    """One subscription, with why it was disabled if Baton disabled it."""
    return await service.get_subscription(session, subscription_id=subscription_id)


@subscriptions.patch(
    "/{subscription_id}",
    response_model=SubscriptionOut,
    summary="Change a webhook subscription",
    responses=problem_responses(404),
)
async def update_subscription(
    session: DbSession, subscription_id: uuid.UUID, data: SubscriptionUpdate
) -> SubscriptionOut:
    """Change the URL, event types or description, or enable/disable it. Deliveries of a
    disabled subscription wait and resume when it is enabled again."""
    return await service.update_subscription(session, subscription_id=subscription_id, data=data)


@subscriptions.post(
    "/{subscription_id}/rotate-secret",
    response_model=SubscriptionWithSecret,
    summary="Rotate a subscription's secret",
    responses=problem_responses(404),
)
async def rotate_secret(
    session: DbSession, subscription_id: uuid.UUID, data: SecretRotation | None = None
) -> SubscriptionWithSecret:
    """Generate a new secret (shown once). During the grace period every delivery carries
    two signatures, one per secret, so the receiver can switch without losing any."""
    return await service.rotate_secret(
        session, subscription_id=subscription_id, data=data or SecretRotation()
    )


@subscriptions.delete(
    "/{subscription_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a webhook subscription",
    responses=problem_responses(404),
)
async def delete_subscription(session: DbSession, subscription_id: uuid.UUID) -> Response:
    """Remove the subscription and its delivery log."""
    await service.delete_subscription(session, subscription_id=subscription_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@deliveries.get(
    "",
    response_model=Page[DeliveryOut],
    summary="List webhook deliveries",
    responses=problem_responses(),
)
async def list_deliveries(
    session: DbSession,
    page: PageQuery,
    subscription_id: uuid.UUID | None = None,
    status: DeliveryStatus | None = None,
    event_type: OutboundType | None = None,
    customer_id: uuid.UUID | None = None,
) -> Page[DeliveryOut]:
    """The delivery log, newest first: status, attempts, last status code, latency and error,
    and when a pending one is tried next."""
    return await service.list_deliveries(
        session,
        cursor=page.cursor,
        limit=page.limit,
        subscription_id=subscription_id,
        status=status,
        event_type=event_type,
        customer_id=customer_id,
    )


@deliveries.get(
    "/{delivery_id}",
    response_model=DeliveryDetail,
    summary="Get a webhook delivery",
    responses=problem_responses(404),
)
async def get_delivery(
    session: DbSession, delivery_id: Annotated[int, Path(ge=1, le=2**63 - 1)]
) -> DeliveryDetail:
    """One delivery with the body sent and every attempt (time, status code, latency, error)."""
    return await service.get_delivery(session, delivery_id=delivery_id)


@deliveries.post(
    "/{delivery_id}/redeliver",
    response_model=DeliveryOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Redeliver a webhook",
    responses=problem_responses(404, 409),
)
async def redeliver(
    session: DbSession, delivery_id: Annotated[int, Path(ge=1, le=2**63 - 1)]
) -> DeliveryOut:
    """Queue the delivery to be sent again now, with the same `webhook-id`."""
    return await service.redeliver(session, delivery_id=delivery_id)
