"""GET /api/evaluations (Table 1 and the rest across runs), /api/evaluations/wins (who wins, image by
image) and the report files `part eval` writes into a run's evaluation folders."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from backend.services import evaluations, experiments, wins
from backend.api.deps import ServicesDep
from backend.api.schemas import EvaluationsResponse, ExperimentsResponse, WinsResponse
from part.runs import EvalDir

router = APIRouter(tags=["evaluations"])
RUN_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
RunIds = Annotated[str | None, Query(description="run ids, comma-separated (default: every evaluated run)",
                                     json_schema_extra={"pattern": r"^\s*[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
                                                                   r"(\s*,\s*[A-Za-z0-9][A-Za-z0-9._-]{0,99})*\s*$"})]
ExperimentIds = Annotated[str | None, Query(description="experiment ids (GET /api/experiments), comma-separated: "
                                                      "every evaluated run of each; instead of runs",
                                          json_schema_extra={"pattern": r"^\s*[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
                                                                        r"(\s*,\s*[A-Za-z0-9][A-Za-z0-9._-]{0,99})*\s*$"})]
RunQ = Annotated[str, Query(description="run id, as listed by GET /api/runs", json_schema_extra={"pattern": RUN_PATTERN})]


@router.get("/api/evaluations", response_model=EvaluationsResponse,
            summary="Table 1 per checkpoint and per method, deltas to the paired baseline with McNemar p, "
                    "per-class accuracy, corruptions and robustness vs eps of the chosen runs")
def get_evaluations(svc: ServicesDep, runs: RunIds = None, experiments: ExperimentIds = None):
    chosen = evaluations.parse_ids(experiments, "experiments") if experiments is not None else None
    return evaluations.evaluations(svc.registry, evaluations.parse_run_ids(runs, svc.registry), chosen)


@router.get("/api/experiments", response_model=ExperimentsResponse,
            summary="the experiments among the runs (runs that are comparable), each PART run's baseline")
def get_experiments(svc: ServicesDep):
    return experiments.listing(svc.registry)


@router.get("/api/evaluations/wins", response_model=WinsResponse,
            summary="the test images one model keeps correct under an attack and the other loses, both ways")
def get_wins(svc: ServicesDep, run_a: RunQ, run_b: RunQ,
             attack: Annotated[str | None, Query(max_length=200, description="attack name as stored in the evaluation results "
                                                 "(default: pgd20 when both have it)")] = None,
             epoch_a: Annotated[int | None, Query(ge=0, description="default: the newest evaluated")] = None,
             epoch_b: Annotated[int | None, Query(ge=0, description="default: the newest evaluated")] = None,
             offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
             limit: Annotated[int, Query(ge=1, le=wins.MAX_PAGE)] = 24):
    return wins.wins(svc.registry, run_a, run_b, attack=attack, epoch_a=epoch_a, epoch_b=epoch_b, offset=offset,
                     limit=limit)


@router.get("/api/runs/{run_id}/eval/{name}/{file}", response_class=Response,
            summary="a report (markdown or HTML) of one evaluation folder, as `part eval` wrote it",
            responses={200: {"content": {"text/markdown": {}, "text/html": {}}}})
def get_report_file(svc: ServicesDep, run_id: Annotated[str, Path(json_schema_extra={"pattern": RUN_PATTERN})],
                    name: Annotated[str, Path(json_schema_extra={"pattern": RUN_PATTERN})],
                    file: Annotated[str, Path(json_schema_extra={"enum": list(EvalDir.REPORT_TYPES)})]):
    body, media = evaluations.report_file(svc.registry, run_id, name, file)
    disposition = "inline" if file.endswith(".html") else "attachment"
    return Response(body, media_type=media,
                    headers={"Content-Disposition": f'{disposition}; filename="{run_id}-{name}-{file}"'})
