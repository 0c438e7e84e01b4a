"""The image of an explain/attack/compare request, as the model's input: upload, dataset sample or probe."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from backend.services import render, uploads
from backend.services.datasets import DatasetCache
from backend.api.errors import bad_request, conflict, not_found
from backend.api.schemas import ImageForm
from backend.settings import Settings
from part.explain.alignment import object_mask
from part.data.datasets import DATASETS
from part.explain.images import conversion_notes, fit_to_style, to_tensor
from part.runs import RunDir, RunFolderError

SOURCES = "an uploaded `file`, a dataset sample `index` (with `dataset`, `split`), or a `probe` of the run"


@dataclass
class ModelInput:
    x: torch.Tensor  # [1,C,S,S] in [0,1]
    label: int | None
    info: dict[str, Any] = field(default_factory=dict)

    def describe(self, classes: list[str]) -> dict[str, Any]:
        name = classes[self.label] if self.label is not None and self.label < len(classes) else None
        return {**self.info, "size": self.x.shape[-1], "channels": self.x.shape[1],
                "image_png": render.image_url(self.x[0]), "label": self.label, "label_name": name}


def _fit(x: torch.Tensor, channels: int, size: int) -> torch.Tensor:
    """A [C,H,W] image brought to the model's channels and size (through PIL, as uploads are)."""
    if x.shape[0] == channels and x.shape[-1] == size and x.shape[-2] == size:
        return x[None].clone()
    return to_tensor(Image.fromarray(render.image_array(x)), channels, size)


def resolve(form: ImageForm, data: bytes | None, *, run: RunDir, meta: dict, datasets: DatasetCache,
            settings: Settings) -> ModelInput:
    given = [name for name, present in (("file", data is not None), ("index", form.index is not None),
                                         ("probe", form.probe is not None)) if present]
    if len(given) != 1:
        what = "none" if not given else " and ".join(given)
        raise bad_request(f"give exactly one image source; got {what}; accepted: {SOURCES}")
    if form.dataset is not None and form.index is None:
        raise bad_request("`dataset` names the dataset of a sample; give `index` with it")
    channels, size = meta["in_channels"], meta["image_size"]
    if data is not None:
        image = uploads.decode(data, max_bytes=settings.max_upload_bytes, max_pixels=settings.max_upload_pixels)
        return upload_input(image, meta, fit=bool(getattr(form, "fit", False)))
    if form.index is not None:
        name = form.dataset or meta["dataset"]
        x, label, classes = datasets.sample(name, form.split, form.index)
        if name != meta["dataset"]:
            label = None  # another dataset's label means nothing to this model
        info = {"kind": "dataset", "dataset": name, "split": form.split, "index": form.index}
        return ModelInput(_fit(x, channels, size), label, info)
    probes = probe_inputs(run)
    count = len(probes["y"])
    if form.probe >= count:
        raise not_found(f"run '{run.path.name}' has {count} probe images; probe must be 0..{count - 1}, got {form.probe}")
    k = form.probe
    info = {"kind": "probe", "dataset": meta["dataset"], "split": "test", "index": int(probes["index"][k])}
    return ModelInput(_fit(probes["x"][k].float(), channels, size), int(probes["y"][k]), info)


def upload_input(image: Image.Image, meta: dict, *, fit: bool = False) -> ModelInput:
    """An upload as the model sees it, with what was done to it: `notes` (shrunk, squashed, made grey) for a
    plain conversion, `fit_steps` when fitted to the dataset's style (part.explain.images.fit_to_style)."""
    channels, size = meta["in_channels"], meta["image_size"]
    info: dict[str, Any] = {"kind": "upload", "original": {"width": image.width, "height": image.height,
                                                          "mode": image.mode}, "fit": fit}
    if fit:
        x, info["fit_steps"] = fit_to_style(image, meta["dataset"], channels, size)
        info["notes"] = [n for n in conversion_notes(image, channels, size) if "squashed" not in n]
    else:
        x, info["notes"] = to_tensor(image, channels, size), conversion_notes(image, channels, size)
    return ModelInput(x, None, info)


def probe_inputs(run: RunDir) -> dict:
    try:
        return run.load_probe_inputs()
    except FileNotFoundError:
        raise not_found(f"run '{run.path.name}' has no probe images") from None
    except RunFolderError as err:
        raise conflict(f"the probe images of run '{run.path.name}' cannot be read: {err}") from None


def probe_position(run: RunDir, x: torch.Tensor) -> int | None:
    """Which of the run's probe images x [1,C,S,S] is (to within rounding), or None."""
    try:
        probes = run.load_probe_inputs()["x"].float()
    except (FileNotFoundError, RunFolderError):
        return None
    if probes.shape[1:] != x.shape[1:]:
        return None
    close = ((probes - x).abs().flatten(1).amax(1) <= 0.5 / 255).nonzero()
    return int(close[0]) if len(close) else None


def object_mask_of(image: ModelInput, dataset: str, datasets: DatasetCache) -> torch.Tensor | None:
    """[H,W] bool: the object's pixels of the image a model of `dataset` sees, or None where unknown.

    Datasets that give their masks (fashion-mnist-clutter) know them only for their own samples (a
    probe or an indexed sample of that dataset, at the size it was made); an upload has none. Others
    make it from the image by their record's rule (part.explain.alignment.object_mask).
    """
    info = DATASETS.get(dataset)
    if info is None or not info.masks_in_data:
        found = object_mask(image.x.cpu(), dataset)
        return None if found is None else found[0]
    meta = image.info
    if meta.get("kind") not in ("probe", "dataset") or meta.get("dataset") != dataset:
        return None
    mask = datasets.get(dataset, meta.get("split", "test")).object_masks(torch.tensor([int(meta["index"])]))[0]
    return mask if mask.shape == image.x.shape[-2:] else None
