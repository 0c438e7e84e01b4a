"""Attack one image with PGD-k or MMA, within a scalar eps or PART's CAM-derived eps-map."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from backend.services import render
from backend.services.cam_params import (mask_settings, parse_floats, parse_fraction, parse_methods, prediction,
                                probabilities, resolve_target)
from backend.api.deps import Services
from backend.api.errors import bad_request
from backend.services.explain import budget as map_budget
from backend.services.explain import eps_map_url, load, map_cams, shuffle_donor
from backend.api.schemas import AttackForm
from part import attacks
from part.explain.eps_maps import mask_stats


@dataclass
class Attacked:
    """One image attacked under each asked budget: the tensors an export needs and the numbers a view shows."""
    x: torch.Tensor  # [1,C,H,W]
    label: int
    target: int
    cam: torch.Tensor  # [1,H,W]
    eps_map: torch.Tensor  # [1,C,H,W]
    adversarial: dict[str, torch.Tensor]  # budget -> x_adv [1,C,H,W]
    before: torch.Tensor
    after: dict[str, torch.Tensor]
    step_size: float
    shuffled_with: dict[str, Any] | None = None


def run_attacks(svc: Services, form: AttackForm, data: bytes | None, budgets=("eps-map", "scalar")):
    """(loaded model, model input, mask settings, Attacked) for the form's image, CAM and attack, per budget."""
    loaded, image = load(svc, form, data)
    methods = parse_methods(form.methods)
    weights = parse_floats(form.weights, "weights")
    if weights is not None and len(weights) != len(methods):
        raise bad_request(f"weights must be {len(methods)} numbers, one per method ({', '.join(methods)})")
    mask = mask_settings(form, loaded.config)
    step_size = parse_fraction(form.step_size, mask.eps / 4, "step_size")
    x = image.x.to(svc.registry.device)
    donor = shuffle_donor(svc, form, image, x) if mask.recipe == "shuffled" else None
    with loaded.lock:
        model = loaded.model
        before = probabilities(model, x)
        pred = int(before.argmax())
        y = torch.tensor([image.label if image.label is not None else pred], device=x.device)
        target = resolve_target(form.target, image.label, pred, len(before))
        cam_method = methods if len(methods) > 1 or weights else methods[0]
        cam, donor_cam = map_cams(model, x, target, donor, cam_method, weights, form.target)
        emap = map_budget(cam, donor_cam, mask, x.shape[1])
        run = attacks.mma if form.attack == "mma" else attacks.pgd
        adversarial, after = {}, {}
        for kind in budgets:
            eps = emap if kind == "eps-map" else torch.full_like(emap, mask.eps)
            cuda = [x.device.index or 0] if x.device.type == "cuda" else []
            with torch.random.fork_rng(devices=cuda):  # a seeded start leaves the server's own streams alone
                if form.seed is not None:
                    torch.manual_seed(form.seed)
                    skip_draws(form.start_position * x[0].numel(), x.device)
                adversarial[kind] = run(model, x, y, eps=eps, step_size=step_size, steps=form.steps,
                                        random_start=form.random_start)
            after[kind] = probabilities(model, adversarial[kind])
    return loaded, image, mask, Attacked(x, int(y[0]), target, cam, emap, adversarial, before, after, step_size,
                                         None if donor is None else donor.info)


def skip_draws(count: int, device: torch.device, chunk: int = 1 << 22) -> None:
    """Advance the seeded stream by `count` uniform draws. An evaluation seeds once per attack and draws each
    batch's random start in order from that one stream, so after skipping `position` images' worth of draws
    the next start is the one it drew for the image at `position` (exactly so on the CPU, whose stream is
    sequential whatever the batch size)."""
    while count > 0:
        torch.rand(min(count, chunk), device=device)
        count -= chunk


def attack(svc: Services, form: AttackForm, data: bytes | None) -> dict[str, Any]:
    t0 = time.perf_counter()
    loaded, image, mask, done = run_attacks(svc, form, data, budgets=(form.budget,))
    classes = loaded.classes
    x, x_adv, after = done.x, done.adversarial[form.budget], done.after[form.budget]
    budget = done.eps_map if form.budget == "eps-map" else torch.full_like(done.eps_map, mask.eps)
    delta = (x_adv - x)[0]
    flat = budget[0].float().mean(0)
    out = {"run": form.run, "epoch": loaded.epoch, "input": image.describe(classes), "attack": form.attack,
           "budget": form.budget, "steps": form.steps, "step_size": done.step_size, "eps": mask.eps,
           "eps_low": mask.eps_low, "recipe": mask.recipe, "label": done.label,
           "before": prediction(done.before, classes), "after": prediction(after, classes),
           "fooled": int(after.argmax()) != done.label,
           "adversarial_png": render.image_url(x_adv[0]),
           "perturbation_png": render.perturbation_url(delta, mask.eps),
           "perturbation": render.values(delta.mean(0), 5),
           "perturbation_linf": round(float(delta.abs().max()), 6),
           "eps_map": render.values(flat, 5), "eps_map_png": eps_map_url(flat, mask.eps),
           "mask_stats": mask_stats(budget, mask.eps), "seconds": round(time.perf_counter() - t0, 4)}
    if done.shuffled_with is not None:
        out["shuffled_with"] = done.shuffled_with
    return out
