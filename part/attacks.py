"""L-infinity attacks with per-pixel budgets: PGD and the minimum-margin attack.

Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018 (PGD);
Gao et al., "Fast and Reliable Evaluation of Adversarial Robustness with Minimum-Margin Attack",
ICML 2022 (MMA); Zhang et al., ICML 2024 (PART: the budget `eps` may be a per-pixel map).

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


def _top_wrong(logits: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    wrong = logits.detach().clone()
    wrong.scatter_(1, y[:, None], float("-inf"))
    return wrong.topk(k, dim=1).indices  # [B,k]


def _margin(logits: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return logits.gather(1, t[:, None])[:, 0] - logits.gather(1, y[:, None])[:, 0]


def mma(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float | torch.Tensor,
    step_size: float,
    steps: int = 20,
    k: int = 3,
    kappa: float = 50.0,
    random_start: bool = True,
) -> torch.Tensor:
    """Minimum-margin attack: a targeted run per top-k wrong class, keep the largest margin.

    All k runs share one random start and run as one batch of k*B images.
    """
    if k < 1:
        raise ValueError(f"mma needs k >= 1 target classes, got {k}")
    b = budget(eps, x)
    x = x.detach()
    with eval_mode(model), torch.enable_grad():
        logits = _logits(model, x)
        k = min(k, logits.shape[1] - 1)
        targets = _top_wrong(logits, y, k).t().reshape(-1)  # target j of image i at row j*B + i
        lo, hi = box(x, b)
        start = uniform_start(x, b, lo, hi) if random_start else x.clone()
        rep = (k,) + (1,) * (x.dim() - 1)
        ys, x_adv, lo, hi = y.repeat(k), start.repeat(rep), lo.repeat(rep), hi.repeat(rep)
        for _ in range(steps):
            x_adv.requires_grad_(True)
            objective = _margin(_logits(model, x_adv), ys, targets).clamp(max=kappa).sum()
            x_adv = torch.clamp(x_adv.detach() + step_size * _input_grad(objective, x_adv).sign(), lo, hi)
        with torch.no_grad():
            margins = _margin(_logits(model, x_adv), ys, targets).view(k, -1)
    best = margins.argmax(0)  # [B]
    return x_adv.view(k, *x.shape)[best, torch.arange(x.shape[0])].detach()
