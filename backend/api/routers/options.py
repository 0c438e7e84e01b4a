"""GET /api/options: what the forms may offer, generated from part (backend.services.options)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from backend.api.deps import ServicesDep
from backend.services.options import catalogue

router = APIRouter(prefix="/api", tags=["options"])


@router.get("/options", summary="the catalogue: presets with their resolved configs, defenses, CAM methods, "
                                "eps-map recipes, models, datasets, attacks and limits")
def options(svc: ServicesDep) -> dict[str, Any]:
    return catalogue(svc.settings)
