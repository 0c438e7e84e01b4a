"""Robustness vs eps: one attack at several budgets on the same images, as an evaluation attack.

`pgd20@0.05,0.1,0.15` attacks every image with PGD-20 at each eps (step eps/4, random start, as in
Table 1 of Zhang et al., ICML 2024); `mma@8/255,16/255` does the same with MMA (Gao et al., ICML 2022);
`fgsm@...` with one signed step. The gradient-masking checks (part.evaluation.checks, after Athalye et al.,
ICML 2018) sweep eps the same way through `correct_by_eps`. The record keeps, per eps, the accuracy
and the per-image correctness, so curves of several runs can be drawn and compared image by image.
"""

from __future__ import annotations

import re
import time
from typing import Callable, Sequence

import torch
from torch import nn

from part.attacks.registry import ATTACKS, Attack
from part.evaluation.accuracy import Task, correct_under, fraction
from part.numbers import parse_number

MAX_POINTS = 32
SWEEP = re.compile(r"(fgsm|pgd\d*|mma\d*)@(.*)")
NUMBER = re.compile(r"\s*(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?(\s*/\s*\d+\.?\d*)?\s*")
ACCEPTED = "ATTACK@EPS,EPS,... with ATTACK fgsm, pgd<K> or mma<K> and each eps in (0, 1] (0.05 or 8/255)"


def is_sweep(name: str) -> bool:
    return bool(SWEEP.fullmatch(name.strip().lower()))


def is_eps_token(text: str) -> bool:
    """An item of a comma-separated attack list that continues a sweep's eps list ('0.1', '8/255')."""
    return bool(NUMBER.fullmatch(text))


def parse_eps(text: str) -> float:
    if not is_eps_token(text):
        raise ValueError(f"eps '{_short(text.strip())}' is not a number; accepted: {ACCEPTED}")
    try:
        value = float(parse_number(text.replace(" ", "")))  # the config's parser: finite, bounded text
    except ValueError as err:
        raise ValueError(f"eps {err}; accepted: {ACCEPTED}") from None
    if not 0 < value <= 1:
        raise ValueError(f"eps {_short(text.strip())} is outside (0, 1] (a fraction of the pixel range); "
                         f"accepted: {ACCEPTED}")
    return value


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def parse_sweep(name: str) -> tuple[str, int, tuple[float, ...]]:
    """'pgd20@0.05,0.1' -> ('pgd', 20, (0.05, 0.1)); eps sorted, duplicates dropped. ':' separates as well."""
    m = SWEEP.fullmatch(name.strip().lower())
    if not m:
        raise ValueError(f"'{name.strip()}' is not an eps sweep; accepted: {ACCEPTED}")
    attack, items = m.group(1), re.split(r"[,:;]", m.group(2))
    kind = re.sub(r"\d+$", "", attack)
    digits = attack[len(kind):]
    steps = {"fgsm": 1, "pgd": int(digits or 20), "mma": int(digits or 20)}[kind]
    if not 1 <= steps <= 10_000:
        raise ValueError(f"'{name.strip()}': steps must be 1..10000")
    values = sorted({parse_eps(v) for v in items if v.strip()})
    if not values:
        raise ValueError(f"'{name.strip()}' names no eps; accepted: {ACCEPTED}")
    if len(values) > MAX_POINTS:
        raise ValueError(f"'{name.strip()}' names {len(values)} eps values; the limit is {MAX_POINTS}")
    return kind, steps, tuple(values)


def canonical(kind: str, steps: int, values: Sequence[float]) -> str:
    """The result key: 'pgd20@0.05,0.1,0.15' (eps as decimals, in order)."""
    head = "fgsm" if kind == "fgsm" else f"{kind}{steps}"
    return f"{head}@" + ",".join(f"{v:.6g}" for v in values)


def attack_at(kind: str, steps: int) -> Callable[[float], Attack]:
    return lambda e: ATTACKS[kind].make(e, steps)


def correct_by_eps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, values: Sequence[float],
                   attack: Callable[[float], Attack], *, batch_size: int = 128,
                   task: Task | None = None) -> dict[float, torch.Tensor]:
    """{eps: bool [N]} of `model` under attack(eps) for every eps (the checks' sweep uses it too)."""
    return {e: correct_under(model, x, y, attack(e), batch_size=batch_size, task=task) for e in values}


def sweep_record(model: nn.Module, x: torch.Tensor, y: torch.Tensor, name: str, *, batch_size: int = 128,
                 progress=None) -> dict:
    """The eval.json record of a sweep: eps, accuracy per eps, per-image correctness per eps, settings."""
    from part.evaluation.accuracy import SILENT

    kind, steps, values = parse_sweep(name)
    progress = progress or SILENT
    t0 = time.time()
    with progress.task(canonical(kind, steps, values), len(values) * len(x)) as task:
        found = correct_by_eps(model, x, y, values, attack_at(kind, steps), batch_size=batch_size, task=task)
    return {"sweep": True, "attack": kind, "eps": list(values), "accuracies": [fraction(found[e]) for e in values],
            "n": len(x), "seconds": round(time.time() - t0, 3),
            "correct": [[int(c) for c in found[e].tolist()] for e in values],
            "params": {"steps": steps, "step_size": "eps/4" if kind != "fgsm" else "eps",
                       "random_start": kind == "pgd"}}
