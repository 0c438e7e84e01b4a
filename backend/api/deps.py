"""Dependencies in one place: the shared services, the bearer token check, upload reading."""

from __future__ import annotations

from typing import Annotated

import hmac
from dataclasses import dataclass, field

from fastapi import Depends, Request, UploadFile
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from backend.services.datasets import DatasetCache
from backend.api.errors import ApiError
from backend.services.jobs import JobSupervisor
from backend.services.registry import Registry
from backend.settings import Settings


@dataclass
class ModelSlots:
    """How many explain/attack/compare requests compute at once. Counted on the event loop (one
    thread), so a plain integer is safe; a full house answers 503 at once rather than queueing."""
    limit: int
    busy: int = 0


@dataclass
class Services:
    settings: Settings
    registry: Registry
    datasets: DatasetCache
    jobs: JobSupervisor
    slots: ModelSlots
    submissions: ModelSlots = field(default_factory=lambda: ModelSlots(2))  # POST /api/jobs checked at once


# async: a sync dependency would take a worker thread, the ones model work keeps busy.
async def services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(services)]  # what a route declares to get the app's services


async def model_slot(request: Request):
    slots: ModelSlots = request.app.state.services.slots
    if slots.busy >= slots.limit:
        raise ApiError(503, f"the server is computing {slots.busy} images, its limit (PART_MODEL_CONCURRENCY); "
                            "retry in a second", headers={"Retry-After": "1"})
    slots.busy += 1
    try:
        yield
    finally:
        slots.busy -= 1


async def submit_slot(request: Request):
    """Job submissions validated at once (a config, its schedules, the run folder): more get 503 with
    Retry-After, so a burst of submissions cannot take every worker thread from the other routes."""
    slots: ModelSlots = request.app.state.services.submissions
    if slots.busy >= slots.limit:
        raise ApiError(503, f"the server is checking {slots.busy} job submissions, its limit "
                            "(PART_SUBMIT_CONCURRENCY); retry in a second", headers={"Retry-After": "1"})
    slots.busy += 1
    try:
        yield
    finally:
        slots.busy -= 1


_bearer = HTTPBearer(auto_error=False, description="PART_TOKEN; required when the server has one")


async def require_token(request: Request,
                        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
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
