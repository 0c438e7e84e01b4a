"""One typed training config: presets for the paper's settings and for this CPU, key=value overrides.

The resolved config is saved with every run and every checkpoint, so a run folder alone says how
it was made.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from fractions import Fraction
from typing import Any

CHOICES = {
    "defense": ("at", "trades", "mart"),
    "attack": ("pgd", "mma"),
    "cam_target": ("label", "pred"),
    "optimizer": ("sgd", "adam"),
    "augment": ("none", "crop-flip"),
    "device": ("auto", "cpu", "cuda"),
    "amp": ("off", "bf16", "fp16"),
}


@dataclass
class TrainConfig:
    # data and model
    dataset: str = "fashion-mnist"
    data_dir: str = ""
    subset: int = 0  # 0 = the whole training set
    image_size: int = 0  # 0 = the dataset's native size
    augment: str = "none"
    model: str = "small-cnn"
    # defense and its inner attack
    defense: str = "at"
    beta: float = 6.0  # TRADES / MART trade-off
    attack: str = "pgd"
    eps: float = 0.1
    step_size: float = 0.025
    attack_steps: int = 10
    # pixel reweighting (PART)
    part: bool = False
    eps_low: float = 0.0875
    burn_in_epochs: int = 3
    mask_every: int = 1  # s: refresh every s epochs; 0 = compute per batch
    cam_methods: tuple[str, ...] = ("gradcam",)
    cam_weights: tuple[float, ...] = ()  # ensemble weights; empty = equal
    cam_target: str = "label"
    recipe: str = "paper"
    threshold: float = 1.0
    tau: float = 10.0
    quadrant: str = "br"
    # per-epoch schedules (part/schedules.py): "" or constant = the value above; linear:START:END:FROM:TO,
    # cosine:START:END:FROM:TO, step:START:EPOCH=VALUE[:...]
    eps_schedule: str = ""
    eps_low_schedule: str = ""
    tau_schedule: str = ""
    threshold_schedule: str = ""
    # optimisation
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_milestones: tuple[int, ...] = (8,)  # epochs (from the start) after which lr *= lr_gamma
    lr_gamma: float = 0.1
    seed: int = 0
    # per-epoch evaluation and probes
    eval_n: int = 1000
    eval_steps: int = 10
    probe_count: int = 10
    device: str = "auto"
    # scale-out (part/distributed.py, part/precision.py)
    nproc: int = 1  # training processes (DDP under torchrun); the saved config records the world it ran in
    sync_bn: bool = True  # with nproc > 1: BatchNorm statistics over the global batch, as in one process
    amp: str = "off"  # autocast dtype on CUDA: off, bf16, fp16 (ignored on CPU)
    channels_last: bool = False  # NHWC memory format on CUDA (ignored on CPU)

    def validate(self) -> "TrainConfig":
        from models import model_names
        from part.cam import METHODS
        from part.data import dataset_names
        from part.masks import RECIPES, QUADRANTS
        from part.schedules import check_schedules

        check_schedules(self)
        for key, accepted in CHOICES.items():
            _one_of(key, getattr(self, key), accepted)
        _one_of("dataset", self.dataset, dataset_names())
        _one_of("model", self.model, model_names())
        _one_of("recipe", self.recipe, list(RECIPES))
        _one_of("quadrant", self.quadrant, QUADRANTS)
        for m in self.cam_methods:
            _one_of("cam_methods", m, [m for m in METHODS if m != "ensemble"])
        if not self.cam_methods:
            raise ValueError("cam_methods must name at least one CAM method")
        if self.cam_weights and len(self.cam_weights) != len(self.cam_methods):
            raise ValueError(f"cam_weights has {len(self.cam_weights)} values for {len(self.cam_methods)} cam_methods")
        for key in ("subset", "image_size", "burn_in_epochs", "mask_every", "eval_n", "probe_count", "attack_steps"):
            _at_least(key, getattr(self, key), 0)
        for key in ("epochs", "batch_size", "nproc"):
            _at_least(key, getattr(self, key), 1)
        for key in ("eps", "eps_low", "step_size", "lr", "weight_decay", "beta", "momentum", "tau"):
            _at_least(key, getattr(self, key), 0)
        if self.eps_low > self.eps:
            raise ValueError(f"eps_low ({self.eps_low:g}) must not exceed eps ({self.eps:g})")
        if self.eps > 1:
            raise ValueError(f"eps is a fraction of the pixel range [0,1] (e.g. 8/255), got {self.eps:g}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown setting {', '.join(unknown)}; accepted: {', '.join(known)}")
        return cls(**{k: _coerce(known[k], v) for k, v in data.items()}).validate()

    def replace(self, **changes: Any) -> "TrainConfig":
        return TrainConfig.from_dict({**self.to_dict(), **changes})


def _one_of(key: str, value: Any, accepted) -> None:
    if value not in accepted:
        raise ValueError(f"{key} '{value}' is not accepted; accepted: {', '.join(map(str, accepted))}")


def _at_least(key: str, value: float, low: float) -> None:
    if value < low:
        raise ValueError(f"{key} must be >= {low}, got {value}")


def parse_number(text: str | float | int, kind: type = float) -> float | int:
    """A number from '0.03', '8/255' or '1e-3'; ints must be whole."""
    if isinstance(text, bool):
        raise ValueError(f"expected a number, got {text}")
    if isinstance(text, (int, float)):
        value = text
    else:
        try:
            value = float(Fraction(text.strip())) if "/" in text else float(text)
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"'{text}' is not a number (accepted: 0.03, 8/255, 1e-3)") from None
    if kind is int:
        if float(value) != int(value):
            raise ValueError(f"'{text}' is not a whole number")
        return int(value)
    return float(value)


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    kind = f.type if isinstance(f.type, str) else f.type.__name__
    try:
        if kind == "bool":
            return _parse_bool(value)
        if kind in ("int", "float"):
            return parse_number(value, int if kind == "int" else float)
        if kind.startswith("tuple"):
            items = [v for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)
            item_kind = {"str": str, "int": int, "float": float}[kind[len("tuple["):].split(",")[0]]
            return tuple(item.strip() if item_kind is str else parse_number(item, item_kind) for item in items)
        return str(value)
    except ValueError as err:
        raise ValueError(f"{f.name}: {err}") from None


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"'{value}' is not a boolean (accepted: true, false, 1, 0, yes, no, on, off)")


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"'{pair}' is not key=value (e.g. eps=8/255)")
        out[key.strip().replace("-", "_")] = value
    return out


# ---- presets -------------------------------------------------------------------------------

_FMNIST: dict[str, Any] = {}  # the defaults above are the Fashion-MNIST CPU setting

_PAPER = {  # Section 5 and Appendix D of the paper
    "cifar10": dict(dataset="cifar10", model="resnet18", eps=8 / 255, eps_low=7 / 255, step_size=2 / 255,
                    optimizer="sgd", lr=0.01, batch_size=128, weight_decay=2e-4, augment="crop-flip"),
    "svhn": dict(dataset="svhn", model="resnet18", eps=8 / 255, eps_low=7 / 255, step_size=1 / 255,
                 optimizer="sgd", lr=0.01, batch_size=128, weight_decay=3.5e-3),
    "tiny-imagenet": dict(dataset="tiny-imagenet", model="wrn-34-10", eps=8 / 255, eps_low=7 / 255,
                          step_size=2 / 255, optimizer="sgd", lr=0.02, batch_size=512, weight_decay=5e-4,
                          augment="crop-flip"),
}
_PAPER_SCHEDULE = dict(epochs=80, lr_milestones=(60,), burn_in_epochs=20, momentum=0.9)

_METHODS = {  # preset suffix -> (defense, pixel reweighting)
    "at": ("at", False), "part": ("at", True),
    "trades": ("trades", False), "part-t": ("trades", True),
    "mart": ("mart", False), "part-m": ("mart", True),
}


def _presets() -> dict[str, dict[str, Any]]:
    out = {}
    for suffix, (defense, part) in _METHODS.items():
        out[f"fmnist-{suffix}"] = {**_FMNIST, "defense": defense, "part": part}
        for name, base in _PAPER.items():
            out[f"{name}-{suffix}"] = {**base, **_PAPER_SCHEDULE, "defense": defense, "part": part}
    return out


PRESETS = _presets()


def preset(name: str, **overrides: Any) -> TrainConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset '{name}'; accepted: {', '.join(PRESETS)}")
    return TrainConfig().replace(**{**PRESETS[name], **overrides})
