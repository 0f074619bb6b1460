"""The SSRF guard: outbound webhooks go to global unicast http(s) addresses only, unless
private targets are allowed (tests, closed networks).

An address passes only if it is global unicast in every form it can take: IPv4 must be global
(not loopback, private, shared, link-local such as cloud metadata, reserved, multicast);
IPv6 must be in 2000::/3 and global, which refuses IPv4-mapped (``::ffff:…``),
IPv4-compatible (``::127.0.0.1``), IPv4-translated (``::ffff:0:…``), NAT64 (``64:ff9b::/96``),
site-local (``fec0::/10``), unique-local, link-local and multicast addresses and Teredo; a
6to4 address (``2002::/16``) passes only if the IPv4 address it carries does. Decimal, octal
or short IPv4 spellings (``2130706433``, ``0177.1``) are resolved to their address first.

The check runs when a subscription is saved and again when each delivery connects: the
delivery client resolves the host itself, checks every address, and connects to the address
it checked, so DNS that changes between the check and the connection (rebinding) cannot
redirect a delivery.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

import aiohttp
import aiohttp.abc

from app.errors import InvalidInput

_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")


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


def is_public(address: str) -> bool:
    """Whether ``address`` (an IP literal, with or without a zone) is global unicast."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv4Address):
        return ip.is_global and not ip.is_multicast
    if ip.sixtofour is not None:  # 2002::/16: a relay forwards it to the IPv4 address inside
        return is_public(str(ip.sixtofour))
    if ip not in _GLOBAL_UNICAST or ip.teredo is not None:
        return False
    return ip.is_global


async def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to now (tests replace this to play DNS)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def public_addresses(host: str, port: int, *, allow_private: bool) -> list[str]:
    """The addresses to connect to for ``host``; TargetNotAllowed unless every one is global
    unicast (or ``allow_private``)."""
    try:
        addresses = await resolve(host, port)
    except (OSError, UnicodeError) as exc:
        raise TargetNotAllowed(f"The host {host!r} does not resolve.", field="url") from exc
    if not addresses:
        raise TargetNotAllowed(f"The host {host!r} does not resolve.", field="url")
    if not allow_private and not all(is_public(a) for a in addresses):
        raise TargetNotAllowed(
            f"The host {host!r} resolves to an address that is not public (loopback, private, "
            "link-local, or an IPv4 address embedded in IPv6).",
            field="url",
        )
    return addresses


async def check_target(url: str, *, allow_private: bool) -> None:
    """Refuse a URL that is not http(s), has credentials, or resolves to an address that is not
    global unicast, unless ``allow_private``."""
    try:
        well_formed_url(url)
    except ValueError as exc:
        raise TargetNotAllowed(f"The URL is not usable: {exc}.", field="url") from None
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise TargetNotAllowed("The URL must not carry credentials.", field="url")
    if allow_private:
        return
    assert parts.hostname is not None
    await public_addresses(
        parts.hostname,
        parts.port or (443 if parts.scheme == "https" else 80),
        allow_private=False,
    )


class CheckedResolver(aiohttp.abc.AbstractResolver):
    """The delivery client's resolver: it resolves the host itself, refuses unless every
    address is global unicast (or ``allow_private``), and hands the client only the addresses
    it checked, so a DNS answer that changes between the check and the connection (rebinding)
    cannot send a delivery inward. IP literals never reach a resolver; ``check_target``
    refuses those that are not public before each send."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        addresses = await public_addresses(host, port, allow_private=self.allow_private)
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        return None
