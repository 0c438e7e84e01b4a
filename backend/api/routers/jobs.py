"""Training and evaluation jobs: submit, list, watch (SSE), read the log, cancel, resume, delete."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from fastapi.responses import PlainTextResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from backend.services import executors, job_specs
from backend.api.deps import ServicesDep, submit_slot
from backend.api.errors import ApiError, bad_request
from backend.services.jobs import TERMINAL
from backend.api.schemas import JobsPruned, JobView

router = APIRouter(prefix="/api/jobs", tags=["jobs"])
JOB_ID = re.compile(r"[0-9a-f]{1,32}")
HEARTBEAT_S = 15.0
MAX_PAGE = 1000
JobId = Annotated[str, Path(description="lowercase hex, as listed by GET /api/jobs",
                            json_schema_extra={"pattern": "^[0-9a-f]{1,32}$"})]


def _id(job_id: JobId) -> str:
    if not JOB_ID.fullmatch(job_id):
        raise bad_request(f"job id '{job_id[:60]}' is not accepted; job ids are lowercase hex (see GET /api/jobs)")
    return job_id


@router.post("", response_model=JobView, status_code=201, summary="queue a training or an evaluation job",
             dependencies=[Depends(submit_slot)])
def submit(svc: ServicesDep, req: Annotated[job_specs.JobRequest, Body(openapi_examples={
        "train": {"value": {"kind": "train", "preset": "fmnist-part", "overrides": {"epochs": 2, "burn_in_epochs": 1, "subset": 2000}}},
        "eval": {"value": {"kind": "eval", "run": "fmnist-part-demo", "attacks": "clean,pgd20", "n": 500}}})]):
    build = job_specs.train_job if isinstance(req, job_specs.TrainJobRequest) else job_specs.eval_job
    placement = executors.place(req.executor, req.slurm, getattr(req, "nproc", 1), svc.settings)  # before any write
    built = build(req, svc.settings, svc.registry)
    built["spec"].update(placement)
    return svc.jobs.submit(built)


@router.get("", response_model=list[JobView], summary="the jobs, newest first, a page at a time",
            description="`limit` jobs after skipping `offset` (newest first); the X-Total-Count header says "
                        "how many there are in all.")
def list_jobs(svc: ServicesDep, response: Response, limit: int = Query(100, ge=1, le=MAX_PAGE),
              offset: int = Query(0, ge=0, le=10_000_000)):
    response.headers["X-Total-Count"] = str(sum(svc.jobs.counts().values()))
    return svc.jobs.views(limit=limit, offset=offset)


@router.delete("", response_model=JobsPruned, summary="forget old finished jobs (their runs stay)")
def prune(svc: ServicesDep,
          older_than: float = Query(..., ge=0, le=1e10, allow_inf_nan=False,
                                    description="seconds since the job finished, e.g. 604800 for a week"),
          state: str = Query(",".join(TERMINAL), max_length=200, pattern=r"^\s*[a-z]+(\s*,\s*[a-z]+)*\s*$",
                             description=f"finished states, comma-separated: {', '.join(TERMINAL)}")):
    states = tuple(dict.fromkeys(s.strip() for s in state.split(",") if s.strip()))
    ids = svc.jobs.prune(states, older_than)
    return {"deleted": len(ids), "ids": ids}


@router.get("/{job_id}", response_model=JobView, summary="state, phase, epoch, progress, ETA, latest metrics")
def get_job(svc: ServicesDep, job_id: JobId):
    return svc.jobs.view(_id(job_id))


@router.get("/{job_id}/log", response_class=PlainTextResponse, summary="the tail of the job's output",
            responses={200: {"content": {"text/plain": {}}}})
def get_log(svc: ServicesDep, job_id: JobId, tail: int = Query(65536, ge=1, le=10_000_000)):
    return svc.jobs.log(_id(job_id), tail)


@router.post("/{job_id}/cancel", response_model=JobView, summary="stop the job's processes; its run keeps the last epoch")
def cancel(svc: ServicesDep, job_id: JobId):
    return svc.jobs.cancel(_id(job_id))


@router.post("/{job_id}/resume", response_model=JobView, summary="queue an interrupted, failed or cancelled job again")
def resume(svc: ServicesDep, job_id: JobId, body: Annotated[executors.ResumeRequest | None, Body()] = None):
    options = body.slurm.model_dump(exclude_unset=True) if body and body.slurm else None  # only what it names
    return svc.jobs.resume(_id(job_id), options)


@router.delete("/{job_id}", status_code=204, response_class=Response, summary="forget a finished job (its run stays)")
def delete(svc: ServicesDep, job_id: JobId):
    svc.jobs.delete(_id(job_id))
    return Response(status_code=204)


@router.get("/{job_id}/events", summary="server-sent events: the job view on every change, until it ends",
            responses={200: {"content": {"text/event-stream": {}}}})
async def events(svc: ServicesDep, job_id: JobId, request: Request):
    await run_in_threadpool(svc.jobs.view, _id(job_id))  # 404 before the stream starts

    async def stream():
        last, quiet = None, 0.0
        while True:
            try:
                view = await run_in_threadpool(svc.jobs.view, job_id)
            except ApiError as err:  # deleted while watched
                yield f"event: gone\ndata: {json.dumps({'detail': err.message})}\n\n"
                return
            text = json.dumps(view)
            if text != last:
                yield f"event: job\ndata: {text}\n\n"
                last, quiet = text, 0.0
            if view["state"] in TERMINAL or await request.is_disconnected():
                return
            if quiet >= HEARTBEAT_S:
                yield ": keep-alive\n\n"
                quiet = 0.0
            await asyncio.sleep(0.5)
            quiet += 0.5

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
