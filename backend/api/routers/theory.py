"""GET /api/theory: Section 3.3's two-pixel linear model, computed by part.theory (pure Python, instant)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from part.theory import LIMITS, MAX_GRID, json_ready, two_pixel

router = APIRouter(prefix="/api", tags=["theory"])


def _param(name: str, default: float) -> Any:
    low, high = LIMITS[name]
    return Query(default, ge=low, le=high, allow_inf_nan=False, description=f"in [{low:g}, {high:g}]")


@router.get("/theory", summary="the optimal perturbation, loss under attack and budget trade-off of Section 3.3",
            description="Numbers are JSON numbers, except where the true value is infinite (case (iii)'s free "
                        "coordinate when its weight is tiny, and that point's loss): there the text \"inf\" or "
                        "\"-inf\" (\"nan\" where undefined), never null.")
def theory(x1: float = _param("x1", 0.5), x2: float = _param("x2", 0.5), w1: float = _param("w1", 2.0),
           w2: float = _param("w2", 0.5), b: float = _param("b", 0.0), y: float = _param("y", 1.0),
           eps1: float = _param("eps1", 0.1), eps2: float = _param("eps2", 0.1),
           grid: int = Query(41, ge=2, le=MAX_GRID, description="landscape points per axis")) -> dict[str, Any]:
    return json_ready(two_pixel(x1=x1, x2=x2, w1=w1, w2=w2, b=b, y=y, eps1=eps1, eps2=eps2, grid=grid))
