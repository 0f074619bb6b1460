"""Optimistic concurrency over HTTP: ``ETag`` on reads, ``If-Match`` on PATCH and DELETE.

The ETag is the resource's ``version`` (bumped on every change of its own fields), so a
client that read version 3 and sends ``If-Match: "3"`` gets 412 if anyone changed it since.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response

from app.core.concurrency import Precondition
from app.errors import PreconditionRequired

ETAG_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"description": "OK", "headers": {"ETag": {"$ref": "#/components/headers/ETag"}}}
}
"""The ``responses`` entry of a route that sets ``ETag`` (merged into its 200)."""


def etag(version: int) -> str:
    """The ETag header value of a version."""
    return f'"{version}"'


def set_etag(response: Response, version: int) -> None:
    """Expose the version as the response's ETag."""
    response.headers["ETag"] = etag(version)


def _parse(value: str) -> frozenset[int] | None:
    tags = [t.strip() for t in value.split(",") if t.strip()]
    if "*" in tags:
        return None
    versions: set[int] = set()
    for tag in tags:
        tag = tag.removeprefix("W/").strip('"')
        if tag.isdigit() and len(tag) < 10:
            versions.add(int(tag))
    return frozenset(versions)  # empty: nothing can match, so any change is refused (412)


async def if_match(
    request: Request,
    value: Annotated[
        str | None,
        Header(
            alias="If-Match",
            max_length=500,
            description='The ETag you read (`"3"`); the change is refused with 412 if the '
            "resource has changed since.",
        ),
    ] = None,
) -> Precondition | None:
    """The client's precondition, or None; 428 when the service requires one."""
    if value is None:
        if request.app.state.settings.require_if_match:
            raise PreconditionRequired(
                "Send If-Match with the ETag you read; this service requires it for changes."
            )
        return None
    return Precondition(_parse(value))


IfMatch = Annotated[Precondition | None, Depends(if_match)]
