"""Explain one image: per CAM method the heatmap, its overlay, the eps-map, its statistics, the map's
energy on the object and its ROAD faithfulness (part.evaluation.faithfulness)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from backend.services import inputs, render
from backend.services.cam_params import (MaskSettings, mask_settings, parse_floats, parse_methods, prediction, probabilities,
                                resolve_target)
from backend.api.deps import Services
from backend.api.errors import bad_request
from backend.services.registry import LoadedModel
from backend.api.schemas import CamForm, ExplainForm
from part.explain.alignment import energy_on_object
from part.explain.cam import compute_cam
from part.evaluation.faithfulness import faithfulness_one
from part.explain.eps_maps import eps_map, importance, importance_scale, mask_stats
from part.runs import RunDir


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


@dataclass
class Donor:
    """The shuffled recipe's other image: a probe of the run whose CAM sets this image's eps-map."""
    x: torch.Tensor  # [1,C,H,W] on the model's device
    label: int
    info: dict[str, Any]


def shuffle_donor(svc: Services, form: CamForm, image: inputs.ModelInput, x: torch.Tensor) -> Donor:
    """The shuffled recipe gives each image the map of another image of its batch; one image alone would keep
    its own (= paper). Explore shuffles against the run's probe images: the next probe after this one (probe 0
    for an image that is not a probe)."""
    run: RunDir = svc.registry.run(form.run)
    probes = inputs.probe_inputs(run)
    count = len(probes["y"])
    if count < 2:
        raise bad_request("the shuffled recipe needs a batch: it gives each image the CAM of another image, and "
                          f"run '{form.run}' has {count} probe image(s) to shuffle against; choose another recipe")
    own = form.probe if image.info.get("kind") == "probe" else inputs.probe_position(run, x.cpu())
    k = 0 if own is None else (own + 1) % count
    label = int(probes["y"][k])
    return Donor(probes["x"][k:k + 1].float().to(x.device), label,
                 {"probe": k, "index": int(probes["index"][k]), "label": label})


def map_cams(model: torch.nn.Module, x: torch.Tensor, target: int, donor: Donor | None, method, weights,
             target_mode: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(this image's CAM [1,H,W], the donor's CAM [1,H,W] or None) with one method."""
    cam = compute_cam(model, x, torch.tensor([target], device=x.device), method, weights=weights)
    if donor is None:
        return cam, None
    with torch.no_grad():
        donor_target = donor.label if target_mode.strip().lower() == "label" else int(model(donor.x).argmax(1))
    return cam, compute_cam(model, donor.x, torch.tensor([donor_target], device=x.device), method, weights=weights)


def budget(cam: torch.Tensor, donor_cam: torch.Tensor | None, mask: MaskSettings, channels: int) -> torch.Tensor:
    """The eps-map [1,C,H,W] of the image; the shuffled recipe takes it from the donor's CAM (part.explain.eps_maps)."""
    batch = cam if donor_cam is None else torch.cat([cam, donor_cam])
    return eps_map(batch, eps=mask.eps, eps_low=mask.eps_low, recipe=mask.recipe, channels=channels,
                   **mask.options)[:1]


def explain(svc: Services, form: ExplainForm, data: bytes | None) -> dict[str, Any]:
    t0 = time.perf_counter()
    loaded, image = load(svc, form, data)
    plan = cam_plan(form)
    mask = mask_settings(form, loaded.config)
    x = image.x.to(svc.registry.device)
    channels, classes = x.shape[1], loaded.classes
    donor = shuffle_donor(svc, form, image, x) if mask.recipe == "shuffled" else None
    obj = inputs.object_mask_of(image, loaded.meta["dataset"], svc.datasets)
    results = []
    with loaded.lock:  # CAM hooks and eval_mode touch the shared module
        probs = probabilities(loaded.model, x)
        target = resolve_target(form.target, image.label, int(probs.argmax()), len(probs))
        for name, method, weights in plan:
            cam, donor_cam = map_cams(loaded.model, x, target, donor, method, weights, form.target)
            emap = budget(cam, donor_cam, mask, channels)
            road = faithfulness_one(loaded.model, x, torch.tensor([target]), cam[0])
            energy = None if obj is None else energy_on_object(cam.cpu(), obj[None])[0].item()
            results.append(method_result(name, x[0], cam[0], emap[0], mask) |
                           {"energy_on_object": None if energy is None or energy != energy else round(energy, 4),
                            "road": road})
    out = {"run": form.run, "epoch": loaded.epoch, "input": image.describe(classes),
           "prediction": prediction(probs, classes), "target": target, "recipe": mask.recipe,
           "eps": mask.eps, "eps_low": mask.eps_low, "options": mask.options, "results": results,
           "overlay_scale": importance_scale(mask.recipe, **mask.options),
           "object_fraction": None if obj is None else round(float(obj.float().mean()), 4),
           "seconds": round(time.perf_counter() - t0, 4)}
    if donor is not None:
        out["shuffled_with"] = {**donor.info, "label_name": str(classes[donor.label]) if donor.label < len(classes)
                                else str(donor.label)}
    return out


def method_result(name: str, x: torch.Tensor, cam: torch.Tensor, emap: torch.Tensor,
                  mask: MaskSettings) -> dict[str, Any]:
    """The overlay draws the CAM on the scale the recipe reads it (part.explain.eps_maps.importance), so its
    colours and the mask beside it agree; `heatmap` stays the CAM itself."""
    flat = emap.float().mean(0)
    shown = importance(cam[None], recipe=mask.recipe, **mask.options)[0]
    return {"method": name, "heatmap": render.values(cam), "importance": render.values(shown),
            "overlay_png": render.overlay_url(x, shown), "eps_map": render.values(flat, 5),
            "eps_map_png": eps_map_url(flat, mask.eps), "mask_stats": mask_stats(emap, mask.eps)}


def eps_map_url(flat: torch.Tensor, eps: float) -> str:
    """The budget as grey: black is 0, white is eps."""
    return render.image_url((flat / max(eps, 1e-8)).clamp(0, 1)[None])
