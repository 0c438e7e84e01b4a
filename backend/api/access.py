"""Who may talk to the server: without a token, only this machine.

The check is on the client's address, not on the bind address, so no way of starting the app
(`part serve`, `uvicorn --factory backend.app:factory --host 0.0.0.0`, a container) serves other
machines without PART_TOKEN.
"""

from __future__ import annotations

import json

from backend.settings import is_loopback

# Starlette's in-process test transport names its client "testclient"; real sockets give addresses.
IN_PROCESS_CLIENTS = ("testclient",)


class LocalOnlyWithoutToken:
    def __init__(self, app, token: str):
        self.app, self.token = app, token

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket") or self.token:
            return await self.app(scope, receive, send)
        client = scope.get("client")
        host = client[0] if client else None  # None: a Unix socket, local by construction
        if host is None or host in IN_PROCESS_CLIENTS or is_loopback(host):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        body = json.dumps({"detail": f"this server has no PART_TOKEN, so it answers only this machine (127.0.0.1, ::1); "
                                     f"the request came from {host}. Set PART_TOKEN to serve other machines"}).encode()
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
