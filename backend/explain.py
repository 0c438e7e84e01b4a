"""Explain one image: per CAM method the heatmap, its overlay, the eps-map and its statistics."""

from __future__ import annotations

import time
from typing import Any

import torch

from backend import inputs, render
from backend.cam_params import (mask_settings, parse_floats, parse_methods, prediction, probabilities,
                                resolve_target)
from backend.deps import Services
from backend.errors import bad_request
from backend.registry import LoadedModel
from backend.schemas import CamForm, ExplainForm
from part.cam import compute_cam
from part.masks import eps_map, mask_stats


def load(svc: Services, form: CamForm, data: bytes | None) -> tuple[LoadedModel, inputs.ModelInput]:
    loaded = svc.registry.model(form.run, form.epoch)
    run = svc.registry.run(form.run)
    image = inputs.resolve(form, data, run=run, meta=loaded.meta, datasets=svc.datasets, settings=svc.settings)
    return loaded, image


def cam_plan(form: CamForm) -> list[tuple[str, str | list[str], list[float] | None]]:
    """(label, compute_cam method argument, weights) for every map the request asks for."""
    methods = parse_methods(form.methods)
    weights = parse_floats(form.weights, "weights")
    plan: list[tuple[str, str | list[str], list[float] | None]] = [(m, m, None) for m in methods]
    if weights is not None and not form.ensemble:
        raise bad_request("weights are for the ensemble; set ensemble=true with them")
    if form.ensemble:
        members = [m for m in methods if m != "ensemble"]
        if len(members) < 2:
            raise bad_request("ensemble=true needs at least two methods to combine (e.g. methods=gradcam,layercam)")
        if weights is not None and (len(weights) != len(members) or min(weights) < 0 or sum(weights) <= 0):
            raise bad_request(f"weights must be {len(members)} non-negative numbers with a positive sum, one per "
                              f"method ({', '.join(members)}); got {form.weights}")
        plan.append(("ensemble(" + "+".join(members) + ")", members, weights or [1.0] * len(members)))
    return plan


def explain(svc: Services, form: ExplainForm, data: bytes | None) -> dict[str, Any]:
    t0 = time.perf_counter()
    loaded, image = load(svc, form, data)
    plan = cam_plan(form)
    mask = mask_settings(form, loaded.config)
    x = image.x.to(svc.registry.device)
    channels, classes = x.shape[1], loaded.classes
    results = []
    with loaded.lock:  # CAM hooks and eval_mode touch the shared module
        probs = probabilities(loaded.model, x)
        target = resolve_target(form.target, image.label, int(probs.argmax()), len(probs))
        targets = torch.tensor([target], device=x.device)
        cams = [compute_cam(loaded.model, x, targets, method, weights=weights) for _, method, weights in plan]
    for (name, _, _), cam in zip(plan, cams):
        emap = eps_map(cam, eps=mask.eps, eps_low=mask.eps_low, recipe=mask.recipe, channels=channels, **mask.options)
        results.append(method_result(name, x[0], cam[0], emap[0], mask.eps))
    return {"run": form.run, "epoch": loaded.epoch, "input": image.describe(classes),
            "prediction": prediction(probs, classes), "target": target, "recipe": mask.recipe,
            "eps": mask.eps, "eps_low": mask.eps_low, "options": mask.options, "results": results,
            "seconds": round(time.perf_counter() - t0, 4)}


def method_result(name: str, x: torch.Tensor, cam: torch.Tensor, emap: torch.Tensor, eps: float) -> dict[str, Any]:
    flat = emap.float().mean(0)
    return {"method": name, "heatmap": render.values(cam), "overlay_png": render.overlay_url(x, cam),
            "eps_map": render.values(flat, 5), "eps_map_png": eps_map_url(flat, eps),
            "mask_stats": mask_stats(emap, eps)}


def eps_map_url(flat: torch.Tensor, eps: float) -> str:
    """The budget as grey: black is 0, white is eps."""
    return render.image_url((flat / max(eps, 1e-8)).clamp(0, 1)[None])
