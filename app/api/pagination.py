"""The list query parameters (``cursor``, ``limit``) as a FastAPI dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from app.core.pagination import MAX_PAGE_SIZE, PageParams
from app.settings import get_settings


def _page_params(
    cursor: Annotated[str | None, Query(max_length=512, description="From next_cursor.")] = None,
    limit: Annotated[
        int | None,
        Query(ge=1, le=MAX_PAGE_SIZE, description=f"Page size (max {MAX_PAGE_SIZE})."),
    ] = None,
) -> PageParams:
    settings = get_settings()
    return PageParams(cursor=cursor, limit=min(limit or settings.default_page_size, MAX_PAGE_SIZE))


PageQuery = Annotated[PageParams, Depends(_page_params)]
