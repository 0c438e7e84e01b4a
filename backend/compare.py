"""The grid runs x epochs of CAM overlays and predictions for one image: the paper's Figure 2.

When the image is one of a run's probe images (asked for as a probe, or a dataset sample or upload
equal to one), the cell is read from the run's stored per-epoch probes, provided the requested
method is the run's own; otherwise it is computed from the epoch's checkpoint. The CAM explains the
true label when it is known (as training does) and the predicted class otherwise.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from backend import inputs, render
from backend.cam_params import parse_methods, prediction, probabilities
from backend.deps import Services
from backend.errors import ApiError, bad_request
from backend.registry import check_run_id
from backend.schemas import CompareForm
from part.cam import compute_cam
from part.runs import RunFolderError

MAX_RUNS, MAX_CELLS = 8, 200


def parse_runs(text: str) -> list[str]:
    runs = list(dict.fromkeys(r.strip() for r in text.split(",") if r.strip()))
    if not runs:
        raise bad_request("runs is empty; give run ids, comma-separated (see GET /api/runs)")
    if len(runs) > MAX_RUNS:
        raise bad_request(f"{len(runs)} runs given; the limit is {MAX_RUNS}")
    return [check_run_id(r) for r in runs]


def parse_epochs(text: str | None) -> list[int] | None:
    if text is None or text.strip().lower() in ("", "all"):
        return None
    try:
        epochs = sorted({int(e) for e in text.split(",") if e.strip()})
    except ValueError:
        raise bad_request(f"epochs '{text}' is not accepted; accepted: all, or whole numbers, comma-separated") from None
    if not epochs or epochs[0] < 0:
        raise bad_request(f"epochs must be whole numbers >= 0, got '{text}'")
    return epochs


def compare(svc: Services, form: CompareForm, data: bytes | None) -> dict[str, Any]:
    t0 = time.perf_counter()
    runs = parse_runs(form.runs)
    wanted = parse_epochs(form.epochs)
    method = parse_methods(form.method)[0] if form.method is not None else None
    first = svc.registry.readable_model(runs[0])  # its meta says what input the grid takes
    image = inputs.resolve(form, data, run=svc.registry.run(runs[0]), meta=first.meta,
                           datasets=svc.datasets, settings=svc.settings)
    grid = [(run_id, e) for run_id in runs for e in (wanted or svc.registry.run(run_id).epochs())]
    if len(grid) > MAX_CELLS:
        raise bad_request(f"the grid has {len(grid)} cells; the limit is {MAX_CELLS} (fewer runs or epochs)")
    positions = {r: inputs.probe_position(svc.registry.run(r), image.x) for r in runs}
    cells = [_cell(svc, run_id, epoch, image, method, positions[run_id], first.classes) for run_id, epoch in grid]
    epochs = sorted({c["epoch"] for c in cells})
    return {"input": image.describe(first.classes), "runs": runs, "epochs": epochs,
            "target": "label" if image.label is not None else "pred", "cells": cells,
            "seconds": round(time.perf_counter() - t0, 4)}


def _cell(svc: Services, run_id: str, epoch: int, image: inputs.ModelInput, method: str | None,
          position: int | None, classes: list[str]) -> dict[str, Any]:
    base = {"run": run_id, "epoch": epoch}
    run = svc.registry.run(run_id)
    config = run.config()
    own = list(config.get("cam_methods") or ["gradcam"])
    methods = own if method is None else [method]
    if epoch not in run.epochs():
        return {**base, "available": False, "source": "missing", "methods": methods,
                "message": f"run '{run_id}' has no checkpoint for epoch {epoch}"}
    if position is not None and methods == own and run.probes_path(epoch).exists():
        try:
            inputs_ = run.load_probe_inputs()
            probes = run.load_probes(epoch, count=len(inputs_["y"]))
        except RunFolderError as err:  # computed from the checkpoint instead, below
            probes = None
            base["message"] = f"stored probes unreadable ({err}); computed from the checkpoint"
        if probes is not None:
            x, cam = inputs_["x"][position].float(), probes["cam"][position].float()
            return {**base, "available": True, "source": "stored", "methods": methods,
                    "overlay_png": render.overlay_url(x, cam), "heatmap": render.values(cam),
                    "prediction": prediction(probes["probs"][position].float(), classes)}
    try:
        loaded = svc.registry.model(run_id, epoch)
    except ApiError as err:
        return {**base, "available": False, "source": "missing", "methods": methods, "message": err.message}
    if (loaded.meta["in_channels"], loaded.meta["image_size"]) != (image.x.shape[1], image.x.shape[-1]):
        return {**base, "available": False, "source": "missing", "methods": methods,
                "message": f"run '{run_id}' takes {loaded.meta['in_channels']}x{loaded.meta['image_size']}px images; "
                           f"the image is {image.x.shape[1]}x{image.x.shape[-1]}px"}
    x = image.x.to(svc.registry.device)
    weights = (config.get("cam_weights") or None) if method is None else None
    with loaded.lock:
        probs = probabilities(loaded.model, x)
        target = image.label if image.label is not None else int(probs.argmax())
        arg = methods if len(methods) > 1 else methods[0]
        cam = compute_cam(loaded.model, x, torch.tensor([target], device=x.device), arg, weights=weights)[0]
    return {**base, "available": True, "source": "computed", "methods": methods,
            "overlay_png": render.overlay_url(x[0], cam), "heatmap": render.values(cam),
            "prediction": prediction(probs, loaded.classes)}
