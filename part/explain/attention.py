"""Attention-based importance maps for Vision Transformers: attention rollout and gradient-weighted rollout.

Abnar & Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020 (rollout: average the heads, add
the residual as 0.5*A + 0.5*I, renormalise rows, multiply the blocks); Chefer, Gur & Wolf, "Transformer
Interpretability Beyond Attention Visualization", CVPR 2021 (each block's attention weighted by the
gradient of the target score, mean over heads of relu(dA * A)), rolled out the same way.

The attention probabilities [B, heads, T, T] are read by forward hooks on the model's attention modules:
those its registry record names (``Normalized.attention_layers()``), or else every module named
``attn_probs``. Token 0 is the class token; its row of the joint attention over the patch tokens is the
map, bilinearly upsampled to the input and min-max scaled per image like every CAM (part/explain/cam.py).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from part.modes import eval_mode


def _models_with_attention() -> list[str]:
    from models import get_spec, model_names

    return [n for n in model_names() if get_spec(n).attention]


def attention_layers(model: nn.Module, method: str = "attention-rollout") -> list[nn.Module]:
    """The modules whose outputs are attention probabilities; a ValueError naming the accepted models if none."""
    if hasattr(model, "attention_layers"):
        layers = list(model.attention_layers())
    else:
        layers = [m for n, m in model.named_modules() if n.rsplit(".", 1)[-1] == "attn_probs"]
    if not layers:
        name = getattr(model, "spec_name", type(model).__name__)
        raise ValueError(
            f"'{method}' needs a model with attention blocks and '{name}' has none; models with attention: "
            f"{', '.join(_models_with_attention())} (or any model with modules named 'attn_probs' that "
            "output the softmax attention [B, heads, T, T])")
    return layers


def rollout(attentions: Sequence[torch.Tensor]) -> torch.Tensor:
    """Joint attention [B, T, T] from per-block attentions [B, T, T] (heads already fused), first block first.

    Each block becomes 0.5*A + 0.5*I with rows renormalised to sum to 1; the joint attention is their
    product A'_L ... A'_1.
    """
    joint = None
    for a in attentions:
        a = 0.5 * a.float() + 0.5 * torch.eye(a.shape[-1], device=a.device)
        a = a / a.sum(dim=-1, keepdim=True)
        joint = a if joint is None else a @ joint
    if joint is None:
        raise ValueError("rollout needs at least one block's attention")
    return joint


def _capture(model: nn.Module, x: torch.Tensor, layers: list[nn.Module], with_grad: bool):
    """(logits, attentions in forward order) of one forward pass; hooks removed whatever happens."""
    store: list[torch.Tensor] = []
    handles = [layer.register_forward_hook(lambda m, i, out: store.append(out)) for layer in layers]
    try:
        with torch.enable_grad() if with_grad else torch.no_grad():
            # A leaf that requires grad makes the graph exist even for frozen weights.
            logits = model(x.detach().requires_grad_(True) if with_grad else x)
    finally:
        for h in handles:
            h.remove()
    for a in store:
        if a.dim() != 4 or a.shape[-1] != a.shape[-2] or a.shape[-1] != store[0].shape[-1]:
            raise ValueError(f"attention modules must output [B, heads, T, T] with one T; got {tuple(a.shape)}")
    return logits, store


def _to_input(fused: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
    """Rollout of per-block attentions [B,T,T]: the class token's row over the patches, on the patch grid,
    at input size, min-max scaled per image; in float32 whatever autocast is active."""
    with torch.autocast(fused[0].device.type, enabled=False):
        cls_row = rollout(fused)[:, 0, 1:]
        n, (hh, ww) = cls_row.shape[1], size
        h = max(1, round(math.sqrt(n * hh / ww)))
        w = n // h
        if h * w != n:
            raise ValueError(f"{n} patch tokens do not form a grid with the input's aspect {hh}x{ww}")
        cam = F.interpolate(cls_row.reshape(-1, 1, h, w), size=size, mode="bilinear", align_corners=False)[:, 0]
    flat = cam.flatten(1)
    flat = flat - flat.min(dim=1, keepdim=True).values
    flat = flat / (1e-7 + flat.max(dim=1, keepdim=True).values)
    return flat.view_as(cam)


def attention_rollout(model: nn.Module, x: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
    """Maps [B,H,W] in [0,1]: rollout of the head-averaged attention (class-agnostic; targets are ignored)."""
    layers = attention_layers(model, "attention-rollout")
    with eval_mode(model):
        _, attentions = _capture(model, x, layers, with_grad=False)
    return _to_input([a.float().mean(dim=1) for a in attentions], x.shape[-2:])


def grad_rollout(model: nn.Module, x: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
    """Maps [B,H,W] in [0,1]: rollout of mean over heads of relu(d score / dA * A), score of `targets`.

    targets: class per image, or None for the predicted class. No parameter gradients are left behind.
    """
    layers = attention_layers(model, "grad-rollout")
    with eval_mode(model):
        logits, attentions = _capture(model, x, layers, with_grad=True)
        idx = logits.argmax(1) if targets is None else targets.to(logits.device)
        score = logits.float().gather(1, idx.view(-1, 1)).sum()
        grads = torch.autograd.grad(score, attentions, allow_unused=True)
    fused = [(a.detach().float() * (torch.zeros_like(a) if g is None else g).float()).clamp(min=0).mean(dim=1)
             for a, g in zip(attentions, grads)]
    return _to_input(fused, x.shape[-2:])


# name -> (model, x [B,C,H,W] in [0,1], targets or None) -> maps [B,H,W] in [0,1]
ATTENTION_METHODS: dict[str, Callable[..., torch.Tensor]] = {
    "attention-rollout": attention_rollout,
    "grad-rollout": grad_rollout,
}
