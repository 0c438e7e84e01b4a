"""One typed training config: presets for the paper's settings and for this CPU, key=value overrides.

The resolved config is saved with every run and every checkpoint, so a run folder alone says how
it was made.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import typing
from dataclasses import dataclass, fields
from typing import Any

from part import numbers

CHOICES = {
    "defense": ("at", "trades", "mart"),
    "attack": ("pgd", "mma"),
    "cam_target": ("label", "pred"),
    "optimizer": ("sgd", "adam"),
    "augment": ("none", "crop-flip"),
    "device": ("auto", "cpu", "cuda"),
    "amp": ("auto", "off", "bf16", "fp16"),
    "attack_path": ("auto", "plain", "folded", "folded-cl"),  # part.attacks.attack_view.CHOICES
}


# Bounds of every number a config accepts (tuples: of each item): generous for real work, and a
# typo like epochs=1e9 or eps=80 is refused before a process starts.
RANGES = {
    "subset": (0, 100_000_000), "image_size": (0, 4096), "burn_in_epochs": (0, 100_000), "mask_every": (0, 100_000),
    "eval_n": (0, 100_000_000), "eval_steps": (0, 10_000), "probe_count": (0, 1000), "attack_steps": (0, 10_000),
    "epochs": (1, 100_000), "batch_size": (1, 1_000_000), "nproc": (1, 4096), "seed": (0, 2**32 - 1),
    "eps": (0, 1), "eps_low": (0, 1), "step_size": (0, 1), "lr": (0, 100), "weight_decay": (0, 100),
    "beta": (0, 1e6), "momentum": (0, 1), "tau": (0, 1e6), "threshold": (0, 1e6), "lr_gamma": (0, 100),
    "lr_milestones": (0, 100_000), "cam_weights": (0, 1e6),
}
# Fields whose lower bound is itself refused: a temperature of 0 makes every soft eps-map flat.
EXCLUSIVE_LOW = frozenset({"tau"})


def range_text(name: str) -> str:
    """The accepted range of field `name` in words: '> 0 and <= 1000000'."""
    low, high = RANGES[name]
    return f"{'>' if name in EXCLUSIVE_LOW else '>='} {low} and <= {high}"


def check_range(name: str, value: float, what: str | None = None) -> float:
    """`value` if it lies in field `name`'s range (RANGES, the one table that the config, the schedules,
    the job API and the image forms read), else a ValueError naming the range."""
    low, high = RANGES[name]
    above = low < value if name in EXCLUSIVE_LOW else low <= value
    if not (above and value <= high):
        raise ValueError(f"{what or name} must be {range_text(name)}, got {value}")
    return value


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
    # per-epoch schedules (part/training/schedules.py): "" or constant = the value above; linear:START:END:FROM:TO,
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
    # scale-out (part/training/distributed.py, part/precision.py)
    nproc: int = 1  # training processes (DDP under torchrun); the saved config records the world it ran in
    sync_bn: bool = True  # with nproc > 1: BatchNorm statistics over the global batch, as in one process
    amp: str = "auto"  # autocast: auto (bf16 where native, else off; saved resolved), off (float32), bf16, fp16 (CUDA)
    channels_last: bool = False  # NHWC memory format on CUDA (ignored on CPU)
    # the network the attacks and the CAM refresh run (part/attacks/attack_view.py): auto (the fastest of
    # plain, folded BatchNorm, folded + channels_last, timed on this model and batch when the run starts; saved
    # resolved), plain (the model itself), folded, folded-cl. PART_ATTACK_FAST=0 forces plain.
    attack_path: str = "auto"

    def validate(self, *, new: bool = True) -> "TrainConfig":
        """Every field's type, choice and range; with `new` (a run about to start) also what only makes a
        new run pointless, so a folder trained before such a rule existed still reads."""
        from models import get_spec, model_names
        from part.explain.attention import ATTENTION_METHODS
        from part.explain.cam import METHODS
        from part.data.datasets import dataset_names
        from part.explain.eps_maps import RECIPES, QUADRANTS, check_recipe_dataset
        from part.training.schedules import check_schedules

        check_schedules(self)
        for key, accepted in CHOICES.items():
            _one_of(key, getattr(self, key), accepted)
        _one_of("dataset", self.dataset, dataset_names())
        _one_of("model", self.model, model_names())
        _one_of("recipe", self.recipe, list(RECIPES))
        check_recipe_dataset(self.recipe, self.dataset)  # oracle: only where the dataset gives exact object masks
        _one_of("quadrant", self.quadrant, QUADRANTS)
        for m in self.cam_methods:
            _one_of("cam_methods", m, [m for m in METHODS if m != "ensemble"])
        if not self.cam_methods:
            raise ValueError("cam_methods must name at least one CAM method")
        needs = [m for m in self.cam_methods if m in ATTENTION_METHODS]
        if needs and get_spec(self.model).attention is None:  # refused now, not after burn-in
            with_attention = [n for n in model_names() if get_spec(n).attention is not None]
            raise ValueError(f"cam_methods {', '.join(needs)} need a model with attention blocks and '{self.model}' "
                             f"has none; accepted models: {', '.join(with_attention)}")
        if self.cam_weights and len(self.cam_weights) != len(self.cam_methods):
            raise ValueError(f"cam_weights has {len(self.cam_weights)} values for {len(self.cam_methods)} cam_methods")
        if self.eps > 1:
            raise ValueError(f"eps is a fraction of the pixel range [0,1] (e.g. 8/255), got {self.eps:g}")
        for key in RANGES:
            values = getattr(self, key)
            for value in values if isinstance(values, tuple) else (values,):
                check_range(key, value)
        if self.eps_low > self.eps:
            raise ValueError(f"eps_low ({self.eps_low:g}) must not exceed eps ({self.eps:g})")
        if new and self.part and self.burn_in_epochs >= self.epochs:  # no epoch would reweight a pixel
            raise ValueError(f"burn_in_epochs ({self.burn_in_epochs}) must be < epochs ({self.epochs}) for part=true, "
                             f"or every epoch is the plain {self.defense.upper()} burn-in; accepted: burn_in_epochs "
                             f"0..{self.epochs - 1}, or part=false")
        return self

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, new: bool = True) -> "TrainConfig":
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown setting {', '.join(unknown)}; accepted: {', '.join(known)}")
        return cls(**{k: _coerce(k, v) for k, v in data.items()}).validate(new=new)

    def replace(self, **changes: Any) -> "TrainConfig":
        return TrainConfig.from_dict({**self.to_dict(), **changes})


def _one_of(key: str, value: Any, accepted) -> None:
    if value not in accepted:
        raise ValueError(f"{key} '{value}' is not accepted; accepted: {', '.join(map(str, accepted))}")


def _shown(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict, bool)) or value is None else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_number(text: str | float | int, kind: type = float, *, field: str | None = None) -> float | int:
    """A finite number from '0.03', '8/255', '1e-3' or a JSON number; ints must be whole; with `field`,
    also inside that field's range (check_range).

    The one parser of numbers from people: CLI flags, `--set`, job overrides, API forms, schedule steps
    and eps sweeps (part.numbers.parse_number, with the range table on top). Text is at most 100 characters
    and a value that overflows a float is refused, so every error is a ValueError naming what was given."""
    value = numbers.parse_number(text, kind)
    return check_range(field, value) if field is not None else value


@functools.lru_cache(maxsize=1)
def _hints() -> dict[str, Any]:
    """TrainConfig's field types, resolved once (resolving them per field made every config load ~70 ms)."""
    return typing.get_type_hints(TrainConfig)


