"""Sweeps: a grid over config fields as one training job per cell (on Slurm, one job array)."""

from __future__ import annotations

from fastapi import APIRouter

from backend.api.deps import ServicesDep
from backend.services import sweeps

router = APIRouter(prefix="/api/sweeps", tags=["sweeps"])


@router.post("", status_code=201, summary="queue one training job per cell of a grid")
def submit(svc: ServicesDep, req: sweeps.SweepRequest):
    return sweeps.submit(req, svc.settings, svc.registry, svc.jobs)


@router.get("", summary="the names of the sweeps")
def list_sweeps(svc: ServicesDep) -> list[str]:
    return sweeps.names(svc.registry)


@router.get("/{name}", summary="a sweep's grid and each cell's run and job")
def get_sweep(svc: ServicesDep, name: str):
    return sweeps.view(name, svc.registry, svc.jobs)
