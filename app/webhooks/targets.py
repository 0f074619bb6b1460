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


def well_formed_url(url: str) -> str:
    """``url`` if it parses as an http(s) URL with a host and a valid port; ValueError (a 422
    in a request body) otherwise. ``urlsplit`` raises on a broken IPv6 literal, ``.port`` on a
    port out of range; both would otherwise surface later as a 500."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise ValueError(f"not a valid URL ({exc})") from None
    if port == 0:
        raise ValueError("port 0 is not a port one can connect to")
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError("must be an http(s) URL with a host")
    if "[" in parts.netloc or "]" in parts.netloc:
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise ValueError("the bracketed host is not an IPv6 address") from None
    return url


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def check_target(url: str, *, allow_private: bool) -> None:
    """Refuse a URL that is not http(s), has credentials, or resolves to a non-public address
    (loopback, private, link-local such as cloud metadata) unless ``allow_private``.

    Checked when a subscription is saved and again before each delivery (DNS may change)."""
    try:
        well_formed_url(url)
    except ValueError as exc:
        raise TargetNotAllowed(f"The URL is not usable: {exc}.", field="url") from None
    parts = urlsplit(url)
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
