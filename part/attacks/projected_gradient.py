"""L-infinity PGD with per-pixel budgets, and the budget helpers every attack here shares.

Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018 (PGD);
Zhang et al., ICML 2024 (PART: the budget `eps` may be a per-pixel map).

Inputs are in [0,1]. `eps` is a float or a tensor broadcastable to x; the attack keeps
|x_adv - x| <= eps elementwise and x_adv in [0,1]. Attacks run the model in eval mode and restore
its mode; gradients are taken with respect to the input only. Under autocast (part/precision.py) the
model's forward runs in bf16/fp16 while the input, its gradient, the budget, the sign step and the
projection stay float32, and every loss sees float32 logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from part.modes import eval_mode

LOSSES = ("ce", "kl")


def budget(eps: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """eps as a tensor on x's device and dtype, checked to broadcast to x and be non-negative."""
    b = torch.as_tensor(eps, dtype=x.dtype, device=x.device)
    try:
        fits = torch.broadcast_shapes(b.shape, x.shape) == x.shape
    except RuntimeError:  # shapes that do not broadcast at all
        fits = False
    if not fits:
        raise ValueError(f"eps of shape {tuple(b.shape)} does not broadcast to the input {tuple(x.shape)}")
    if bool((b < 0).any()):
        raise ValueError("eps must be >= 0 everywhere")
    return b


def box(x: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The feasible set [x - b, x + b] intersected with [0,1], as elementwise bounds."""
    return (x - b).clamp(min=0), (x + b).clamp(max=1)


def uniform_start(x: torch.Tensor, b: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    return torch.clamp(x + (torch.rand_like(x) * 2 - 1) * b, lo, hi)


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's output, in float32 when autocast computed it in bf16/fp16 (float64 is kept)."""
    out = model(x)
    return out.float() if out.dtype in (torch.bfloat16, torch.float16) else out


def _input_grad(objective: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    (grad,) = torch.autograd.grad(objective, x_adv)
    return grad


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float | torch.Tensor,
    step_size: float,
    steps: int,
    random_start: bool = True,
    loss: str = "ce",
) -> torch.Tensor:
    """Untargeted sign-gradient ascent of `loss`: "ce" (AT, MART) or "kl" to the clean output (TRADES)."""
    if loss not in LOSSES:
        raise ValueError(f"unknown attack loss '{loss}'; accepted: {', '.join(LOSSES)}")
    b = budget(eps, x)
    x = x.detach()
    with eval_mode(model), torch.enable_grad():
        clean = F.softmax(_logits(model, x), 1).detach() if loss == "kl" else None
        lo, hi = box(x, b)
        x_adv = uniform_start(x, b, lo, hi) if random_start else x.clone()
        for _ in range(steps):
            x_adv.requires_grad_(True)
            logits = _logits(model, x_adv)
            if loss == "ce":
                objective = F.cross_entropy(logits, y, reduction="sum")
            else:
                objective = F.kl_div(F.log_softmax(logits, 1), clean, reduction="sum")
            x_adv = torch.clamp(x_adv.detach() + step_size * _input_grad(objective, x_adv).sign(), lo, hi)
    return x_adv.detach()
