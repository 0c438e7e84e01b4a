"""The FastAPI application: create_app(settings) wires services, routers, errors and the access checks."""

from __future__ import annotations

from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

import torch
from fastapi import Depends, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi

from backend.api import errors
from backend.api.access import HostAndOrigin, LocalOnlyWithoutToken
from backend.services.datasets import DatasetCache
from backend.api.deps import ModelSlots, Services, require_token
from backend.services.jobs import JobSupervisor
from backend.api.limits import BodyLimit
from backend.services.registry import Registry
from backend.api.routers import datasets, evaluations, exports, images, jobs, options, runs, sweeps, theory
from backend.api.schemas import Health
from backend.settings import Settings, load_settings
from part.training.distributed import max_nproc

MULTIPART_SLACK = 64 * 1024  # form fields and boundaries around the file
UPLOAD_STATUSES = (415, 503)  # only the image routes decode uploads and compute with models


def _version() -> str:
    try:
        return version("part-studio")
    except PackageNotFoundError:
        return "0"


def create_app(settings: Settings | None = None, *, start_jobs: bool = True) -> FastAPI:
    settings = settings or load_settings()
    if settings.torch_threads > 0:
        torch.set_num_threads(settings.torch_threads)
    settings.checkpoints.mkdir(parents=True, exist_ok=True)
    svc = Services(settings, Registry(settings), DatasetCache(settings), JobSupervisor(settings),
                   ModelSlots(settings.model_concurrency), ModelSlots(settings.submit_concurrency))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if start_jobs:
            svc.jobs.start()
        yield
        svc.jobs.stop()

    # The docs are routes of their own below, behind the token like everything but health.
    app = FastAPI(title="PART Studio", version=_version(), lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None,
                  description="Pixel-reweighted adversarial training: runs, CAMs, eps-maps, attacks and jobs. "
                              "Every error answers JSON {\"detail\": \"what was wrong; what is accepted\"}.")
    app.state.services = svc
    errors.install(app)

    # Outermost last: the access checks (client address, then Host and Origin), then the body limit, then the
    # catch-all next to the routes.
    app.add_middleware(errors.CatchAll)
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes + MULTIPART_SLACK,
                       upload_limit=settings.max_upload_bytes)
    app.add_middleware(HostAndOrigin, allowed=settings.allowed_host_names(), check_host=settings.checks_host())
    app.add_middleware(LocalOnlyWithoutToken, token=settings.token)

    # Async and free of dependencies: it runs on the event loop, never behind model work in the threadpool.
    @app.get("/api/health", response_model=Health, tags=["health"], summary="liveness; never needs the token")
    async def health(request: Request):
        runs, empty = svc.registry.run_counts()
        return {"status": "ok", "version": _version(), "device": str(svc.registry.device),
                "max_nproc": max_nproc("auto"),
                "runs": runs, "runs_without_checkpoint": empty, "jobs": svc.jobs.counts(),
                "auth": bool(settings.token), "model_requests": svc.slots.busy,
                "model_concurrency": svc.slots.limit, "supervising": svc.jobs.supervising,
                "supervisor_pid": svc.jobs.supervisor_pid()}

    guarded = [Depends(require_token)]
    for router in (runs.router, datasets.router, images.router, jobs.router, theory.router, evaluations.router,
                   exports.router, options.router, sweeps.router):
        app.include_router(router, dependencies=guarded)

    @app.get("/openapi.json", include_in_schema=False, dependencies=guarded)
    async def openapi_schema():
        return app.openapi()

    @app.get("/docs", include_in_schema=False, dependencies=guarded)
    async def docs():
        return get_swagger_ui_html(openapi_url="/openapi.json", title="PART Studio API")

    @app.get("/redoc", include_in_schema=False, dependencies=guarded)
    async def redoc():
        return get_redoc_html(openapi_url="/openapi.json", title="PART Studio API")

    app.openapi = lambda: _openapi(app, settings)
    return app


def _openapi(app: FastAPI, settings: Settings) -> dict:
    """FastAPI's schema, made to say what the server does: one error body for every error status a
    route answers, and the bearer token only where the server has one."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorBody"] = errors.ErrorBody.model_json_schema()
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            statuses = dict(errors.ERROR_STATUSES)
            if path == "/api/health":
                statuses = {500: statuses[500]}
            elif not path.startswith(("/api/explain", "/api/attack", "/api/compare")):
                for status in UPLOAD_STATUSES:
                    statuses.pop(status)
            if not settings.token:
                statuses.pop(401, None)
                operation.pop("security", None)
            responses = operation.setdefault("responses", {})
            for status, description in statuses.items():
                responses[str(status)] = {"description": description, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
            if "503" in responses:
                responses["503"]["headers"] = {"Retry-After": {"schema": {"type": "integer"},
                                                               "description": "seconds to wait"}}
    if not settings.token:
        schema["components"].pop("securitySchemes", None)
    app.openapi_schema = schema
    return schema


def factory() -> FastAPI:
    """For `uvicorn --factory backend.app:factory`: settings from the environment."""
    return create_app(load_settings())
