"""Class activation maps at input resolution, through pytorch-grad-cam or a batched native path.

Selvaraju et al., "Grad-CAM", ICCV 2017; Chattopadhay et al., "Grad-CAM++", WACV 2018;
Fu et al., "XGrad-CAM", BMVC 2020; Jiang et al., "LayerCAM", TIP 2021; Draelos & Carin,
"HiResCAM", 2020. The ensemble follows PART++ (equal or given weights over normalised maps).
Attention rollout and its gradient-weighted variant for ViTs live in part/explain/attention.py.

The native path computes the same maps as pytorch-grad-cam for the gradient methods, in one
batched torch pass whose backward stops at the target layer; tests hold it to the library within
1e-4. Every other method goes through the library itself. A model whose CAM layer outputs tokens
[B,T,C] (a ViT) carries a `reshape_transform` to [B,C,h,w] (models/registry.py); both paths apply it.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

import pytorch_grad_cam as gc
from pytorch_grad_cam.ablation_layer import AblationLayerVit
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from part.explain.attention import ATTENTION_METHODS
from part.modes import eval_mode

LIBRARY_METHODS: dict[str, type] = {
    "gradcam": gc.GradCAM,
    "gradcam++": gc.GradCAMPlusPlus,
    "xgradcam": gc.XGradCAM,
    "layercam": gc.LayerCAM,
    "hirescam": gc.HiResCAM,
    "gradcam-elementwise": gc.GradCAMElementWise,
    "eigencam": gc.EigenCAM,
    "eigengradcam": gc.EigenGradCAM,
    "scorecam": gc.ScoreCAM,
    "ablationcam": gc.AblationCAM,
}


def _gradcam(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return (g.mean(dim=(2, 3), keepdim=True) * a).sum(1)


def _gradcam_pp(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    g2 = g * g
    aij = g2 / (2 * g2 + a.sum(dim=(2, 3), keepdim=True) * g2 * g + 1e-6)
    aij = torch.where(g != 0, aij, torch.zeros_like(aij))
    weights = (g.clamp(min=0) * aij).sum(dim=(2, 3), keepdim=True)
    return (weights * a).sum(1)


def _xgradcam(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    weights = (g * a / (a.sum(dim=(2, 3), keepdim=True) + 1e-7)).sum(dim=(2, 3), keepdim=True)
    return (weights * a).sum(1)


def _layercam(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return (g.clamp(min=0) * a).sum(1)


def _hirescam(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return (g * a).sum(1)


# Map from (activations, gradients) [B,K,h,w] to a raw CAM [B,h,w], as the library computes it.
NATIVE_METHODS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "gradcam": _gradcam,
    "gradcam++": _gradcam_pp,
    "xgradcam": _xgradcam,
    "layercam": _layercam,
    "hirescam": _hirescam,
}

METHODS = sorted(LIBRARY_METHODS) + list(ATTENTION_METHODS) + ["ensemble"]


def _minmax(cam: torch.Tensor) -> torch.Tensor:
    flat = cam.flatten(1)
    flat = flat - flat.min(dim=1, keepdim=True).values
    flat = flat / (1e-7 + flat.max(dim=1, keepdim=True).values)
    return flat.view_as(cam)


def _finish(raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """ReLU, normalise, upsample, normalise: the library's per-layer then aggregate scaling."""
    cam = _minmax(raw.clamp(min=0))
    cam = F.interpolate(cam[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    return _minmax(cam.clamp(min=0))


def resolve_layer(model: nn.Module, layer: str | nn.Module | None) -> nn.Module:
    """The CAM target layer: given, named by a dotted path, or the model's registered one."""
    if isinstance(layer, nn.Module):
        return layer
    if layer is None:
        if hasattr(model, "cam_layer"):
            return model.cam_layer()
        raise ValueError("model has no registered CAM layer; pass layer= (a module or dotted path)")
    try:
        return model.get_submodule(layer)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n]
        raise ValueError(f"no layer '{layer}' in the model; accepted: {', '.join(names[:40])}")


def _reshape_of(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The model's tokens -> map transform, applied to token outputs [B,T,C] only; None without one."""
    transform = getattr(model, "reshape_transform", None)
    if transform is None:
        return None
    return lambda t: transform(t) if t.dim() == 3 else t


def _native_cam(model, x, targets, method, layer) -> torch.Tensor:
    store: dict[str, torch.Tensor] = {}
    handle = layer.register_forward_hook(lambda m, i, out: store.__setitem__("a", out))
    try:
        with torch.enable_grad():
            # A leaf that requires grad makes the graph exist even for frozen weights.
            logits = model(x.detach().requires_grad_(True))
            idx = logits.argmax(1) if targets is None else targets.to(logits.device)
            score = logits.gather(1, idx.view(-1, 1)).sum()
            (grads,) = torch.autograd.grad(score, store["a"])
    finally:
        handle.remove()
    a, reshape = store["a"].detach(), _reshape_of(model)
    if reshape is not None:
        a, grads = reshape(a), reshape(grads)
    if a.dim() != 4:
        raise ValueError(f"the CAM layer outputs {tuple(a.shape)}, not a map [B,C,h,w]; "
                         "a token model needs a reshape_transform in its registry record")
    raw = NATIVE_METHODS[method](a, grads)
    return _finish(raw, x.shape[-2:])


def _library_cam(model, x, targets, method, layer) -> torch.Tensor:
    cam_targets = None if targets is None else [ClassifierOutputTarget(int(t)) for t in targets]
    reshape = _reshape_of(model)
    options = {"reshape_transform": reshape}
    if method == "ablationcam" and reshape is not None:
        options["ablation_layer"] = AblationLayerVit()  # ablates a channel of tokens [B,T,C]
    if not any(p.requires_grad for p in model.parameters()):
        # frozen weights (an attack view, part/attacks/attack_view.py): the library's backward needs a graph,
        # and an input that requires grad makes one
        x = x.detach().requires_grad_(True)
    with LIBRARY_METHODS[method](model=model, target_layers=[layer], **options) as cam:
        maps = cam(input_tensor=x, targets=cam_targets)
    model.zero_grad(set_to_none=True)  # the library's backward leaves parameter gradients
    return torch.from_numpy(maps).to(x.device, torch.float32)


def _check(method: str) -> None:
    if method not in LIBRARY_METHODS and method not in ATTENTION_METHODS:
        raise ValueError(f"unknown CAM method '{method}'; accepted: {', '.join(METHODS)}")


def compute_cam(
    model: nn.Module,
    x: torch.Tensor,
    targets: torch.Tensor | None = None,
    method: str | Sequence[str] = "gradcam",
    layer: str | nn.Module | None = None,
    *,
    methods: Sequence[str] | None = None,
    weights: Sequence[float] | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """CAMs [B,H,W] in [0,1] for inputs x [B,C,H,W] in pixel space.

    targets: class per image (true labels) or None for the predicted class. method: one name, a
    list (ensemble), or "ensemble" with `methods`/`weights`. backend: "auto" (native where
    available), "native" or "library". The model's train/eval mode is restored and hooks removed.
    The attention methods (part/explain/attention.py) read every attention block, not `layer`, and have one
    torch implementation used under every backend.
    """
    if not isinstance(method, str):
        methods, method = list(method), "ensemble"
        if len(methods) == 1 and not weights:
            method = methods[0]
    if method == "ensemble":
        methods = list(methods or ["gradcam", "gradcam++", "xgradcam"])
        weights = [1.0] * len(methods) if weights is None else list(weights)
        if len(weights) != len(methods) or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"ensemble weights {weights} must be {len(methods)} non-negative numbers with a positive sum")
        maps = [compute_cam(model, x, targets, m, layer, backend=backend) for m in methods]
        total = sum(weights)
        return sum(w / total * m for w, m in zip(weights, maps))
    _check(method)
    if backend not in ("auto", "native", "library"):
        raise ValueError(f"unknown CAM backend '{backend}'; accepted: auto, native, library")
    if method in ATTENTION_METHODS:
        return ATTENTION_METHODS[method](model, x, targets)
    if backend == "native" and method not in NATIVE_METHODS:
        raise ValueError(f"no native path for '{method}'; native methods: {', '.join(NATIVE_METHODS)}")
    target_layer = resolve_layer(model, layer)
    use_native = backend == "native" or (backend == "auto" and method in NATIVE_METHODS)
    with eval_mode(model):
        if use_native:
            return _native_cam(model, x, targets, method, target_layer)
        return _library_cam(model, x, targets, method, target_layer)
