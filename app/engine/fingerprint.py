"""A fingerprint of engine input, derived from the whole typed value.

Plan tokens and staleness digests hash what a plan read. Written by hand, such a list of
fields misses the one added later; here every field of every frozen dataclass is walked
(``dataclasses.fields``), arrays by dtype, shape and bytes, so a field a rule reads cannot be
left out. A value of a type this module does not know is refused rather than skipped.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

import numpy as np


def digest(*parts: object, size: int = 24) -> str:
    """Hex digest (``size`` characters) of the parts, each encoded whole."""
    h = hashlib.sha256()
    for part in parts:
        _feed(h, part)
    return h.hexdigest()[:size]


def _feed(h: Any, value: object) -> None:
    # Each value is tagged with its kind, and containers with their length, so two different
    # inputs cannot encode to the same bytes.
    if value is None:
        h.update(b"N")
    elif isinstance(value, Enum):
        _feed(h, value.value)
    elif isinstance(value, bool | np.bool_):
        h.update(b"T" if value else b"F")
    elif isinstance(value, int | np.integer):
        h.update(b"i%d;" % int(value))
    elif isinstance(value, float | np.floating):
        h.update(b"f" + float(value).hex().encode() + b";")
    elif isinstance(value, str):
        data = value.encode()
        h.update(b"s%d:" % len(data) + data)
    elif isinstance(value, bytes):
        h.update(b"b%d:" % len(value) + value)
    elif isinstance(value, UUID):
        h.update(b"u" + value.bytes)
    elif isinstance(value, datetime | date):
        _feed(h, f"{type(value).__name__}:{value.isoformat()}")
    elif isinstance(value, timedelta | Decimal):
        _feed(h, f"{type(value).__name__}:{value}")
    elif isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        h.update(b"a" + array.dtype.str.encode() + repr(array.shape).encode())
        h.update(array.tobytes())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        _feed(h, type(value).__qualname__)
        for field in dataclasses.fields(value):
            _feed(h, field.name)
            _feed(h, getattr(value, field.name))
    elif isinstance(value, Mapping):
        h.update(b"m%d:" % len(value))
        for k in sorted(value, key=lambda k: digest(k, size=64)):
            _feed(h, k)
            _feed(h, value[k])
    elif isinstance(value, frozenset | set):
        h.update(b"e%d:" % len(value))
        for key in sorted(digest(item, size=64) for item in value):
            h.update(key.encode())
    elif isinstance(value, tuple | list):
        h.update(b"l%d:" % len(value))
        for item in value:
            _feed(h, item)
    else:
        raise TypeError(f"cannot fingerprint a {type(value).__name__}")
