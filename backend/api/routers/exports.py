"""POST /api/export/npz: one image's CAMs, eps-maps, masks and both adversarial examples as an NPZ file."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Response

from backend.services import npz_export
from backend.api.deps import ServicesDep, model_slot
from backend.api.routers.images import upload_bytes
from backend.api.schemas import ExportForm

router = APIRouter(prefix="/api/export", tags=["images"], dependencies=[Depends(model_slot)])


@router.post("/npz", response_class=Response,
             summary="the model input, CAMs, eps-maps, masks and the scalar-eps and eps-map adversarial examples",
             responses={200: {"description": "an NPZ file (numpy.load), as an attachment",
                              "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                   "format": "binary"}}}}})
def post_npz(svc: ServicesDep, form: Annotated[ExportForm, Form()]):
    content, name = npz_export.export_npz(svc, form, upload_bytes(form, svc))
    return Response(content, media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
