"""Eps-maps: per-pixel perturbation budgets in [eps_low, eps] derived from class activation maps.

Zhang et al., "Improving Accuracy-robustness Trade-off via Pixel Reweighted Adversarial Training"
(PART), ICML 2024, Section 3.2 and Algorithm 1 ("paper"); the official code's colour-mapped mask
("reference"); the PART++ report's sigmoid masks ("soft", "soft-partpp"); Figure 1's quadrant
allocation ("quadrant"); two controls that keep the budget but break the CAM's placement; and
"oracle", the placement a perfect CAM would make: full eps on the dataset's exact object mask.

Every recipe takes CAMs [B,H,W] in [0,1] and the input's channel count and returns a map
[B,1,H,W] (or [B,3,H,W] for the reference recipe on RGB input) that broadcasts against x. The recipes
of MASK_RECIPES take each image's object mask [B,H,W] instead of its CAM (`eps_map(..., object_mask=)`);
only datasets that give every sample's exact object mask have one (part.data.datasets.mask_dataset_names).
"""

from __future__ import annotations

import functools
import inspect

import torch


def _weights(cam: torch.Tensor) -> torch.Tensor:
    """w = cam / mean(cam) per image, so w > 1 marks pixels above the image's average importance."""
    mean = cam.flatten(1).mean(1).clamp_min(1e-12)
    return cam / mean.view(-1, 1, 1)


def paper(cam, eps, eps_low, channels, *, threshold: float = 1.0):
    """Algorithm 1: full eps where w > threshold, eps_low elsewhere."""
    high = _weights(cam) > threshold
    return torch.where(high, eps, eps_low)[:, None].to(cam.dtype)


@functools.lru_cache(maxsize=None)
def _jet_lut() -> torch.Tensor:
    import matplotlib

    return torch.tensor(matplotlib.colormaps["jet"](torch.linspace(0, 1, 256).numpy())[:, :3], dtype=torch.float32)


def reference(cam, eps, eps_low, channels):
    """The official code's mask: jet(cam^2), z-scored over all RGB values, per channel z > 1.

    The result is per colour channel and not monotone in the CAM. Inputs with other than three
    channels get the mean of the three channel masks.
    """
    lut = _jet_lut().to(cam.device)
    # matplotlib's jet(v) for a float v reads table entry floor(256 v), with v = 1 read as entry 255.
    index = (cam.double().clamp(0, 1) ** 2 * 256).long().clamp(max=255)
    rgb = lut[index].permute(0, 3, 1, 2)  # [B,3,H,W]
    flat = rgb.flatten(1)
    z = (flat - flat.mean(1, keepdim=True)) / flat.std(1, keepdim=True).clamp_min(1e-12)
    emap = torch.where(z > 1, eps, eps_low).view_as(rgb).to(cam.dtype)
    return emap if channels == 3 else emap.mean(1, keepdim=True)


def soft(cam, eps, eps_low, channels, *, tau: float = 10.0):
    """Centred sigmoid: eps_low + (eps - eps_low) * sigmoid(tau * (w - 1)), the whole range."""
    s = torch.sigmoid(tau * (_weights(cam) - 1))
    return (eps_low + (eps - eps_low) * s)[:, None]


def soft_partpp(cam, eps, eps_low, channels, *, tau: float = 10.0):
    """PART++'s uncentred sigmoid; since w >= 0 it never goes below (eps + eps_low) / 2."""
    s = torch.sigmoid(tau * _weights(cam))
    return (s * eps + (1 - s) * eps_low)[:, None]


QUADRANTS = ("ul", "ur", "bl", "br")


