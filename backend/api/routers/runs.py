"""GET /api/runs, /api/runs/{run_id} and the run's probe images."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from backend.services import render
from backend.api.deps import Services, ServicesDep
from backend.api.errors import not_found
from backend.services.inputs import probe_inputs
from backend.api.schemas import RunDetail, RunSummary, Sample

router = APIRouter(prefix="/api/runs", tags=["runs"])
RunId = Annotated[str, Path(description="run id, as listed by GET /api/runs",
                            json_schema_extra={"pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"})]


@router.get("", response_model=list[RunSummary], summary="every run folder under the checkpoint root")
def list_runs(svc: ServicesDep):
    return svc.registry.runs()


@router.get("/{run_id}", response_model=RunDetail, summary="config, per-epoch metrics, evaluation reports")
def get_run(svc: ServicesDep, run_id: RunId):
    return svc.registry.detail(run_id)


def _probes(svc: Services, run_id: RunId) -> list[tuple]:
    """(image [C,H,W], sample fields) for each of the run's probe images."""
    run = svc.registry.run(run_id)
    probes, dataset = probe_inputs(run), run.config().get("dataset")
    classes = list(probes.get("classes") or [])
    out = []
    for k, label in enumerate(int(v) for v in probes["y"]):
        name = str(classes[label]) if label < len(classes) else str(label)
        out.append((probes["x"][k].float(), {"dataset": dataset, "split": "test", "index": int(probes["index"][k]),
                                             "label": label, "label_name": name}))
    return out


@router.get("/{run_id}/probes", response_model=list[Sample], summary="the run's fixed probe images")
def list_probes(svc: ServicesDep, run_id: RunId):
    return [{**info, "image_png": render.image_url(x)} for x, info in _probes(svc, run_id)]


@router.get("/{run_id}/probes/{k}/image", response_class=Response, summary="a probe image as PNG (model size)",
            responses={200: {"content": {"image/png": {}}}})
def probe_image(svc: ServicesDep, run_id: RunId, k: int):
    probes = _probes(svc, run_id)
    if not 0 <= k < len(probes):
        raise not_found(f"run '{run_id}' has {len(probes)} probe images; k must be 0..{len(probes) - 1}, got {k}")
    return Response(render.png_bytes(render.image_array(probes[k][0])), media_type="image/png")
