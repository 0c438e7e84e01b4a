"""POST /api/explain, /api/attack, /api/compare and /api/compare/figure: multipart forms, CPU work in the threadpool."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Response

from backend.services import adversarial, compare, explain
from backend.api.deps import Services, ServicesDep, model_slot
from backend.api.schemas import (AttackForm, AttackResponse, CompareFigureForm, CompareForm, CompareResponse,
                             ExplainForm, ExplainResponse, ImageForm)

router = APIRouter(prefix="/api", tags=["images"], dependencies=[Depends(model_slot)])


def upload_bytes(form: ImageForm, svc: Services) -> bytes | None:
    """The uploaded bytes, at most one past the limit (uploads.decode refuses the oversized)."""
    if form.file is None:
        return None
    return form.file.file.read(svc.settings.max_upload_bytes + 1)


# Sync handlers: FastAPI runs them in its threadpool, so CAMs and attacks never block the event loop.
@router.post("/explain", response_model=ExplainResponse,
             summary="CAM heatmaps, eps-maps and mask statistics of one image, per method")
def post_explain(svc: ServicesDep, form: Annotated[ExplainForm, Form()]):
    return explain.explain(svc, form, upload_bytes(form, svc))


@router.post("/attack", response_model=AttackResponse,
             summary="PGD-k or MMA on one image within a scalar eps or PART's eps-map")
def post_attack(svc: ServicesDep, form: Annotated[AttackForm, Form()]):
    return adversarial.attack(svc, form, upload_bytes(form, svc))


@router.post("/compare", response_model=CompareResponse,
             summary="runs x epochs grid of CAM overlays and predictions for one image (Figure 2)")
def post_compare(svc: ServicesDep, form: Annotated[CompareForm, Form()]):
    return compare.compare(svc, form, upload_bytes(form, svc))


BINARY = {"schema": {"type": "string", "format": "binary"}}


@router.post("/compare/figure", response_class=Response,
             summary="the compare grid as a publication-ready Figure 2 (PNG or PDF, matplotlib)",
             responses={200: {"description": "the figure, as an attachment",
                              "content": {"image/png": BINARY, "application/pdf": BINARY}}})
def post_compare_figure(svc: ServicesDep, form: Annotated[CompareFigureForm, Form()]):
    content, media, name = compare.export(svc, form, upload_bytes(form, svc), form.format)
    return Response(content, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})
