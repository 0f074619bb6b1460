"""The SSRF guard: outbound webhooks go to public http(s) addresses only, unless allowed."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from app.errors import InvalidInput


class TargetNotAllowed(InvalidInput):
    code = "webhook_target_not_allowed"
    title = "Webhook target not allowed"


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def check_target(url: str, *, allow_private: bool) -> None:
    """Refuse a URL that is not http(s), has credentials, or resolves to a non-public address
    (loopback, private, link-local such as cloud metadata) unless ``allow_private``.

    Checked when a subscription is saved and again before each delivery (DNS may change)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetNotAllowed("The URL must be http(s) with a host.", field="url")
    if parts.username or parts.password:
        raise TargetNotAllowed("The URL must not carry credentials.", field="url")
    if allow_private:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname,
            parts.port or (443 if parts.scheme == "https" else 80),
            type=socket.SOCK_STREAM,
        )
    except (OSError, UnicodeError) as exc:
        raise TargetNotAllowed(
            f"The host {parts.hostname!r} does not resolve.", field="url"
        ) from exc
    if not infos or not all(_public(str(info[4][0])) for info in infos):
        raise TargetNotAllowed(
            f"The host {parts.hostname!r} resolves to a private or loopback address.", field="url"
        )
