"""Signature schemes and payload shapes of each CRM, turned into Baton's event types.

``verify`` runs on the raw bytes before anything is parsed (Zoho excepted: its only proof is
the token echoed in the body). Standard Webhooks is verified with the ``standardwebhooks``
package; HubSpot v3 and GitHub-style HMAC are a few lines of the standard library's ``hmac``
(the official HubSpot client pulls in a whole API SDK for one function; the tests cross-check
against it). HubSpot and Zoho records are read through the source's field mapping.
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
from app.events.names import INBOUND_TYPES
from app.webhooks.inbound.schemas import SourceMapping

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


def _zoho(secrets: Sequence[str], body: bytes, *, channel_id: str | None) -> None:
    """Zoho CRM echoes the ``token`` (and ``channel_id``) given at registration in the body:
    that is its only proof of origin, so the body is parsed here to read it."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SignatureInvalid("A Zoho notification body is a JSON object.") from exc
    token = payload.get("token") if isinstance(payload, dict) else None
    if not isinstance(token, str) or not token:
        raise SignatureInvalid("The Zoho notification carries no `token`.")
    if channel_id is not None and not hmac.compare_digest(
        str(payload.get("channel_id", "")).encode(), channel_id.encode()
    ):
        raise SignatureInvalid("The Zoho notification is for another channel.")
    for secret in secrets:
        if hmac.compare_digest(token.encode(), secret.encode()):
            return
    raise SignatureInvalid("The Zoho notification token does not match.")


def verify(
    adapter: str,
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str,
    url: str,
    signature_header: str | None,
    channel_id: str | None = None,
    now: datetime,
) -> None:
    """Raise SignatureInvalid (401) unless one of ``secrets`` signed this exact request."""
    if adapter == "standard":
        _standard(secrets, headers, body)
    elif adapter == "hubspot":
        _hubspot(secrets, headers, body, method=method, url=url, now=now)
    elif adapter == "zoho":
        _zoho(secrets, body, channel_id=channel_id)
    else:
        _generic(secrets, headers, body, header=signature_header or DEFAULT_HMAC_HEADER)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("The body is not valid JSON.") from exc


def _baton_event(event_id: str, payload: Any, raw: bytes) -> Parsed:
    kind, data, ignored = _translate_baton(payload)
    return Parsed(event_id, kind, data, raw, ignored=ignored)


def _translate_baton(payload: Any) -> Translated:
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        raise InvalidInput("The body must be an object with `type` and a `data` object.")
    kind = payload.get("type")
    if kind not in INBOUND_TYPES:
        return None, payload["data"], f"unknown event type {kind!r}"
    return kind, payload["data"], None


# (event type or None, Baton data, why it is ignored)
Translated = tuple[str | None, dict[str, Any], str | None]

HUBSPOT_MAPPING = SourceMapping(
    fields={
        "name": "name",
        "baton_tier": "tier",
        "baton_status": "status",
        "hubspot_owner_id": "owner",
        "baton_satisfaction": "satisfaction",
        "region": "region",
        "industry": "industry",
        "annualrevenue": "annual_value",
    },
    external_ref_prefix="hs-company-",
    owner_ref_prefix="hs-owner-",
)
ZOHO_MAPPING = SourceMapping(
    fields={
        "Account_Name": "name",
        "Baton_Tier": "tier",
        "Baton_Status": "status",
        "Owner": "owner",
        "Baton_Satisfaction": "satisfaction",
        "Industry": "industry",
        "Annual_Revenue": "annual_value",
    },
    external_ref_prefix="zoho-",
    owner_ref_prefix="zoho-user-",
)
DEFAULT_MAPPINGS: dict[str, SourceMapping] = {"hubspot": HUBSPOT_MAPPING, "zoho": ZOHO_MAPPING}


def mapping_for(adapter: str, stored: Mapping[str, Any] | None) -> SourceMapping | None:
    """The source's mapping, or its adapter's default (None for adapters that need none)."""
    if adapter not in DEFAULT_MAPPINGS:
        return None
    return SourceMapping.model_validate(stored) if stored else DEFAULT_MAPPINGS[adapter]


def record_change(
    mapping: SourceMapping,
    record_id: str,
    values: Mapping[str, Any],
    *,
    created: bool = False,
    deleted: bool = False,
) -> Translated:
    """One CRM record's change as a Baton event, through the source's field mapping.

    Deleted or a churned status → ``customer.churned``; only satisfaction →
    ``customer.satisfaction_recorded``; only the tier → ``customer.tier_changed`` (which
    re-checks the owner); anything else mapped → ``customer.upserted`` (the owner, if
    mapped, as ``owner_ref``: the customers service decides whether that manager may own it).
    """
    data: dict[str, Any] = {"external_ref": f"{mapping.external_ref_prefix}{record_id}"}
    if deleted:
        return "customer.churned", data, None
    mapped: dict[str, Any] = {
        mapping.fields[k]: v for k, v in values.items() if k in mapping.fields
    }
    status = mapped.pop("status", None)
    if status is not None and str(status) in mapping.churned_values:
        return "customer.churned", data, None
    owner = mapped.pop("owner", None)
    if isinstance(owner, dict):
        owner = owner.get("id")
    if owner not in (None, ""):
        mapped["owner_ref"] = f"{mapping.owner_ref_prefix}{owner}"
    if set(mapped) == {"satisfaction"}:
        return "customer.satisfaction_recorded", {**data, "score": mapped["satisfaction"]}, None
    if set(mapped) == {"tier"} and not created:
        return "customer.tier_changed", {**data, **mapped}, None
    if not mapped and not created:
        unmapped = ", ".join(sorted(values)) or "none"
        return None, data, f"no mapped field changed (fields: {unmapped})"
    return "customer.upserted", {**data, **mapped}, None


