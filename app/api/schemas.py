"""Schema pieces shared by every domain's resources."""

from __future__ import annotations

from typing import ClassVar, Self

from pydantic import BaseModel, model_validator


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
