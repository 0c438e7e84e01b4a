"""Where a job runs: `local`, the API's own supervisor (backend/services/jobs.py, the embedded default), or
`slurm`, sbatch on a cluster (slurm.py). Both run the same `part` command line from part.commands.

A request names its executor (default PART_EXECUTOR) and, for Slurm, a `slurm` object; `place` checks
both before anything is written, so a bad partition or time limit is a 422 that says what is accepted.
"""

from __future__ import annotations

import shlex
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from backend.api.errors import bad_request
from backend.services.executors import slurm
from backend.settings import Settings

EXECUTORS = ("local", "slurm")
Executor = Literal["local", "slurm"]


def _time_limit(text: str) -> str:
    slurm.time_limit_minutes(text)  # ValueError -> 422 naming the accepted forms
    return text


class SlurmOptions(BaseModel):
    """A Slurm job's allocation; unset fields take the PART_SLURM_* defaults, then the cluster's."""

    model_config = ConfigDict(extra="forbid")
    partition: str | None = Field(None, max_length=100, description="a partition of the cluster (GET /api/options)")
    nodes: int = Field(1, ge=1, le=1024, description="nodes; more than one trains with DDP across them")
    gpus_per_node: int | None = Field(None, ge=0, le=64, description="GPUs (and training processes) per node")
    time_limit: Annotated[str, AfterValidator(_time_limit)] | None = Field(
        None, max_length=20, description="MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS, e.g. 04:00:00")
    requeue: bool | None = Field(None, description="queue again by itself when stopped by its time limit or preempted")


class Placement(BaseModel):
    """Where a job request runs: the fields every job request shares."""

    model_config = ConfigDict(extra="forbid")
    executor: Executor | None = Field(None, description="local or slurm (default: the server's PART_EXECUTOR)")
    slurm: SlurmOptions | None = Field(None, description="with executor slurm: partition, nodes, gpus_per_node, "
                                                         "time_limit, requeue")


def place(executor: str | None, options: SlurmOptions | None, nproc: int, settings: Settings) -> dict[str, Any]:
    """The executor and resolved Slurm options of a request, checked against this server and its cluster."""
    executor = executor or settings.executor
    if executor == "local":
        if options is not None:
            raise bad_request("`slurm` options need executor 'slurm'; this job runs locally (executor 'local')")
        return {"executor": "local"}
    why = slurm.unavailable()
    if why:
        raise bad_request(f"executor 'slurm' is not available on this server: {why}; accepted: local")
    try:
        shlex.split(settings.slurm_extra)
    except ValueError as err:
        raise bad_request(f"the server's PART_SLURM_EXTRA is not a command line ({err}); fix the setting") from None
    if nproc > 1:
        raise bad_request("with executor 'slurm' the processes are slurm.nodes x slurm.gpus_per_node; leave nproc at 1")
    chosen = slurm.resolve(options.model_dump() if options else {}, settings)
    partitions = slurm.partitions()
    if chosen["partition"] and partitions and chosen["partition"] not in partitions:
        raise bad_request(f"partition '{chosen['partition']}' is not one of this cluster's; accepted: {', '.join(partitions)}")
    return {"executor": "slurm", "slurm": chosen}


def respec(spec: dict[str, Any], options: dict[str, Any] | None) -> dict[str, Any]:
    """A job's spec with some of its Slurm options replaced (a resume with more time, another partition)."""
    if not options:
        return spec
    if spec.get("executor") != "slurm":
        raise bad_request("`slurm` options resume only a Slurm job; this job runs locally")
    if options.get("partition") and slurm.partitions() and options["partition"] not in slurm.partitions():
        raise bad_request(f"partition '{options['partition']}' is not one of this cluster's; "
                          f"accepted: {', '.join(slurm.partitions())}")
    return {**spec, "slurm": {**spec["slurm"], **options}}


class ResumeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slurm: SlurmOptions | None = Field(None, description="a Slurm job's new options, e.g. {\"time_limit\": \"08:00:00\"}")


def catalogue(settings: Settings) -> dict[str, Any]:
    """What GET /api/options says about executors: which are available, the default, Slurm's defaults."""
    why = slurm.unavailable()
    return {"default": settings.executor, "local": {"available": True},
            "slurm": {"available": why is None, "reason": why, "partitions": slurm.partitions() if why is None else [],
                      "defaults": slurm.resolve({}, settings)}}
