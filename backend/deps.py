"""Dependencies in one place: the shared services, the bearer token check, upload reading."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Depends, Request, UploadFile
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from backend.datasets import DatasetCache
from backend.errors import ApiError
from backend.jobs import JobSupervisor
from backend.registry import Registry
from backend.settings import Settings


@dataclass
class Services:
    settings: Settings
    registry: Registry
    datasets: DatasetCache
    jobs: JobSupervisor


def services(request: Request) -> Services:
    return request.app.state.services


_bearer = HTTPBearer(auto_error=False, description="PART_TOKEN; required when the server has one")


def require_token(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
    token = request.app.state.services.settings.token
    if not token:
        return
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), token.encode()):
        what = "is missing" if credentials is None else "is wrong"
        raise ApiError(401, f"the bearer token {what}; send the header 'Authorization: Bearer <PART_TOKEN>'")


async def read_upload(file: UploadFile | None, limit: int) -> bytes | None:
    """The uploaded bytes, reading at most one byte past the limit (so an oversized file is refused)."""
    if file is None:
        return None
    return await file.read(limit + 1)
