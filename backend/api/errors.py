"""Every error is JSON `{"detail": "what was wrong; what is accepted"}`, and none ends the server.

An unexpected exception becomes a clean JSON 500 inside the app (CatchAll), so the connection
stays usable: Starlette's own last-resort handler re-raises after answering, and the server then
drops the keep-alive connection.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from part.runs import RunFolderError

log = logging.getLogger("backend")


class ErrorBody(BaseModel):
    """The body of every error response."""
    detail: str = Field(description="what was wrong and what is accepted")
    errors: list[dict] | None = Field(None, description="request validation only: one entry per invalid field")


# Every status a route can answer besides its success, for the OpenAPI schema.
ERROR_STATUSES = {
    400: "the request or its image is malformed", 401: "the bearer token is missing or wrong",
    403: "refused for this client", 404: "no such run, epoch, job, dataset sample or route",
    409: "the run, checkpoint or job is in a state that does not allow this",
    413: "the request body or image is too large", 415: "the upload is not an image this server reads",
    422: "a field is invalid: its name, what was given and what is accepted",
    500: "an unexpected error; the server logged it and keeps running",
    503: "the server is busy with model work; retry after the Retry-After seconds",
}


class ApiError(Exception):
    """An error with its HTTP status; the message is shown to the client as is."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def bad_request(message: str) -> ApiError:
    return ApiError(422, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def conflict(message: str) -> ApiError:
    return ApiError(409, message)


def _field(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form")]
    return ".".join(parts) or "request"


def _short(value) -> str:
    try:
        return str(value)[:60]
    except ValueError:  # an int too long to print (over 4300 digits)
        return f"a number of about {value.bit_length() * 3 // 10} digits"


def validation_message(errors) -> str:
    """One line per problem: `field: message (got 'value')`."""
    lines = []
    for e in errors:
        got = e.get("input")
        shown = "" if got is None or isinstance(got, (dict, list)) else f" (got {_short(got)!r})"
        message = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        lines.append(f"{_field(e.get('loc', ()))}: {message}{shown}")
    return "; ".join(lines) or "invalid request"


def _json(status: int, message: str, **extra) -> JSONResponse:
    return JSONResponse({"detail": message, **extra}, status_code=status)


def _allowed_methods(request: Request) -> list[str]:
    """Every method the API documents on this path (Starlette's own Allow names only one route's)."""
    from starlette.routing import compile_path

    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        if compile_path(template)[0].match(request.url.path):
            methods |= {m.upper() for m in operations}
    return sorted(methods)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        response = _json(exc.status, exc.message)
        response.headers.update(exc.headers or {})
        return response

    # A run folder file that exists but cannot be read: the run's state, not the request, is wrong.
    @app.exception_handler(RunFolderError)
    async def run_folder(request: Request, exc: RunFolderError):
        return _json(409, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        return _json(422, validation_message(exc.errors()), errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.method} {request.url.path}; the routes are listed at /docs"
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            allowed = _allowed_methods(request)
            message = f"{request.method} is not accepted on {request.url.path}; accepted: {', '.join(allowed)}"
            headers["Allow"] = ", ".join(allowed)
        response = _json(exc.status_code, message)
        response.headers.update(headers)
        return response

    # part's own errors name what was wrong and what is accepted: pass them on as 4xx.
    @app.exception_handler(ValueError)
    async def value_error(request: Request, exc: ValueError):
        return _json(422, str(exc))

    @app.exception_handler(FileNotFoundError)
    async def missing(request: Request, exc: FileNotFoundError):
        return _json(404, str(exc))



class CatchAll:
    """ASGI middleware: an exception no handler took becomes a JSON 500, and is not re-raised."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def watched(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:  # half a response is out: nothing clean can follow on this connection
                raise
            response = _json(500, f"internal error ({type(exc).__name__}); the server logged it and keeps running")
            await response(scope, receive, send)
