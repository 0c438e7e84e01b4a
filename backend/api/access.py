"""Who may talk to the server: without a token, only this machine, and only under its own names.

LocalOnlyWithoutToken checks the client's address, not the bind address, so no way of starting the app
(`part serve`, `uvicorn --factory backend.app:factory --host 0.0.0.0`, a container) serves other
machines without PART_TOKEN.

HostAndOrigin does what a notebook server does against web pages in the user's own browser: a page of
another site that re-binds its DNS name to 127.0.0.1 sends `Host: its.name`, so the Host must be a
loopback name (localhost, 127.0.0.1, ::1) or one of PART_ALLOWED_HOSTS; and a request that changes
something (POST, PUT, PATCH, DELETE) carrying an `Origin` of another site (a cross-site form, which
needs no CORS preflight) is refused: its Origin must be this server's own (the same host and port as
the Host header) or name a host of PART_ALLOWED_HOSTS. Requests without Origin (curl, the dashboard's
server-side client, scripts) are not affected. Both answer 403 with a JSON detail.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from backend.settings import is_loopback, is_loopback_name, normal_host

# Starlette's in-process test transport names its client "testclient"; real sockets give addresses.
IN_PROCESS_CLIENTS = ("testclient",)


# Starlette's in-process test transport sends this Host; it is no network name, so no page can re-bind it.
IN_PROCESS_HOST = "testserver"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


async def _refuse(send, message: str) -> None:
    body = json.dumps({"detail": message}).encode()
    await send({"type": "http.response.start", "status": 403,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _host_name(netloc: str) -> str:
    """The host of 'name:port', '[::1]:8000' or 'name'."""
    netloc = netloc.strip()
    if netloc.startswith("["):
        return normal_host(netloc.split("]", 1)[0] + "]")
    return normal_host(netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc)


class HostAndOrigin:
    def __init__(self, app, allowed: tuple[str, ...] = (), check_host: bool = True):
        self.app, self.allowed, self.check_host = app, tuple(a for a in allowed if a != "*"), check_host

    def _host_ok(self, host: str, in_process: bool) -> bool:
        name = _host_name(host)
        return is_loopback_name(name) or name in self.allowed or (in_process and name == IN_PROCESS_HOST)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        client = scope.get("client")
        in_process = bool(client) and client[0] in IN_PROCESS_CLIENTS
        host = headers.get("host")
        if self.check_host and host is not None and not self._host_ok(host, in_process):
            if scope["type"] == "websocket":
                return await send({"type": "websocket.close", "code": 1008})
            accepted = ", ".join(("localhost", "127.0.0.1", "::1", *self.allowed))
            return await _refuse(send, f"Host '{host[:100]}' is not a name of this server; accepted: {accepted} "
                                       "(PART_ALLOWED_HOSTS adds names). A web page that re-binds its own name "
                                       "to this machine is refused this way")
        origin = headers.get("origin")
        method = scope.get("method", "GET").upper()
        if origin is not None and (scope["type"] == "websocket" or method not in SAFE_METHODS) \
                and not self._origin_ok(origin, host):
            if scope["type"] == "websocket":
                return await send({"type": "websocket.close", "code": 1008})
            return await _refuse(send, f"Origin '{origin[:100]}' is another site: {method} requests are accepted "
                                       "from this server's own pages or without an Origin (scripts, curl, the "
                                       "dashboard); PART_ALLOWED_HOSTS names other sites that may send them")
        return await self.app(scope, receive, send)

    def _origin_ok(self, origin: str, host: str | None) -> bool:
        parts = urlsplit(origin.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False  # 'null' (a sandboxed frame, a file), or not a web origin
        if host is not None and parts.netloc.lower() == host.strip().lower():
            return True  # the server's own pages (/docs)
        return _host_name(parts.netloc) in self.allowed


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
        await _refuse(send, f"this server has no PART_TOKEN, so it answers only this machine (127.0.0.1, ::1); "
                            f"the request came from {host}. Set PART_TOKEN to serve other machines")
