"""Every error is JSON `{"detail": "what was wrong; what is accepted"}`, and none ends the server."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("backend")


class ApiError(Exception):
    """An error with its HTTP status; the message is shown to the client as is."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def bad_request(message: str) -> ApiError:
    return ApiError(422, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def conflict(message: str) -> ApiError:
    return ApiError(409, message)


def _field(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form")]
    return ".".join(parts) or "request"


def validation_message(errors) -> str:
    """One line per problem: `field: message (got 'value')`."""
    lines = []
    for e in errors:
        got = e.get("input")
        shown = "" if got is None or isinstance(got, (dict, list)) else f" (got {str(got)[:60]!r})"
        lines.append(f"{_field(e.get('loc', ()))}: {e.get('msg', 'invalid')}{shown}")
    return "; ".join(lines) or "invalid request"


def _json(status: int, message: str, **extra) -> JSONResponse:
    return JSONResponse({"detail": message, **extra}, status_code=status)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return _json(exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        return _json(422, validation_message(exc.errors()), errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.method} {request.url.path}; the routes are listed at /docs"
        elif exc.status_code == 405:
            message = f"{request.method} is not accepted on {request.url.path}; see /docs for its methods"
        response = _json(exc.status_code, message)
        response.headers.update(getattr(exc, "headers", None) or {})
        return response

    # part's own errors name what was wrong and what is accepted: pass them on as 4xx.
    @app.exception_handler(ValueError)
    async def value_error(request: Request, exc: ValueError):
        return _json(422, str(exc))

    @app.exception_handler(FileNotFoundError)
    async def missing(request: Request, exc: FileNotFoundError):
        return _json(404, str(exc))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _json(500, f"internal error ({type(exc).__name__}); the server logged it and keeps running")
