"""A per-pixel threat model for evaluation: each test image's own eps-map, from a chosen model's CAM.

Zhang et al., ICML 2024 (PART) train against eps-maps (Section 3.2, Algorithm 1) but evaluate at a
scalar eps. The attacks `pgd<K>-map` and `mma<K>-map` ask how robust a model is when the attacker's
budget follows a CAM: full eps where the map model finds a pixel important, eps_low elsewhere (or any
other recipe of part.explain.eps_maps). The maps come from a checkpoint (its CAM methods and target, the recipe,
eps and eps_low of its config unless told otherwise) and are computed once per evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from part.evaluation.accuracy import Attack, Task, model_device, predict
from part.explain.cam import compute_cam
from part.explain.eps_maps import MASK_RECIPES, eps_map, mask_stats, recipe_options


def map_budgets(config: dict, eps: float | None = None, eps_low: float | None = None) -> tuple[float, float]:
    """(eps, eps_low) of the maps: the given ones, else the map run's training config's; refused unless
    0 <= eps_low <= eps <= 1 and eps > 0."""
    eps = float(config.get("eps", 0.0) if eps is None else eps)
    eps_low = float(config.get("eps_low", eps) if eps_low is None else eps_low)
    if not 0 < eps <= 1 or not 0 <= eps_low <= eps:
        raise ValueError(f"the map budgets must satisfy 0 <= eps_low <= eps <= 1 and eps > 0, got eps = {eps:g}, "
                         f"eps_low = {eps_low:g}")
    return eps, eps_low


def check_map_settings(per_pixel: bool, given: dict, evaluated: dict, map_config: dict | None) -> None:
    """What the -map attacks' settings must satisfy before any model loads, so a job is refused when it is
    submitted as `part eval` refuses it: settings only where a -map attack reads them, maps of the evaluated
    images' dataset and size, and budgets with eps_low <= eps. `given`: the map_* settings that were set;
    `evaluated` and `map_config`: the training configs of the evaluated run and the map run."""
    names = [k for k, v in given.items() if v is not None]
    if not per_pixel:
        if names:
            raise ValueError(f"{', '.join(names)} set the eps-maps of the -map attacks (e.g. pgd20-map, mma-map), "
                             "and none was asked for")
        return
    if map_config is None:
        return
    for key, default in (("dataset", None), ("image_size", 0)):
        if map_config.get(key, default) != evaluated.get(key, default):
            raise ValueError(f"the map run was trained on {key} {map_config.get(key, default)}, the evaluated model on "
                             f"{evaluated.get(key, default)}; the maps must fit the evaluated images")
    map_budgets(map_config, given.get("map_eps"), given.get("map_eps_low"))


@dataclass
class MapSource:
    """Where the eps-maps come from: a model and how its CAMs become budgets."""

    model: nn.Module
    eps: float
    eps_low: float
    recipe: str = "paper"
    options: dict = field(default_factory=dict)  # the recipe's options (threshold, tau, quadrant)
    cam_methods: tuple[str, ...] = ("gradcam",)
    cam_weights: tuple[float, ...] = ()
    cam_target: str = "label"  # label: the CAM of the true class; pred: of the predicted one
    describe: dict = field(default_factory=dict)  # run, epoch, checkpoint: for the record
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_checkpoint(cls, model: nn.Module, config: dict, *, recipe: str | None = None, eps: float | None = None,
                        eps_low: float | None = None, describe: dict | None = None) -> "MapSource":
        """The map model's own training config supplies what is not given."""
        recipe = recipe or config.get("recipe", "paper")
        options = {k: config[k] for k in recipe_options(recipe) if k in config}
        eps, eps_low = map_budgets(config, eps, eps_low)
        return cls(model, eps, eps_low, recipe, options, tuple(config.get("cam_methods", ("gradcam",))),
                   tuple(config.get("cam_weights", ())), config.get("cam_target", "label"), dict(describe or {}))

    def maps(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256,
             object_mask: torch.Tensor | None = None) -> torch.Tensor:
        """eps-maps [N,1|C,H,W] on the CPU for images x [N,C,H,W] (computed once for the same x).

        The oracle recipe (part.explain.eps_maps.MASK_RECIPES) reads the images' object masks [N,H,W] instead of
        CAMs, and refuses to run without them."""
        key = (x.data_ptr(), tuple(x.shape))
        if key not in self._cache:
            device, out = model_device(self.model), []
            for s in range(0, len(x), batch_size):
                xb, yb = x[s:s + batch_size].to(device), y[s:s + batch_size].to(device)
                if self.recipe in MASK_RECIPES:
                    cams, mask = None, None if object_mask is None else object_mask[s:s + batch_size].to(device)
                else:
                    cams = compute_cam(self.model, xb, yb if self.cam_target == "label" else None,
                                       list(self.cam_methods), weights=list(self.cam_weights) or None).float()
                    mask = None
                out.append(eps_map(cams, eps=self.eps, eps_low=self.eps_low, recipe=self.recipe, channels=x.shape[1],
                                   object_mask=mask, **self.options).cpu())
            self._cache = {key: torch.cat(out)}
        return self._cache[key]

    SETTINGS = ("map_checkpoint_sha256", "recipe", "options", "eps", "eps_low", "cam_methods", "cam_target")

    def same(self, record: dict) -> bool:
        """Whether a stored result's map record was made with these maps."""
        mine = self.record(None)
        return all(record.get(k) == mine.get(k) for k in self.SETTINGS)

    def record(self, emap: torch.Tensor | None) -> dict:
        """The map's settings and budget: mean budget (fraction and /255), its ratio to eps, full-eps fraction."""
        stats = mask_stats(emap, self.eps) if emap is not None else {"mean_eps_ratio": float("nan")}
        return {**self.describe, "recipe": self.recipe, "options": self.options, "eps": self.eps,
                "eps_low": self.eps_low, "cam_methods": list(self.cam_methods), "cam_target": self.cam_target,
                "mean_budget": stats["mean_eps_ratio"] * self.eps, "mean_budget_255": stats["mean_eps_ratio"] * self.eps * 255,
                **stats}


def correct_under_maps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, emap: torch.Tensor,
                       attack: Attack, *, batch_size: int = 128, task: Task | None = None) -> torch.Tensor:
    """Bool [N]: whether `model` classifies attack(model, x, y, eps=emap) correctly, batch by batch."""
    device, out = model_device(model), []
    for s in range(0, len(x), batch_size):
        xb, yb, eb = (t[s:s + batch_size].to(device) for t in (x, y, emap))
        out.append((predict(model, attack(model, xb, yb, eb)) == yb).cpu())
        if task is not None:
            task.update(len(xb))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)
