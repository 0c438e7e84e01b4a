"""What the forms offer: training presets, CAM methods, eps-map recipes and evaluation attacks.

The API has no listing of these yet, so they mirror `part.config`, `part.cam`, `part.masks` and
`part.evaluate`; tests/frontend/test_choices.py fails when the two drift apart.
"""

from __future__ import annotations

from typing import Any

CAM_METHODS = ["gradcam", "gradcam++", "xgradcam", "layercam", "hirescam", "gradcam-elementwise",
               "eigencam", "eigengradcam", "scorecam", "ablationcam"]
RECIPES = {  # recipe -> its options and their defaults
    "paper": {"threshold": 1.0},
    "reference": {},
    "soft": {"tau": 10.0},
    "soft-partpp": {"tau": 10.0},
    "quadrant": {"quadrant": "br"},
    "shuffled": {"threshold": 1.0},
    "uniform-mean": {"threshold": 1.0},
}
RECIPE_HELP = {
    "paper": "eps where cam/mean(cam) > threshold, eps_low elsewhere",
    "reference": "the official code's jet-colour per-channel mask",
    "soft": "eps_low + (eps - eps_low) * sigmoid(tau (w - 1))",
    "soft-partpp": "PART++'s uncentred sigmoid",
    "quadrant": "one quadrant at eps_low, the rest at eps (Figure 1)",
    "shuffled": "control: another image's map",
    "uniform-mean": "control: the same average budget, placed nowhere",
}
DEFENSES = {"at": "AT", "trades": "TRADES", "mart": "MART"}
PART_NAMES = {"at": "PART", "trades": "PART-T", "mart": "PART-M"}
MODELS = ["small-cnn", "resnet18", "preact-resnet18", "wrn-34-10"]
EVAL_ATTACKS = ["clean", "fgsm", "pgd20", "mma", "aa", "corruptions", "checks", "pgd20-map", "mma-map"]

# The form's fields and TrainConfig's defaults for them (the Fashion-MNIST CPU setting).
FORM_DEFAULTS: dict[str, Any] = dict(dataset="fashion-mnist", model="small-cnn", defense="at", part=False,
                                     cam_methods=["gradcam"], recipe="paper", eps=0.1, eps_low=0.0875,
                                     burn_in_epochs=3, mask_every=1, epochs=10, subset=0, seed=0, eval_n=1000)
_PAPER = {
    "cifar10": dict(dataset="cifar10", model="resnet18", eps=8 / 255, eps_low=7 / 255),
    "svhn": dict(dataset="svhn", model="resnet18", eps=8 / 255, eps_low=7 / 255),
    "tiny-imagenet": dict(dataset="tiny-imagenet", model="wrn-34-10", eps=8 / 255, eps_low=7 / 255),
}
_SUFFIXES = {"at": ("at", False), "part": ("at", True), "trades": ("trades", False),
             "part-t": ("trades", True), "mart": ("mart", False), "part-m": ("mart", True)}


def _presets() -> dict[str, dict[str, Any]]:
    out = {}
    for suffix, (defense, part) in _SUFFIXES.items():
        out[f"fmnist-{suffix}"] = {**FORM_DEFAULTS, "defense": defense, "part": part}
        for name, base in _PAPER.items():
            out[f"{name}-{suffix}"] = {**FORM_DEFAULTS, **base, "epochs": 80, "burn_in_epochs": 20,
                                       "defense": defense, "part": part}
    return out


PRESETS = _presets()


def method_label(defense: str | None, part: bool) -> str:
    """AT, PART, TRADES, PART-T, MART or PART-M, as the paper's tables name them."""
    defense = defense or "at"
    return PART_NAMES.get(defense, defense.upper()) if part else DEFENSES.get(defense, defense.upper())


def as_255(value: float) -> str:
    """A budget in /255 units: 0.0314 -> '8/255', 0.1 -> '25.5/255'."""
    steps = value * 255
    return f"{round(steps)}/255" if abs(steps - round(steps)) < 1e-3 else f"{steps:.1f}/255"


def eps_text(value: float) -> str:
    """A budget as a form shows it: '8/255' when it is a whole /255 step, else the decimal ('0.1')."""
    steps = value * 255
    return f"{round(steps)}/255" if abs(steps - round(steps)) < 1e-3 and round(steps) > 0 else f"{value:g}"
