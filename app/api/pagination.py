"""The list query parameters (``cursor``, ``limit``) as a FastAPI dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from app.core.pagination import PageParams
from app.settings import get_settings


def _page_params(
    cursor: Annotated[str | None, Query(max_length=512, description="From next_cursor.")] = None,
    limit: Annotated[int | None, Query(ge=1, le=500, description="Page size (max 500).")] = None,
) -> PageParams:
    settings = get_settings()
    return PageParams(cursor=cursor, limit=min(limit or settings.default_page_size, 500))


PageQuery = Annotated[PageParams, Depends(_page_params)]
