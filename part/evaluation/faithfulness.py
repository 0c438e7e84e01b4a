"""Whole-test-set numbers of a model's CAMs: how much of each map lies on the object (alignment) and
whether the pixels a map ranks high are the ones the model needs (faithfulness).

- alignment: the energy on the object, sum(cam * object) / sum(cam) (part.explain.alignment; the
  energy-based pointing game of Score-CAM, Wang et al., CVPR-W 2020), averaged over the images, per
  class and overall. Beside it the object's share of the pixels: what a map spread evenly would score,
  so "0.80" reads as "0.80 against 0.45 by chance". Where the dataset has no known object mask the
  record says so and holds no number. It turns "PART-based methods align better with semantic
  information" (Zhang et al., ICML 2024, Section 5) into a number.
- faithfulness: ROAD (Rong et al., "A Consistent and Efficient Evaluation Strategy for Attribution
  Methods", ICML 2022) as pytorch-grad-cam ships it (pytorch_grad_cam.metrics.road): the change of
  the softmax probability of the true class when the most relevant (MoRF) or least relevant (LeRF)
  p % of the pixels are replaced by noisy linear imputation, averaged over p = 10..90; combined =
  (LeRF - MoRF) / 2, higher is more faithful. And CamMultImageConfidenceChange: the probability change
  when the image is multiplied by its map.

The maps are the run's own CAMs, the ones that set eps in training (its CAM methods and weights,
explaining the true label unless its config says cam_target = pred). Both run as attacks of
part.evaluation.evaluate ("alignment", "faithfulness") so they land in eval.json and the reports.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import torch
from torch import nn

from part.evaluation.accuracy import Task, model_device
from part.explain.alignment import energy_on_object, mask_rule, object_mask
from part.explain.cam import compute_cam

ROAD_PERCENTILES = (10, 20, 30, 40, 50, 60, 70, 80, 90)


def cam_settings(config: dict | None) -> dict:
    """The CAM methods, weights, target and layer of a training config (the defaults of training otherwise).

    cam_layer: a dotted module path of the model ("features.2", or "net.features.2" inside the pixel-space
    wrapper), or None for the layer the model's registry record names (the one training uses)."""
    config = config or {}
    return {"cam_methods": list(config.get("cam_methods") or ["gradcam"]),
            "cam_weights": list(config.get("cam_weights") or []),
            "cam_target": config.get("cam_target", "label"), "cam_layer": config.get("cam_layer") or None}


CAM_KEYS = ("cam_methods", "cam_weights", "cam_target", "cam_layer")


def run_cams(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cam: dict) -> torch.Tensor:
    """CAMs [B,H,W] in [0,1] of images x with the settings of `cam_settings` (on the model's device)."""
    device = model_device(model)
    xb, yb = x.to(device), y.to(device)
    return compute_cam(model, xb, yb if cam["cam_target"] == "label" else None, list(cam["cam_methods"]),
                       cam_layer(model, cam.get("cam_layer")), weights=list(cam["cam_weights"]) or None).float()


def cam_layer(model: nn.Module, name: str | None) -> nn.Module | None:
    """The module a cam_layer setting names: a path in the model, or in its bare network (the registry's
    spelling, "features.2"); None keeps the registered layer."""
    if not name:
        return None
    from part.explain.cam import resolve_layer

    try:
        return model.get_submodule(name)
    except AttributeError:
        pass
    if hasattr(model, "net"):
        try:
            return model.get_submodule("net." + name)
        except AttributeError:
            pass
    return resolve_layer(model, name)  # raises, listing the layers


def _mean(values: torch.Tensor) -> float | None:
    values = values[~torch.isnan(values)]
    return round(float(values.mean()), 6) if len(values) else None


def alignment(model: nn.Module, x: torch.Tensor, y: torch.Tensor, dataset: str, cam: dict | None = None, *,
              batch_size: int = 128, task: Task | None = None, classes: Sequence[str] | None = None,
              masks: torch.Tensor | None = None) -> dict:
    """Mean energy of the CAM on the object over images x [N,C,H,W] (pixel space), per class and overall.

    masks: [N,H,W] bool object masks where the dataset gives them (part.data.datasets.object_masks); else the
    dataset record's rule (part.explain.alignment.object_mask) makes them from the images.

    Returns {"energy", "object_fraction", "per_class": {class: {"n", "energy", "object_fraction"}},
    "energy_per_image", "cam_methods", "cam_weights", "cam_target", "object_mask", "n", "seconds"}; where
    the dataset has no known object mask: "energy": None and "note" says why.
    """
    cam = cam_settings(cam)
    base = {**cam, "n": len(x)}
    if masks is None and object_mask(x[:1], dataset) is None:
        if task is not None:
            task.update(len(x))
        return {**base, "energy": None, "seconds": 0.0,
                "note": f"no object mask is known for dataset '{dataset}', so the CAM's energy on the object "
                        "cannot be measured (only datasets whose record gives object_threshold have one)"}
    t0, energies, fractions = time.time(), [], []
    for s in range(0, len(x), batch_size):
        xb, yb = x[s:s + batch_size], y[s:s + batch_size]
        maps = run_cams(model, xb, yb, cam).cpu()
        mask = masks[s:s + batch_size] if masks is not None else object_mask(xb, dataset)
        energies.append(energy_on_object(maps, mask))
        fractions.append(mask.flatten(1).float().mean(1))
        if task is not None:
            task.update(len(xb))
    energy, fraction = torch.cat(energies), torch.cat(fractions)
    per_class = {}
    for k in sorted(set(y.tolist())):
        sel = y == k
        name = classes[k] if classes is not None and k < len(classes) else str(k)
        per_class[name] = {"n": int(sel.sum()), "energy": _mean(energy[sel]), "object_fraction": _mean(fraction[sel])}
    return {**base, "energy": _mean(energy), "object_fraction": _mean(fraction), "per_class": per_class,
            "object_mask": mask_rule(dataset),
            "energy_per_image": [None if v != v else round(float(v), 4) for v in energy.tolist()],
            "seconds": round(time.time() - t0, 3)}


