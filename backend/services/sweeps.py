"""Sweeps through the API: one request, one training job per cell, the sweep's record beside the runs.

Every cell is checked (its config, its run folder free) before any is written. The cells go to the
supervisor together: locally they wait in its queue under the concurrency limit; on Slurm they become
one job array (at most `parallel` running at once).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from backend.api.errors import conflict, not_found
from backend.services import executors, job_specs
from backend.services.jobs import JobSupervisor
from backend.services.progress import job_view
from backend.services.registry import RUN_ID, Registry, check_run_id
from backend.settings import Settings
from part.training import sweeps
from part.runs import RunDir, read_sweep, sweep_names, write_sweep

Value = bool | int | float | str


class SweepRequest(executors.Placement):
    preset: job_specs.Preset = Field(description="a training preset, e.g. fmnist-part")
    overrides: job_specs.TrainOverrides = Field(default_factory=job_specs.TrainOverrides,
                                                description="TrainConfig fields every cell shares")
    grid: dict[str, list[Value]] = Field(max_length=8, description="swept fields and their values, e.g. "
                                         "{\"recipe\": [\"paper\", \"shuffled\"], \"seed\": [0, 1]}")
    name: str = Field(pattern=RUN_ID.pattern + "$", max_length=60, description="the sweep's name; its cells are "
                                                                               "NAME.FIELD-VALUE...")
    parallel: int | None = Field(None, ge=1, le=256, description="Slurm: cells running at once (--array=0-N%P)")


def submit(req: SweepRequest, settings: Settings, registry: Registry, jobs: JobSupervisor) -> dict[str, Any]:
    name = check_run_id(req.name)
    placement = executors.place(req.executor, req.slurm, 1, settings)
    overrides = req.overrides.model_dump(exclude_none=True)
    record = sweeps.plan(name, req.preset, overrides, req.grid)  # ValueError -> 422 with the config's words
    if read_sweep(registry.root, name) is not None:
        raise conflict(f"a sweep '{name}' already exists; choose another name")
    taken = [c["run_id"] for c in record["cells"] if RunDir(registry.root / c["run_id"]).path.exists()]
    if taken:
        raise conflict(f"run folder {taken[0]} of this sweep already exists; choose another name")
    built = []
    for cell in record["cells"]:
        cell_req = job_specs.TrainJobRequest(kind="train", preset=req.preset, name=cell["run_id"],
                                             overrides={**overrides, **cell["values"]})
        job = job_specs.train_job(cell_req, settings, registry)
        job["spec"].update(placement, sweep=name, parallel=req.parallel)
        built.append(job)
    views = jobs.submit_all(built)
    write_sweep(registry.root, {**record, **placement, "jobs": [v["id"] for v in views]})
    return view(name, registry, jobs)


def view(name: str, registry: Registry, jobs: JobSupervisor) -> dict[str, Any]:
    record = read_sweep(registry.root, check_run_id(name))
    if record is None:
        raise not_found(f"no sweep '{name}'; GET /api/sweeps lists them")
    by_run = {job["run_id"]: job for job in jobs.store.all() if job["spec"].get("sweep") == name}
    cells = [{"run_id": c["run_id"], "values": c["values"],
              "job": job_view(by_run[c["run_id"]]) if c["run_id"] in by_run else None} for c in record["cells"]]
    return {"name": name, "preset": record["preset"], "grid": record["grid"], "executor": record.get("executor"),
            "experiment_fields": record.get("experiment_fields", []), "cells": cells}


def names(registry: Registry) -> list[str]:
    return sweep_names(registry.root)
