"""Schema pieces shared by every domain's resources."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    Field,
    GetPydanticSchema,
    model_validator,
)
from pydantic_core import core_schema

_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _not_a_number(value: Any) -> Any:
    """Refuse a number where an instant is expected: pydantic would read ``0.5`` as seconds
    since 1970, which no client means."""
    if (isinstance(value, int | float) and not isinstance(value, bool)) or (
        isinstance(value, str) and _NUMBER.fullmatch(value)
    ):
        raise ValueError("expected an ISO 8601 date-time such as 2026-03-01T09:00:00Z")
    return value


def _true_or_false(value: Any) -> Any:
    """Only ``true`` or ``false`` (any case) for a boolean query parameter, not ``1``/``yes``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError("expected true or false")


def one_of(values: type[StrEnum] | tuple[StrEnum, ...]) -> GetPydanticSchema:
    """A vocabulary enum (``app.vocabulary``), or some of its members, as the API sees it:
    validated and documented as a literal string choice (the same schema, errors and generated
    clients as ``Literal[...]``), held as the enum member."""
    members = tuple(values)
    enum = type(members[0])
    literal = core_schema.literal_schema([m.value for m in members])
    return GetPydanticSchema(
        lambda _type, _handler: core_schema.no_info_after_validator_function(enum, literal)
    )


Instant = Annotated[datetime, BeforeValidator(_not_a_number)]
"""A date-time given as ISO 8601 text (query parameters, bodies); never a bare number."""
AwareInstant = Annotated[AwareDatetime, BeforeValidator(_not_a_number)]
"""An ISO 8601 date-time with its offset."""
QueryBool = Annotated[bool, BeforeValidator(_true_or_false)]
"""A boolean query parameter: ``true`` or ``false``."""
Email = Annotated[
    str,
    Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", examples=["li.na@example.com"]),
]


class PatchModel(BaseModel):
    """A partial update: a field left out keeps its value; ``NOT_NULL`` fields refuse an
    explicit null (422) instead of silently ignoring it, since they cannot be cleared."""

    NOT_NULL: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _refuse_null_for_required_fields(self) -> Self:
        sent = self.model_fields_set
        nulls = [f for f in self.NOT_NULL if f in sent and getattr(self, f) is None]
        if nulls:
            raise ValueError(
                f"{', '.join(nulls)} cannot be null; leave a field out to keep its value"
            )
        return self
