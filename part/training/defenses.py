"""Adversarial training objectives: each defense is an inner (attack) loss and an outer loss.

Madry et al., ICLR 2018 (AT); Zhang et al., "Theoretically Principled Trade-off between Robustness
and Accuracy", ICML 2019 (TRADES); Wang et al., "Improving Adversarial Robustness Requires
Revisiting Misclassified Examples", ICLR 2020 (MART). PART changes none of these: it only bounds
the inner maximisation with an eps-map (Zhang et al., ICML 2024).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F


def at_loss(logits_nat: torch.Tensor | None, logits_adv: torch.Tensor, y: torch.Tensor, beta: float) -> torch.Tensor:
    return F.cross_entropy(logits_adv, y)


def trades_loss(logits_nat: torch.Tensor, logits_adv: torch.Tensor, y: torch.Tensor, beta: float) -> torch.Tensor:
    """CE on clean inputs + beta * KL(p_nat || p_adv), averaged over the batch."""
    robust = F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits_nat, 1), reduction="batchmean")
    return F.cross_entropy(logits_nat, y) + beta * robust


def mart_loss(logits_nat: torch.Tensor, logits_adv: torch.Tensor, y: torch.Tensor, beta: float) -> torch.Tensor:
    """Boosted CE on adversarial inputs + beta * KL weighted by (1 - p_nat(y))."""
    adv_probs = F.softmax(logits_adv, 1)
    top2 = adv_probs.argsort(1)[:, -2:]
    runner_up = torch.where(top2[:, -1] == y, top2[:, -2], top2[:, -1])
    boosted = F.cross_entropy(logits_adv, y) + F.nll_loss(torch.log(1.0001 - adv_probs + 1e-12), runner_up)
    nat_probs = F.softmax(logits_nat, 1)
    true_probs = nat_probs.gather(1, y[:, None])[:, 0]
    kl = (nat_probs * (torch.log(nat_probs + 1e-12) - torch.log(adv_probs + 1e-12))).sum(1)
    return boosted + beta * (kl * (1.0000001 - true_probs)).mean()


@dataclass(frozen=True)
class Defense:
    name: str
    attack_loss: str  # the inner objective handed to pgd
    loss: Callable[..., torch.Tensor]  # (logits_nat, logits_adv, y, beta) -> scalar
    needs_clean_logits: bool


DEFENSES = {
    "at": Defense("at", "ce", at_loss, needs_clean_logits=False),
    "trades": Defense("trades", "kl", trades_loss, needs_clean_logits=True),
    "mart": Defense("mart", "ce", mart_loss, needs_clean_logits=True),
}


def get_defense(name: str) -> Defense:
    if name not in DEFENSES:
        raise ValueError(f"unknown defense '{name}'; accepted: {', '.join(DEFENSES)}")
    return DEFENSES[name]
