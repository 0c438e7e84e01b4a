"""Model registry: named architectures wrapped with in-model normalisation.

Every network is built bare (it expects normalised input) and then wrapped in
:class:`Normalized`, so callers always feed pixel-space images in ``[0, 1]``.
Adversarial perturbation budgets are therefore expressed in pixel units.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

__all__ = [
    "ModelSpec",
    "Normalized",
    "create_model",
    "get_spec",
    "model_names",
    "register",
]


@dataclass(frozen=True)
class ModelSpec:
    """Description of a registered architecture.

    ``builder(num_classes, in_channels)`` returns a bare network taking
    normalised input. ``cam_layer`` is a dotted attribute path inside that bare
    network whose forward output is the 4-D feature map used for CAMs.
    ``mean``/``std`` are default normalisation statistics; a length-1 tuple is
    broadcast to all channels. ``reshape_transform`` turns a ``cam_layer`` output
    that is not a map (a ViT's tokens [B,T,C]) into one [B,C,h,w]; ``attention``
    is a glob over module names (``blocks.*.attn.attn_probs``) matching the modules
    whose outputs are softmax attention probabilities [B,heads,T,T], in forward
    order, for attention rollout; None for models without attention.
    """

    name: str
    builder: Callable[[int, int], nn.Module]
    input_size: int
    cam_layer: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    description: str
    reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None = None
    attention: str | None = None


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add ``spec`` to the registry (re-registering the same name replaces it)."""
    _REGISTRY[spec.name] = spec
    return spec


def model_names() -> list[str]:
    """Registered model names, in registration order."""
    return list(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    """Return the spec registered under ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        accepted = ", ".join(model_names())
        raise ValueError(f"unknown model {name!r}; accepted: {accepted}") from None


def _resolve(module: nn.Module, path: str) -> nn.Module:
    obj: nn.Module = module
    for part in path.split("."):
        if not hasattr(obj, part):
            raise AttributeError(f"module path {path!r} not found (missing {part!r})")
        obj = getattr(obj, part)
    if not isinstance(obj, nn.Module):
        raise TypeError(f"module path {path!r} does not point at an nn.Module")
    return obj


def _stats(values: Sequence[float], in_channels: int, what: str) -> torch.Tensor:
    vals = [float(v) for v in values]
    if len(vals) == 1:
        vals = vals * in_channels
    elif len(vals) != in_channels:
        raise ValueError(
            f"{what} must have length 1 or in_channels={in_channels}; got length {len(vals)}"
        )
    return torch.tensor(vals, dtype=torch.float32).view(1, in_channels, 1, 1)


def _default(values: tuple[float, ...], in_channels: int) -> tuple[float, ...]:
    """Spec default statistics adapted to ``in_channels``.

    A default whose length is neither 1 nor ``in_channels`` (e.g. RGB
    statistics for a 1-channel model) collapses to its average, broadcast.
    """
    if len(values) in (1, in_channels):
        return values
    return (sum(values) / len(values),)


class Normalized(nn.Module):
    """Wrap a bare network so it takes pixel-space input in ``[0, 1]``.

    ``forward(x) = net((x - mean) / std)`` with ``mean``/``std`` buffers shaped
    ``[1, C, 1, 1]``. ``reshape_transform`` (or None) and ``attention_names``
    (dotted paths, empty without attention) carry the record's CAM quirks.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        net: nn.Module,
        mean: torch.Tensor,
        std: torch.Tensor,
        spec_name: str,
        cam_layer: str,
        reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        attention: str | None = None,
    ) -> None:
        super().__init__()
        if mean.shape != std.shape or mean.dim() != 4:
            raise ValueError("mean and std must both be shaped [1, C, 1, 1]")
        if bool((std <= 0).any()):
            raise ValueError("std must be strictly positive")
        self.net = net
        self.register_buffer("mean", mean.clone())
        self.register_buffer("std", std.clone())
        self.spec_name = spec_name
        self.cam_layer_name = "net." + cam_layer
        _resolve(self, self.cam_layer_name)  # fail early on a bad path
        self.reshape_transform = reshape_transform
        self.attention_names = [] if attention is None else [
            "net." + n for n, _ in net.named_modules() if n and fnmatch.fnmatchcase(n, attention)]
        if attention is not None and not self.attention_names:
            raise ValueError(f"no module of the network matches the attention pattern {attention!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)

    def cam_layer(self) -> nn.Module:
        """The submodule whose output is the CAM feature map."""
        return _resolve(self, self.cam_layer_name)

    def attention_layers(self) -> list[nn.Module]:
        """The modules whose outputs are attention probabilities, in forward order; [] without attention."""
        return [_resolve(self, n) for n in self.attention_names]


def create_model(
    name: str,
    num_classes: int = 10,
    in_channels: int = 1,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Normalized:
    """Build the registered model ``name`` wrapped in :class:`Normalized`.

    ``mean``/``std`` override the spec defaults and must have length 1 or
    ``in_channels``. Spec defaults whose length does not fit ``in_channels``
    are averaged to a single value.
    """
    spec = get_spec(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2; got {num_classes!r}")
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be an integer >= 1; got {in_channels!r}")
    mean_t = _stats(_default(spec.mean, in_channels) if mean is None else mean, in_channels, "mean")
    std_t = _stats(_default(spec.std, in_channels) if std is None else std, in_channels, "std")
    if bool((std_t <= 0).any()):
        raise ValueError(f"std values must be > 0; got {tuple(std_t.flatten().tolist())}")
    net = spec.builder(num_classes, in_channels)
    return Normalized(net, mean_t, std_t, spec_name=spec.name, cam_layer=spec.cam_layer,
                      reshape_transform=spec.reshape_transform, attention=spec.attention)
