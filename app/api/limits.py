"""Request body size limit as pure ASGI middleware, answering 413 as problem+json.

Starlette has a body-limit middleware, but it answers in plain text before the app's error
handlers can render RFC 9457; this one is small and keeps every error a problem document.
"""

from __future__ import annotations

import json

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import PROBLEM_CONTENT_TYPE


class BodySizeLimitMiddleware:
    """Refuse bodies over ``max_bytes``: at once by Content-Length, else while streaming.

    ``overrides`` gives other limits to paths under a prefix (bulk imports stream their body
    and may be far larger)."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, overrides: tuple[tuple[str, int], ...] = ()
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.overrides = overrides

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {
                "type": "https://baton.dev/problems/payload_too_large",
                "title": "Request body too large",
                "status": 413,
                "detail": f"The request body is larger than {self.max_bytes} bytes.",
                "code": "payload_too_large",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for prefix, limit in self.overrides:
            if scope["path"].startswith(prefix):
                await BodySizeLimitMiddleware(self.app, limit)(scope, receive, send)
                return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # an HTTPException passes through FastAPI's body parsing to the handler
                    raise HTTPException(
                        413, f"The request body is larger than {self.max_bytes} bytes."
                    )
            return message

        await self.app(scope, limited_receive, send)
