"""CAM and eps-map parameters of a request, checked against what part accepts, defaulting to the run's."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from backend.api.errors import bad_request
from backend.api.schemas import CamForm
from part.explain.cam import METHODS
from part.training.config import check_range, parse_number
from part.explain.eps_maps import RECIPES, recipe_options

MAX_METHODS = 10
RECIPE_OPTION_FIELDS = ("threshold", "tau", "quadrant")  # every option of part.explain.eps_maps.RECIPES


def parse_methods(text: str | None) -> list[str]:
    names = list(dict.fromkeys(m.strip().lower() for m in (text or "").split(",") if m.strip()))
    if not names:
        raise bad_request(f"methods is empty; accepted: {', '.join(METHODS)} (comma-separated)")
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise bad_request(f"unknown CAM method {', '.join(unknown)}; accepted: {', '.join(METHODS)}")
    if len(names) > MAX_METHODS:
        raise bad_request(f"{len(names)} methods given; the limit is {MAX_METHODS}")
    return names


def parse_floats(text: str | None, what: str) -> list[float] | None:
    if text is None or not text.strip():
        return None
    try:
        values = [float(parse_number(v)) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise bad_request(f"{what}: {err}") from None
    if not all(math.isfinite(v) for v in values):
        raise bad_request(f"{what} must be finite numbers, got '{text}'")
    return values


def parse_fraction(text: str | None, default: float, what: str) -> float:
    if text is None or not text.strip():
        return float(default)
    try:
        value = float(parse_number(text))
    except ValueError as err:
        raise bad_request(f"{what}: {err}") from None
    if not (math.isfinite(value) and 0 <= value <= 1):
        raise bad_request(f"{what} is a fraction of the pixel range: 0 <= {what} <= 1 (e.g. 8/255), got '{text}'")
    return value


def resolve_target(target: str, label: int | None, pred: int, num_classes: int) -> int:
    key = (target or "pred").strip().lower()
    if key == "pred":
        return pred
    if key == "label":
        if label is None:
            raise bad_request("target 'label' needs a dataset sample or probe image (an upload has no label); "
                              "use pred or a class index")
        return label
    try:
        index = int(key)
    except ValueError:
        raise bad_request(f"target '{target}' is not accepted; accepted: pred, label, 0..{num_classes - 1}") from None
    if not 0 <= index < num_classes:
        raise bad_request(f"target {index} is out of range; accepted: pred, label, 0..{num_classes - 1}")
    return index


@dataclass
class MaskSettings:
    recipe: str
    eps: float
    eps_low: float
    options: dict[str, Any] = field(default_factory=dict)


def mask_settings(form: CamForm, config: dict[str, Any]) -> MaskSettings:
    recipe = form.recipe or config.get("recipe", "paper")
    if recipe not in RECIPES:
        raise bad_request(f"unknown mask recipe '{recipe}'; accepted: {', '.join(RECIPES)}")
    eps = parse_fraction(form.eps, config.get("eps", 0.1), "eps")
    eps_low = parse_fraction(form.eps_low, min(config.get("eps_low", 0.0875), eps), "eps_low")
    if eps_low > eps:
        raise bad_request(f"eps_low ({eps_low:g}) must not exceed eps ({eps:g})")
    accepted = recipe_options(recipe)
    given = {k: getattr(form, k) for k in RECIPE_OPTION_FIELDS if getattr(form, k) is not None}
    for name in ("threshold", "tau"):  # the config's own range table: a form accepts what a run may train with
        if name in given:
            try:
                check_range(name, given[name])
            except ValueError as err:
                raise bad_request(str(err)) from None
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        raise bad_request(f"recipe '{recipe}' has no option {', '.join(unknown)}; "
                          f"accepted: {', '.join(accepted) or 'none'}")
    options = {k: given.get(k, config.get(k, default)) for k, default in accepted.items()}
    return MaskSettings(recipe, eps, eps_low, options)


def probabilities(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.softmax(model(x), 1)[0].float().cpu()


def prediction(probs: torch.Tensor, classes: list[str]) -> dict[str, Any]:
    index = int(probs.argmax())
    return {"class_index": index, "class_name": str(classes[index]) if index < len(classes) else str(index),
            "confidence": round(float(probs[index]), 4), "probabilities": [round(float(p), 4) for p in probs]}