def faithfulness(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cam: dict | None = None, *,
                 percentiles: Sequence[int] = ROAD_PERCENTILES, batch_size: int = 128,
                 task: Task | None = None) -> dict:
    """ROAD (MoRF, LeRF, combined) and the CAM-times-image confidence change of the run's CAMs, on x [N,C,H,W].

    Scores are changes of the softmax probability of the true class (fractions of 1), averaged over
    the images: road_morf (lower = removing the top pixels hurts more), road_lerf (higher = removing the
    bottom pixels hurts less), road_combined = (lerf - morf) / 2 (higher = more faithful),
    cam_mult_change (the change when the image is multiplied by its map).
    """
    from pytorch_grad_cam.metrics.cam_mult_image import CamMultImageConfidenceChange
    from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirstAverage, ROADMostRelevantFirstAverage
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    cam = cam_settings(cam)
    percentiles = [int(p) for p in percentiles]
    if not percentiles or not all(0 < p < 100 for p in percentiles):
        raise ValueError(f"ROAD percentiles must be integers in (0, 100), got {percentiles}")
    device, t0 = model_device(model), time.time()
    morf_all, lerf_all, mult_all = [], [], []
    morf_metric = ROADMostRelevantFirstAverage(percentiles)
    lerf_metric = ROADLeastRelevantFirstAverage(percentiles)
    mult_metric = CamMultImageConfidenceChange()
    was_training = model.training
    model.eval()
    try:
        for s in range(0, len(x), batch_size):
            xb, yb = x[s:s + batch_size].to(device), y[s:s + batch_size]
            maps = run_cams(model, xb, yb, cam).cpu().numpy()
            targets = [ClassifierOutputSoftmaxTarget(int(t)) for t in yb]
            morf_all.append(np.asarray(morf_metric(xb, maps, targets, model), dtype=np.float64).reshape(-1))
            lerf_all.append(np.asarray(lerf_metric(xb, maps, targets, model), dtype=np.float64).reshape(-1))
            mult_all.append(np.asarray(mult_metric(xb, maps[:, None], targets, model), dtype=np.float64).reshape(-1))
            if task is not None:
                task.update(len(xb))
    finally:
        model.train(was_training)
    morf, lerf, mult = (np.concatenate(v) if v else np.zeros(0) for v in (morf_all, lerf_all, mult_all))
    combined = (lerf - morf) / 2
    per_image = [round(float(v), 4) for v in combined]
    return {**cam, "n": len(x), "metric": "ROAD (pytorch_grad_cam.metrics.road), softmax of the true class",
            "percentiles": percentiles, "road_morf": _f(morf), "road_lerf": _f(lerf), "road_combined": _f(combined),
            "cam_mult_change": _f(mult), "road_combined_per_image": per_image, "seconds": round(time.time() - t0, 3)}


def _f(values: np.ndarray) -> float | None:
    return round(float(values.mean()), 6) if len(values) else None


def faithfulness_one(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cam_map: torch.Tensor,
                     percentiles: Sequence[int] = ROAD_PERCENTILES) -> dict:
    """ROAD of one given map [H,W] for one image x [1,C,H,W] and its class y [1] (for Explore)."""
    from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirstAverage, ROADMostRelevantFirstAverage
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    device = model_device(model)
    xb = x.to(device)
    maps = cam_map.detach().float().cpu().numpy()[None]
    targets = [ClassifierOutputSoftmaxTarget(int(y[0]))]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # ROAD's imputation adds noise: the same image gives the same number
        morf = float(np.asarray(ROADMostRelevantFirstAverage(list(percentiles))(xb, maps, targets, model)).reshape(-1)[0])
        lerf = float(np.asarray(ROADLeastRelevantFirstAverage(list(percentiles))(xb, maps, targets, model)).reshape(-1)[0])
    return {"road_morf": round(morf, 6), "road_lerf": round(lerf, 6), "road_combined": round((lerf - morf) / 2, 6)}
