"""Secrets never reach a log: by their shape in any text, and not through the errors of a
database or SMTP URL that could not be read."""

from __future__ import annotations

import pytest

from app.db.embedded import DatabaseNotConfigured
from app.db.session import resolve_database_url
from app.handovers.emails import Smtp
from app.observability.logging import REDACTED, redact
from app.settings import Settings

SIGNATURE = "K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("access_token=tok-93kd8s0a", "tok-93kd8s0a"),
        ("client_secret: 'cs-2jd93kd'", "cs-2jd93kd"),
        ("smtp_password=pw-Qx81z", "pw-Qx81z"),
        ("SECRET_KEY=sk-Zr8a", "sk-Zr8a"),
        (f"webhook-signature: v1,{SIGNATURE} v1,{SIGNATURE[::-1]}", SIGNATURE[8:30]),
        (f"headers={{'x-hubspot-signature-v3': '{SIGNATURE}'}}", SIGNATURE[8:30]),
        ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
        ("postgresql://baton:pw-81kd@db:5432/baton", "pw-81kd"),
        ("password=pw-9sd8", "pw-9sd8"),
    ],
)
def test_secret_shaped_text_is_redacted(text, secret):
    out = redact(text)
    assert secret not in out and REDACTED in out


@pytest.mark.parametrize(
    "text",
    [
        "tokens: 5 rules_version=3",
        "customer 0e534907-e2bb-4ce5-aeb9-05025cc50692 moved to manager 7",
        "passwords are never stored",
    ],
)
def test_ordinary_text_is_left_as_it_is(text):
    assert redact(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "/v1/customers/" + "password-" * 400,
        "token_" * 400,
        "key " + "ab-" * 8000,
        "x-" * 5000 + "token: y",
    ],
)
def test_text_built_to_make_a_pattern_backtrack_is_redacted_at_once(text):
    # A request path is logged before authentication: a pattern that backtracks on such text
    # held the event loop for seconds (56 s for 9 KB of "password-"); this returns at once.
    assert len(redact(text)) <= len(text) + 10 * len(REDACTED)


def test_a_database_url_that_cannot_be_read_is_refused_without_repeating_it():
    # An "@" and a ":" left unencoded in the password: SQLAlchemy's own error quotes its tail.
    bad = "postgresql://baton:Xy@9:k2Secret@db:5432/baton"
    with pytest.raises(DatabaseNotConfigured) as refused:
        resolve_database_url(Settings(database_url=bad))
    assert "k2Secret" not in str(refused.value) and "percent-encoded" in str(refused.value)
    assert refused.value.__suppress_context__


def test_an_smtp_url_that_cannot_be_read_is_refused_without_repeating_it():
    # A "/" left unencoded in the password: urllib's error quotes what stood where the port is.
    with pytest.raises(ValueError) as refused:
        Smtp.from_url("smtp://mailer:S3cretPart/rest@mail.example.com:587", sender="b@x.io")
    assert "S3cret" not in str(refused.value) and "percent-encoded" in str(refused.value)
    assert refused.value.__suppress_context__
    assert Smtp.from_url("smtp://mailer:S3cret%2Frest@mail.example.com", sender="b@x.io").password
