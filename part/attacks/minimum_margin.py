"""The minimum-margin attack with per-pixel budgets.

Gao et al., "Fast and Reliable Evaluation of Adversarial Robustness with Minimum-Margin Attack",
ICML 2022 (MMA); budgets, box and start as in part.attacks.projected_gradient (a float or a per-pixel map).
"""

from __future__ import annotations

import torch
from torch import nn

from part.attacks.projected_gradient import _input_grad, _logits, box, budget, uniform_start
from part.modes import eval_mode


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
