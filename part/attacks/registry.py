"""The attack registry: one record per attack family, from which training, evaluation and the backend
build their attacks. An Attack maps (model, x, y) to adversarial inputs in [0,1].

FGSM (Goodfellow et al., ICLR 2015) is PGD-1 from the clean input with step eps; PGD (Madry et al., ICLR
2018) and MMA (Gao et al., ICML 2022) take step eps/4 and a random start unless told otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from part.attacks.minimum_margin import mma
from part.attacks.projected_gradient import pgd

Attack = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def pgd_attack(eps: float, steps: int, step_size: float | None = None, random_start: bool = True) -> Attack:
    """PGD-`steps` with step eps/4 and a random start unless told otherwise."""
    step = eps / 4 if step_size is None else step_size
    return lambda model, x, y: pgd(model, x, y, eps=eps, step_size=step, steps=steps, random_start=random_start)


def fgsm_attack(eps: float) -> Attack:
    """One signed-gradient step of size eps from the clean input (PGD-1 without random start)."""
    return pgd_attack(eps, 1, step_size=eps, random_start=False)


def mma_attack(eps: float, steps: int = 20, k: int = 3, step_size: float | None = None) -> Attack:
    step = eps / 4 if step_size is None else step_size
    return lambda model, x, y: mma(model, x, y, eps=eps, step_size=step, steps=steps, k=k)


@dataclass(frozen=True)
class AttackRecord:
    name: str
    make: Callable[[float, int], Attack]  # (eps, steps) -> the attack
    default_steps: int
    params: Callable[[float, int], dict]  # (eps, steps) -> what a report records about the attack


ATTACKS = {
    "fgsm": AttackRecord("fgsm", lambda eps, steps: fgsm_attack(eps), 1,
                         lambda eps, steps: {"eps": eps, "steps": 1, "step_size": eps, "random_start": False}),
    "pgd": AttackRecord("pgd", lambda eps, steps: pgd_attack(eps, steps), 20,
                        lambda eps, steps: {"eps": eps, "steps": steps, "step_size": eps / 4, "random_start": True}),
    "mma": AttackRecord("mma", lambda eps, steps: mma_attack(eps, steps), 20,
                        lambda eps, steps: {"eps": eps, "steps": steps, "step_size": eps / 4, "k": 3, "kappa": 50.0}),
}


def get_attack(name: str) -> AttackRecord:
    if name not in ATTACKS:
        raise ValueError(f"unknown attack family '{name}'; accepted: {', '.join(ATTACKS)}")
    return ATTACKS[name]
