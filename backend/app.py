"""The FastAPI application: create_app(settings) wires services, routers, errors and the token check."""

from __future__ import annotations

from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

import torch
from fastapi import Depends, FastAPI

from backend import errors
from backend.datasets import DatasetCache
from backend.deps import Services, require_token, services
from backend.jobs import JobSupervisor
from backend.limits import BodyLimit
from backend.registry import Registry
from backend.routers import datasets, images, jobs, runs
from backend.schemas import Health
from backend.settings import Settings, load_settings
from part.distributed import max_nproc

MULTIPART_SLACK = 64 * 1024  # form fields and boundaries around the file


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
    svc = Services(settings, Registry(settings), DatasetCache(settings), JobSupervisor(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if start_jobs:
            svc.jobs.start()
        yield
        svc.jobs.stop()

    app = FastAPI(title="PART Studio", version=_version(), lifespan=lifespan,
                  description="Pixel-reweighted adversarial training: runs, CAMs, eps-maps, attacks and jobs.")
    app.state.services = svc
    errors.install(app)

    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes + MULTIPART_SLACK,
                       upload_limit=settings.max_upload_bytes)

    @app.get("/api/health", response_model=Health, tags=["health"], summary="liveness; never needs the token")
    def health(svc: Services = Depends(services)):
        states = [job["state"] for job in svc.jobs.store.all()]
        return {"status": "ok", "version": _version(), "device": str(svc.registry.device),
                "max_nproc": max_nproc("auto"),
                "runs": len(svc.registry.run_ids()), "jobs": {s: states.count(s) for s in sorted(set(states))},
                "auth": bool(settings.token)}

    guarded = [Depends(require_token)]
    for router in (runs.router, datasets.router, images.router, jobs.router):
        app.include_router(router, dependencies=guarded)
    return app


def factory() -> FastAPI:
    """For `uvicorn --factory backend.app:factory`: settings from the environment."""
    return create_app(load_settings())