def _coerce(name: str, value: Any) -> Any:
    """`value` (text from the command line or a JSON value from an API request) as field `name`'s type."""
    hint = _hints()[name]
    try:
        if hint is bool:
            return _parse_bool(value)
        if hint in (int, float):
            return parse_number(value, hint)
        if typing.get_origin(hint) is tuple:
            item = typing.get_args(hint)[0]
            if isinstance(value, str):
                items = [v for v in value.split(",") if v.strip()]
            elif isinstance(value, (list, tuple)):
                items = list(value)
            elif item is not str and isinstance(value, (int, float)) and not isinstance(value, bool):
                items = [value]
            else:
                raise ValueError(f"expected a list or comma-separated text, got {_shown(value)}")
            if item is str:
                if not all(isinstance(v, str) for v in items):
                    raise ValueError(f"expected names, got {_shown(value)}")
                return tuple(v.strip() for v in items)
            return tuple(parse_number(v, item) for v in items)
        if not isinstance(value, str):
            raise ValueError(f"expected text, got {_shown(value)}")
        return value
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if not isinstance(value, (str, int)):
        raise ValueError(f"{_shown(value)} is not a boolean (accepted: true, false, 1, 0, yes, no, on, off)")
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

# The cluttered testbed (part.data.clutter): 40x40 canvases and a fourth conv stage make a PGD-10 step
# about 3.4x a plain Fashion-MNIST one (bf16, one thread), so a 10k-image subset keeps a 10-epoch
# run near 15 minutes on one core of this CPU; the 10k test images stay whole.
_CLUTTER: dict[str, Any] = dict(dataset="fashion-mnist-clutter", model="small-cnn-4", subset=10_000)

# A small ViT (models/vit.py, vit-tiny): a PGD-10 step costs about 2.5x the small CNN's, so 10 epochs of
# the whole Fashion-MNIST fit in about 45 minutes on 2 cores in bf16. PART takes its importance from the
# ViT's own attention (attention rollout, part.explain.attention); every CAM method works through the token
# reshape too (`--set cam_methods=gradcam`).
_VIT: dict[str, Any] = dict(model="vit-tiny", cam_methods=("attention-rollout",))

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
        out[f"fmnist-clutter-{suffix}"] = {**_CLUTTER, "defense": defense, "part": part}
        out[f"fmnist-vit-{suffix}"] = {**_VIT, "defense": defense, "part": part}
        for name, base in _PAPER.items():
            out[f"{name}-{suffix}"] = {**base, **_PAPER_SCHEDULE, "defense": defense, "part": part}
    return out


PRESETS = _presets()


def preset(name: str, **overrides: Any) -> TrainConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset '{name}'; accepted: {', '.join(PRESETS)}")
    return TrainConfig().replace(**{**PRESETS[name], **overrides})
