"""Attacks: L-infinity PGD and the minimum-margin attack (MMA), with a scalar or a per-pixel budget, and the
registry of attack records that training, evaluation and the backend build attacks from, and the attack-time
network (attack_view: the model with its BatchNorm folded, in channels_last where faster, chosen by timing)."""

from part.attacks.attack_view import AttackView
from part.attacks.minimum_margin import mma
from part.attacks.projected_gradient import LOSSES, box, budget, pgd, uniform_start
from part.attacks.registry import ATTACKS, Attack, AttackRecord, fgsm_attack, get_attack, mma_attack, pgd_attack

__all__ = ["ATTACKS", "Attack", "AttackRecord", "AttackView", "LOSSES", "box", "budget", "fgsm_attack", "get_attack", "mma",
           "mma_attack", "pgd", "pgd_attack", "uniform_start"]
