"""One image's arrays in one NPZ file: the model input, every asked CAM, its eps-map and mask, and the image
attacked within the scalar eps (AT's threat model) and within PART's eps-map."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import torch

from backend.services.adversarial import run_attacks
from backend.api.errors import bad_request
from backend.services.explain import budget, cam_plan, map_cams, shuffle_donor
from backend.api.deps import Services
from backend.api.schemas import ExportForm


def source_methods(form: ExportForm, plan: list) -> tuple[str, str]:
    """(plan label, methods field for the attack) of the map that sets the attack's eps-map."""
    names = [name for name, _, _ in plan]
    chosen = (form.source or names[-1]).strip()
    if chosen == "ensemble" and any(n.startswith("ensemble(") for n in names):
        chosen = next(n for n in names if n.startswith("ensemble("))
    if chosen not in names:
        raise bad_request(f"source '{chosen}' is not one of the maps asked for; accepted: {', '.join(names)}, ensemble")
    method = next(m for n, m, _ in plan if n == chosen)
    return chosen, ",".join(method) if isinstance(method, list) else method


def export_npz(svc: Services, form: ExportForm, data: bytes | None) -> tuple[bytes, str]:
    """(NPZ bytes, file name). Arrays are float32 in pixel space [0,1]; `meta` is a JSON string."""
    plan = cam_plan(form)
    if form.weights is not None:
        raise bad_request("the export uses equal ensemble weights; leave weights out")
    chosen, methods = source_methods(form, plan)
    attack_form = form.model_copy(update={"methods": methods, "ensemble": False})
    loaded, image, mask, done = run_attacks(svc, attack_form, data)
    x, channels = done.x, done.x.shape[1]
    donor = shuffle_donor(svc, form, image, x) if mask.recipe == "shuffled" else None
    cams, maps = [], []
    with loaded.lock:
        for _, method, weights in plan:
            cam, donor_cam = map_cams(loaded.model, x, done.target, donor, method, weights, form.target)
            cams.append(cam[0])
            maps.append(budget(cam, donor_cam, mask, channels)[0])
    cam_t, map_t = torch.stack(cams).float().cpu(), torch.stack(maps).float().cpu()
    arrays: dict[str, Any] = {
        "input": x[0].float().cpu().numpy(),
        "methods": np.array([name for name, _, _ in plan]),
        "cams": cam_t.numpy(), "eps_maps": map_t.numpy(), "masks": (map_t >= mask.eps - 1e-7).numpy(),
        "attack_eps_map": done.eps_map[0].float().cpu().numpy(),
        "adversarial_scalar": done.adversarial["scalar"][0].float().cpu().numpy(),
        "adversarial_eps_map": done.adversarial["eps-map"][0].float().cpu().numpy(),
        "probabilities_clean": done.before.numpy(),
        "probabilities_scalar": done.after["scalar"].numpy(),
        "probabilities_eps_map": done.after["eps-map"].numpy(),
    }
    meta = {"run": form.run, "epoch": loaded.epoch, "input": {k: v for k, v in image.info.items()},
            "label": image.label, "attacked_class": done.label, "explained_class": done.target,
            "classes": [str(c) for c in loaded.classes], "recipe": mask.recipe, "options": mask.options,
            "eps": mask.eps, "eps_low": mask.eps_low, "attack": form.attack, "steps": form.steps,
            "step_size": done.step_size, "attack_map_from": chosen, "shuffled_with": done.shuffled_with,
            "masks": "eps_maps >= eps (the pixels with the full budget)"}
    arrays["meta"] = np.array(json.dumps(meta))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue(), f"{form.run}-e{loaded.epoch}-explore.npz"
