"""API key format, generation and hashing (no I/O).

A key is ``bt_<prefix>_<secret>``: the prefix is public (it finds the row and is shown in
listings), the secret is 256 random bits. Only SHA-256 of the whole key is stored. A plain
fast hash is right here, unlike for passwords: the secret is high-entropy random data, so
there is nothing to brute-force and a slow KDF would only add latency to every request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

KEY_PATTERN = re.compile(r"^bt_([0-9a-f]{12})_([A-Za-z0-9_-]{32,128})$")


@dataclass(frozen=True)
class ParsedKey:
    prefix: str
    secret_hash: bytes


def generate_key() -> str:
    """A new random key, shown to its owner once."""
    return f"bt_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"


def hash_key(key: str) -> bytes:
    """The stored digest of a key."""
    return hashlib.sha256(key.encode()).digest()


def parse_key(key: str) -> ParsedKey | None:
    """The prefix and digest of a well-formed key, else None."""
    match = KEY_PATTERN.match(key)
    if match is None:
        return None
    return ParsedKey(prefix=match.group(1), secret_hash=hash_key(key))


def digest_matches(stored: bytes, presented: bytes) -> bool:
    """Constant-time comparison of two digests."""
    return hmac.compare_digest(stored, presented)
