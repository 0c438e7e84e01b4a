"""GET /api/datasets and dataset samples, to explain instead of an upload."""

from __future__ import annotations

from typing import Literal

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from backend.services import render
from backend.api.deps import Services, ServicesDep
from backend.api.errors import not_found
from backend.api.schemas import DatasetInfo, Sample
from part.data.datasets import DATASETS

router = APIRouter(prefix="/api/datasets", tags=["datasets"])
Split = Literal["train", "test"]
Name = Annotated[str, Path(description="a dataset of GET /api/datasets", json_schema_extra={"enum": list(DATASETS)})]


def _check(name: Name) -> str:
    if name not in DATASETS:
        raise not_found(f"unknown dataset '{name}'; accepted: {', '.join(DATASETS)}")
    return name


@router.get("", response_model=list[DatasetInfo], summary="the datasets and whether this server has their files")
def list_datasets(svc: ServicesDep):
    return [svc.datasets.describe(name) for name in DATASETS]


@router.get("/{name}/samples", response_model=list[Sample], summary="a page of samples")
def list_samples(svc: ServicesDep, name: Name, split: Split = "test", offset: int = Query(0, ge=0), limit: int = Query(20, ge=1, le=100)):
    ds = svc.datasets.get(_check(name), split)
    return [_sample(svc, name, split, i) for i in range(offset, min(offset + limit, len(ds)))]


@router.get("/{name}/samples/{index}", response_model=Sample, summary="one sample with its label")
def get_sample(svc: ServicesDep, name: Name, index: int, split: Split = "test"):
    return _sample(svc, _check(name), split, index)


@router.get("/{name}/samples/{index}/image", response_class=Response, summary="one sample as PNG (native size)",
            responses={200: {"content": {"image/png": {}}}})
def sample_image(svc: ServicesDep, name: Name, index: int, split: Split = "test"):
    x, _, _ = svc.datasets.sample(_check(name), split, index)
    return Response(render.png_bytes(render.image_array(x)), media_type="image/png")


def _sample(svc: Services, name: Name, split: str, index: int) -> dict:
    x, label, classes = svc.datasets.sample(name, split, index)
    return {"dataset": name, "split": split, "index": index, "label": label,
            "label_name": str(classes[label]) if label < len(classes) else str(label), "image_png": render.image_url(x)}