def _hubspot_item(item: Any) -> tuple[str, str]:
    if not isinstance(item, dict) or "eventId" not in item or "subscriptionType" not in item:
        raise InvalidInput("Each HubSpot event needs `eventId` and `subscriptionType`.")
    return str(item["eventId"]), str(item["subscriptionType"])


def _translate_hubspot(mapping: SourceMapping, item: Any) -> Translated:
    _, kind = _hubspot_item(item)
    record_id = str(item.get("objectId"))
    if kind == "company.deletion":
        return record_change(mapping, record_id, {}, deleted=True)
    if kind == "company.creation":
        # HubSpot sends the id only; the properties follow as propertyChange events
        return record_change(mapping, record_id, {}, created=True)
    if kind == "company.propertyChange":
        name = str(item.get("propertyName"))
        if name not in mapping.fields:
            return None, {}, f"property {name!r} is not mapped"
        return record_change(mapping, record_id, {name: item.get("propertyValue")})
    return None, {}, f"subscription type {kind!r} is not handled"


def _zoho_records(payload: Any) -> list[dict[str, Any]]:
    """A Zoho notification names several records; each becomes one stored event with the
    notification's envelope and that record's changed fields and values."""
    if not isinstance(payload, dict) or not isinstance(payload.get("ids"), list):
        raise InvalidInput("A Zoho notification needs `ids`, `module` and `operation`.")
    ids = [str(i) for i in payload["ids"]][:1000]
    values: dict[str, dict[str, Any]] = {}
    for entry in payload.get("affected_values") or []:
        if isinstance(entry, dict) and isinstance(entry.get("values"), dict):
            values[str(entry.get("record_id"))] = entry["values"]
    fields: dict[str, list[str]] = {}
    for entry in payload.get("affected_fields") or []:
        if isinstance(entry, dict):  # [{"<record id>": ["Field", ...]}]
            for rid, names in entry.items():
                fields[str(rid)] = [str(n) for n in names] if isinstance(names, list) else []
        elif isinstance(entry, str):  # a plain list of field names, for every record
            for rid in ids:
                fields.setdefault(rid, []).append(entry)
    return [
        {
            "channel_id": str(payload.get("channel_id", "")),
            "server_time": payload.get("server_time"),
            "module": payload.get("module"),
            "operation": payload.get("operation"),
            "id": rid,
            "affected_fields": fields.get(rid, []),
            "values": values.get(rid, {}),
        }
        for rid in ids
    ]


def _translate_zoho(mapping: SourceMapping, record: Mapping[str, Any]) -> Translated:
    module, operation = record.get("module"), record.get("operation")
    if module not in mapping.modules:
        return None, {}, f"module {module!r} is not mapped"
    if operation not in ("insert", "update", "delete"):
        return None, {}, f"operation {operation!r} is not handled"
    return record_change(
        mapping,
        str(record["id"]),
        record.get("values") or {},
        created=operation == "insert",
        deleted=operation == "delete",
    )


def translate(adapter: str, mapping: SourceMapping | None, raw: bytes) -> Translated:
    """A stored event (its raw bytes) as Baton's event type and data, read through the
    source's current mapping: a retry after the mapping is fixed reads it anew."""
    item = _json(raw)
    if adapter == "hubspot":
        return _translate_hubspot(mapping or HUBSPOT_MAPPING, item)
    if adapter == "zoho":
        return _translate_zoho(mapping or ZOHO_MAPPING, item)
    return _translate_baton(item)


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def parse(
    adapter: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    mapping: SourceMapping | None = None,
) -> list[Parsed]:
    """The events in a verified request (HubSpot and Zoho send several; the others one).

    Each is stored as the CRM sent it (a HubSpot item, a Zoho record with its envelope);
    its Baton type is read now for the inbox and again, with its data, when processed."""
    payload = _json(body)
    if adapter == "standard":
        return [_baton_event(headers["webhook-id"], payload, body)]
    if adapter == "hubspot":
        if not isinstance(payload, list) or not payload or len(payload) > 1000:
            raise InvalidInput("A HubSpot body is a JSON array of 1 to 1000 events.")
        events = []
        for item in payload:
            event_id, _ = _hubspot_item(item)
            raw = _compact(item)
            kind, data, ignored = _translate_hubspot(mapping or HUBSPOT_MAPPING, item)
            events.append(Parsed(event_id, kind, data, raw, ignored=ignored))
        return events
    if adapter == "zoho":
        events = []
        for record in _zoho_records(payload):
            raw = _compact(record)
            # Zoho sends no event id: the channel, the server time and the record make one
            # (without a server time, the record's content stands in for it)
            stamp = record["server_time"] or hashlib.sha256(raw).hexdigest()[:16]
            event_id = f"{record['channel_id']}:{stamp}:{record['operation']}:{record['id']}"
            kind, data, ignored = _translate_zoho(mapping or ZOHO_MAPPING, record)
            events.append(Parsed(event_id[:200], kind, data, raw, ignored=ignored))
        if not events:
            raise InvalidInput("The Zoho notification names no record in `ids`.")
        return events
    given = payload.get("id") if isinstance(payload, dict) else None
    if not isinstance(given, str | int) or not str(given) or len(str(given)) > 200:
        raise InvalidInput("The body needs an `id` (the event id, at most 200 characters).")
    return [_baton_event(str(given), payload, body)]