def quadrant(cam, eps, eps_low, channels, *, quadrant: str = "br"):
    """Figure 1: one quadrant at eps_low, the other three at eps; the CAM is ignored."""
    if quadrant not in QUADRANTS:
        raise ValueError(f"unknown quadrant '{quadrant}'; accepted: {', '.join(QUADRANTS)}")
    b, h, w = cam.shape
    emap = torch.full((b, 1, h, w), float(eps), dtype=cam.dtype, device=cam.device)
    rows = slice(0, h // 2) if quadrant[0] == "u" else slice(h // 2, h)
    cols = slice(0, w // 2) if quadrant[1] == "l" else slice(w // 2, w)
    emap[:, :, rows, cols] = eps_low
    return emap


def shuffled(cam, eps, eps_low, channels, *, threshold: float = 1.0):
    """Control: each image gets the paper map of the previous image in the batch (a batch of one keeps its own)."""
    return paper(torch.roll(cam, 1, dims=0), eps, eps_low, channels, threshold=threshold)


def uniform_mean(cam, eps, eps_low, channels, *, threshold: float = 1.0):
    """Control: a scalar eps per image equal to the mean of its paper map, placed nowhere."""
    emap = paper(cam, eps, eps_low, channels, threshold=threshold)
    return emap.mean(dim=(2, 3), keepdim=True).expand_as(emap)


def oracle(mask, eps, eps_low, channels):
    """Full eps on the dataset's exact object mask, eps_low elsewhere: placement without a CAM's errors."""
    return torch.where(mask > 0.5, eps, eps_low)[:, None].to(mask.dtype)


RECIPES = {
    "paper": paper,
    "reference": reference,
    "soft": soft,
    "soft-partpp": soft_partpp,
    "quadrant": quadrant,
    "shuffled": shuffled,
    "uniform-mean": uniform_mean,
    "oracle": oracle,
}
# Recipes whose map comes from each sample's exact object mask, not from its CAM.
MASK_RECIPES = ("oracle",)


def check_recipe_dataset(recipe: str, dataset: str) -> None:
    """Refuse a recipe of MASK_RECIPES for a dataset that does not give its samples' exact object masks."""
    from part.data.datasets import mask_dataset_names

    if recipe in MASK_RECIPES and dataset not in mask_dataset_names():
        raise ValueError(f"recipe '{recipe}' puts full eps on each sample's exact object mask, and dataset '{dataset}' "
                         f"gives none; accepted datasets for it: {', '.join(mask_dataset_names())}")


def recipe_options(recipe: str) -> dict[str, object]:
    """The options a recipe accepts, with their defaults."""
    params = inspect.signature(_recipe(recipe)).parameters.values()
    return {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY}


def _recipe(name: str):
    if name not in RECIPES:
        raise ValueError(f"unknown mask recipe '{name}'; accepted: {', '.join(RECIPES)}")
    return RECIPES[name]


def eps_map(
    cam: torch.Tensor | None, *, eps: float, eps_low: float, recipe: str = "paper", channels: int = 1,
    object_mask: torch.Tensor | None = None, **options
) -> torch.Tensor:
    """Per-pixel budgets from CAMs [B,H,W] for inputs with `channels` channels.

    The recipes of MASK_RECIPES (oracle) read `object_mask` [B,H,W] (bool or 0/1), the images' exact object
    masks, instead, and refuse to run without it; `cam` may then be None.
    Values lie in [min(eps, eps_low), max(eps, eps_low)]; the result broadcasts against x.
    """
    fn = _recipe(recipe)
    accepted = recipe_options(recipe)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"recipe '{recipe}' has no option {', '.join(unknown)}; accepted: {', '.join(accepted) or 'none'}")
    if recipe in MASK_RECIPES:
        if object_mask is None:
            from part.data.datasets import mask_dataset_names

            raise ValueError(f"recipe '{recipe}' puts full eps on each image's exact object mask and was given none; "
                             f"only datasets that give their samples' object masks have them "
                             f"({', '.join(mask_dataset_names())}); choose another recipe elsewhere")
        cam = object_mask
    if cam is None or cam.dim() != 3:
        what = "object_mask" if recipe in MASK_RECIPES else "cam"
        raise ValueError(f"{what} must be [B,H,W], got " + ("None" if cam is None else f"shape {tuple(cam.shape)}"))
    return fn(cam.float(), float(eps), float(eps_low), channels, **options)


def importance(cam: torch.Tensor, *, recipe: str = "paper", **options) -> torch.Tensor:
    """CAMs [B,H,W] on the scale the recipe reads them, in [0,1], for drawing: where a map is drawn min-max
    scaled, one dominant pixel (an attention-rollout token) turns the rest blue though the recipe gives many of
    them the full eps. Recipes that read w = cam / mean(cam) get w / (2 * threshold), so the middle of the colour
    scale is where the mask switches to eps (soft's sigmoid is centred at w = 1); the reference recipe reads
    cam**2; the quadrant and oracle recipes ignore the CAM, which is drawn as it is."""
    accepted = recipe_options(recipe)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"recipe '{recipe}' has no option {', '.join(unknown)}; accepted: {', '.join(accepted) or 'none'}")
    cam = cam.float()
    if recipe == "reference":
        return cam.clamp(0, 1) ** 2
    if recipe == "quadrant" or recipe in MASK_RECIPES:  # placed without reading the CAM
        return cam.clamp(0, 1)
    threshold = float(options.get("threshold", 1.0))
    return (_weights(cam) / (2 * max(threshold, 1e-6))).clamp(0, 1)


def importance_scale(recipe: str, **options) -> str:
    """In words, the scale `importance` draws, 0 to 1."""
    if recipe == "reference":
        return "cam², the value the reference recipe colour-maps (min-max normalised CAM, squared)"
    if recipe == "quadrant" or recipe in MASK_RECIPES:
        return f"the min-max normalised CAM (the {recipe} recipe ignores it)"
    threshold = float(options.get("threshold", 1.0))
    middle = ("the sigmoid's centre, half of the extra budget" if recipe.startswith("soft")
              else "where the mask switches to the full eps")
    return f"w = cam / mean cam, 0 to {2 * threshold:g}: the middle (w = {threshold:g}) is {middle}; red is w ≥ {2 * threshold:g}"


def mask_stats(emap: torch.Tensor, eps: float) -> dict[str, float]:
    """Fraction of pixel values at full eps and the mean budget relative to eps."""
    return {
        "full_eps_fraction": float((emap >= eps - 1e-7).float().mean()),
        "mean_eps_ratio": float(emap.float().mean() / eps),
    }
