"""Signature schemes and payload shapes of each CRM, turned into Baton's event types.

``verify`` runs on the raw bytes before anything is parsed. Standard Webhooks is verified
with the ``standardwebhooks`` package; HubSpot v3 and GitHub-style HMAC are a few lines of
the standard library's ``hmac`` (no maintained package covers them).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.errors import InvalidInput, Unauthorized
from app.webhooks.events import INBOUND_TYPES

TOLERANCE = timedelta(minutes=5)
DEFAULT_HMAC_HEADER = "x-signature-256"


class SignatureInvalid(Unauthorized):
    code = "webhook_signature_invalid"
    title = "Webhook signature invalid"


@dataclass(frozen=True, slots=True)
class Parsed:
    """One event of a request: its external id, Baton type (None = not handled) and data."""

    event_id: str
    type: str | None
    data: dict[str, Any]
    raw: bytes
    ignored: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _standard(secrets: Sequence[str], headers: Mapping[str, str], body: bytes) -> None:
    error = "no matching signature"
    for secret in secrets:
        try:
            Webhook(secret).verify(body.decode(), dict(headers), json_parse=False)
            return
        except (WebhookVerificationError, ValueError) as exc:  # malformed headers: ValueError
            error = str(exc) or type(exc).__name__
    raise SignatureInvalid(f"Standard Webhooks verification failed: {error}.")


def _hubspot(
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str,
    url: str,
    now: datetime,
) -> None:
    signature = headers.get("x-hubspot-signature-v3")
    stamp = headers.get("x-hubspot-request-timestamp")
    if not signature or not stamp:
        raise SignatureInvalid("Missing X-HubSpot-Signature-v3 or X-HubSpot-Request-Timestamp.")
    try:
        at = datetime.fromtimestamp(int(stamp) / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise SignatureInvalid("Malformed X-HubSpot-Request-Timestamp.") from exc
    if abs(now - at) > TOLERANCE:
        raise SignatureInvalid("The HubSpot request timestamp is outside the 5-minute window.")
    message = method.encode() + url.encode() + body + stamp.encode()
    for secret in secrets:
        expected = base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest())
        if hmac.compare_digest(expected, signature.encode()):
            return
    raise SignatureInvalid("The HubSpot signature does not match.")


def _generic(
    secrets: Sequence[str], headers: Mapping[str, str], body: bytes, *, header: str
) -> None:
    value = headers.get(header.lower())
    if not value:
        raise SignatureInvalid(f"Missing the {header} header.")
    given = value.removeprefix("sha256=").strip().lower()
    for secret in secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, given):
            return
    raise SignatureInvalid(f"The {header} signature does not match.")


def verify(
    adapter: str,
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str,
    url: str,
    signature_header: str | None,
    now: datetime,
) -> None:
    """Raise SignatureInvalid (401) unless one of ``secrets`` signed this exact request."""
    if adapter == "standard":
        _standard(secrets, headers, body)
    elif adapter == "hubspot":
        _hubspot(secrets, headers, body, method=method, url=url, now=now)
    else:
        _generic(secrets, headers, body, header=signature_header or DEFAULT_HMAC_HEADER)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("The body is not valid JSON.") from exc


def _baton_event(event_id: str, payload: Any, raw: bytes) -> Parsed:
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        raise InvalidInput("The body must be an object with `type` and a `data` object.")
    kind = payload.get("type")
    if kind not in INBOUND_TYPES:
        return Parsed(event_id, None, payload["data"], raw, ignored=f"unknown event type {kind!r}")
    return Parsed(event_id, kind, payload["data"], raw)


# HubSpot company properties Baton understands -> (event type, Baton field)
HUBSPOT_PROPERTIES: dict[str, tuple[str, str]] = {
    "name": ("customer.upserted", "name"),
    "baton_tier": ("customer.tier_changed", "tier"),
    "region": ("customer.upserted", "region"),
    "industry": ("customer.upserted", "industry"),
    "annualrevenue": ("customer.upserted", "annual_value"),
    "baton_satisfaction": ("customer.satisfaction_recorded", "score"),
}


def _hubspot_event(item: Any) -> Parsed:
    if not isinstance(item, dict) or "eventId" not in item or "subscriptionType" not in item:
        raise InvalidInput("Each HubSpot event needs `eventId` and `subscriptionType`.")
    raw = json.dumps(item, separators=(",", ":")).encode()
    event_id = str(item["eventId"])
    kind = str(item["subscriptionType"])
    data: dict[str, Any] = {"external_ref": f"hs-company-{item.get('objectId')}"}
    if kind == "company.deletion":
        return Parsed(event_id, "customer.churned", data, raw)
    if kind == "company.creation":
        return Parsed(event_id, "customer.upserted", data, raw)
    if kind == "company.propertyChange":
        name = str(item.get("propertyName"))
        value = item.get("propertyValue")
        if name == "baton_status" and value == "churned":
            return Parsed(event_id, "customer.churned", data, raw)
        if name in HUBSPOT_PROPERTIES:
            baton_type, baton_field = HUBSPOT_PROPERTIES[name]
            return Parsed(event_id, baton_type, {**data, baton_field: value}, raw)
        return Parsed(event_id, None, data, raw, ignored=f"property {name!r} is not mapped")
    return Parsed(event_id, None, data, raw, ignored=f"subscription type {kind!r} is not handled")


def parse(adapter: str, headers: Mapping[str, str], body: bytes) -> list[Parsed]:
    """The events in a verified request (HubSpot sends a batch; the others one)."""
    payload = _json(body)
    if adapter == "standard":
        return [_baton_event(headers["webhook-id"], payload, body)]
    if adapter == "hubspot":
        if not isinstance(payload, list) or not payload or len(payload) > 1000:
            raise InvalidInput("A HubSpot body is a JSON array of 1 to 1000 events.")
        return [_hubspot_event(item) for item in payload]
    event_id = payload.get("id") if isinstance(payload, dict) else None
    if not isinstance(event_id, str | int) or not str(event_id) or len(str(event_id)) > 200:
        raise InvalidInput("The body needs an `id` (the event id, at most 200 characters).")
    return [_baton_event(str(event_id), payload, body)]
