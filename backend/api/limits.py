"""Request body limit as ASGI middleware: refuse by Content-Length, and count chunked bodies as they come."""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException


class BodyLimit:
    def __init__(self, app, limit: int, upload_limit: int):
        self.app, self.limit, self.upload_limit = app, limit, upload_limit

    def _message(self, size: str) -> str:
        return (f"the request body is {size} bytes; the limit is {self.limit} bytes "
                f"(uploaded images: {self.upload_limit} bytes)")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length", b"").decode("latin-1")
        if length.isdigit() and int(length) > self.limit:
            body = json.dumps({"detail": self._message(length)}).encode()
            await send({"type": "http.response.start", "status": 413,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:  # raised inside body parsing, rendered as JSON by the error handlers
                    raise HTTPException(413, self._message(f"more than {self.limit}"))
            return message

        await self.app(scope, counted, send)
