"""Attack one image with PGD-k or MMA, within a scalar eps or PART's CAM-derived eps-map."""

from __future__ import annotations

import time
from typing import Any

import torch

from backend import render
from backend.cam_params import (mask_settings, parse_floats, parse_fraction, parse_methods, prediction,
                                probabilities, resolve_target)
from backend.deps import Services
from backend.errors import bad_request
from backend.explain import eps_map_url, load
from backend.schemas import AttackForm
from part import attacks
from part.cam import compute_cam
from part.masks import eps_map, mask_stats


def attack(svc: Services, form: AttackForm, data: bytes | None) -> dict[str, Any]:
    t0 = time.perf_counter()
    loaded, image = load(svc, form, data)
    methods = [m for m in parse_methods(form.methods)]
    weights = parse_floats(form.weights, "weights")
    if weights is not None and len(weights) != len(methods):
        raise bad_request(f"weights must be {len(methods)} numbers, one per method ({', '.join(methods)})")
    mask = mask_settings(form, loaded.config)
    step_size = parse_fraction(form.step_size, mask.eps / 4, "step_size")
    x = image.x.to(svc.registry.device)
    classes = loaded.classes
    with loaded.lock:
        model = loaded.model
        before = probabilities(model, x)
        pred = int(before.argmax())
        y = torch.tensor([image.label if image.label is not None else pred], device=x.device)
        target = resolve_target(form.target, image.label, pred, len(before))
        cam_method = methods if len(methods) > 1 or weights else methods[0]
        cam = compute_cam(model, x, torch.tensor([target], device=x.device), cam_method, weights=weights)
        emap = eps_map(cam, eps=mask.eps, eps_low=mask.eps_low, recipe=mask.recipe, channels=x.shape[1],
                       **mask.options)
        budget = emap if form.budget == "eps-map" else torch.full_like(emap, mask.eps)
        run = attacks.mma if form.attack == "mma" else attacks.pgd
        x_adv = run(model, x, y, eps=budget, step_size=step_size, steps=form.steps, random_start=form.random_start)
        after = probabilities(model, x_adv)
    delta = (x_adv - x)[0]
    flat = budget[0].float().mean(0)
    return {"run": form.run, "epoch": loaded.epoch, "input": image.describe(classes), "attack": form.attack,
            "budget": form.budget, "steps": form.steps, "step_size": step_size, "eps": mask.eps,
            "eps_low": mask.eps_low, "recipe": mask.recipe, "label": int(y[0]),
            "before": prediction(before, classes), "after": prediction(after, classes),
            "fooled": int(after.argmax()) != int(y[0]),
            "adversarial_png": render.image_url(x_adv[0]),
            "perturbation_png": render.perturbation_url(delta, mask.eps),
            "perturbation": render.values(delta.mean(0), 5),
            "perturbation_linf": round(float(delta.abs().max()), 6),
            "eps_map": render.values(flat, 5), "eps_map_png": eps_map_url(flat, mask.eps),
            "mask_stats": mask_stats(budget, mask.eps), "seconds": round(time.perf_counter() - t0, 4)}
