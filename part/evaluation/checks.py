"""Gradient-masking checks: the five signs of obfuscated gradients, each with its numbers and a verdict.

Athalye, Carlini and Wagner, "Obfuscated Gradients Give a False Sense of Security", ICML 2018; run
for PART in Appendix H.3 of Zhang et al., ICML 2024:
  1. one-step attacks do not beat iterative ones (FGSM accuracy >= PGD-20 accuracy);
  2. black-box transfer from a surrogate is weaker than white-box (transfer accuracy >= PGD-20);
  3. an unbounded attack (eps = 1) succeeds on every image (accuracy 0);
  4. random sampling in the eps-ball finds no adversarial example where PGD-20 found none;
  5. accuracy falls as eps grows (PGD-20 at eps x 0.25, 0.5, 1, 2, 4 is non-increasing).
Accuracy comparisons allow a slack `tol` (a fraction of the images; 0.01 by default).
"""

from __future__ import annotations

import time

import torch
from torch import nn

from part.attacks.registry import fgsm_attack, pgd_attack
from part.evaluation.accuracy import (SILENT, Progress, correct_under, fraction, model_device, predict,
                                      transfer_attack)
from part.evaluation.eps_sweep import correct_by_eps

EPS_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)


def _check(cid: str, title: str, passed: bool | None, detail: str, **numbers) -> dict:
    return {"id": cid, "title": title, "passed": passed, "detail": detail, "numbers": numbers}


def random_sampling_breaks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float,
                           samples: int = 100, batch_size: int = 128, task=None) -> torch.Tensor:
    """Bool [N]: some of `samples` uniform points of the eps-ball (clipped to [0,1]) is misclassified."""
    device, found = model_device(model), []
    for s in range(0, len(x), batch_size):
        xb, yb = x[s:s + batch_size].to(device), y[s:s + batch_size].to(device)
        hit = torch.zeros(len(xb), dtype=torch.bool, device=device)
        for _ in range(samples):
            noisy = (xb + (torch.rand_like(xb) * 2 - 1) * eps).clamp(0, 1)
            hit |= predict(model, noisy) != yb
        found.append(hit.cpu())
        if task is not None:
            task.update(len(xb))
    return torch.cat(found) if found else torch.zeros(0, dtype=torch.bool)


def gradient_masking_checks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float,
                            surrogate: nn.Module | None = None, steps: int = 20, tol: float = 0.01,
                            random_samples: int = 100, unbounded_steps: int = 50, unbounded_step_size: float = 0.1,
                            eps_factors: tuple[float, ...] = EPS_FACTORS, batch_size: int = 128,
                            progress: Progress = SILENT) -> dict:
    """Run the five checks; "passed" is False when any check that ran failed."""
    t0, n = time.time(), len(x)
    runs = len(eps_factors) + 2 + (surrogate is not None) + 1  # sweep, FGSM, unbounded, transfer, sampling
    with progress.task("checks", runs * n) as task:
        def under(attack):
            return correct_under(model, x, y, attack, batch_size=batch_size, task=task)

        clean = correct_under(model, x, y, batch_size=batch_size)
        by_eps = correct_by_eps(model, x, y, [eps * f for f in eps_factors], lambda e: pgd_attack(e, steps),
                                batch_size=batch_size, task=task)
        sweep = {f: by_eps[eps * f] for f in eps_factors}
        pgd = sweep[1.0] if 1.0 in sweep else under(pgd_attack(eps, steps))
        fgsm = under(fgsm_attack(eps))
        unbounded = under(pgd_attack(1.0, unbounded_steps, step_size=unbounded_step_size, random_start=False))
        transfer = under(transfer_attack(surrogate, pgd_attack(eps, steps))) if surrogate is not None else None
        survivors = pgd.nonzero().flatten()
        broken = random_sampling_breaks(model, x[survivors], y[survivors], eps=eps, samples=random_samples,
                                        batch_size=batch_size, task=task)
    curve_eps = [0.0] + [eps * f for f in eps_factors]
    curve_acc = [fraction(clean)] + [fraction(sweep[f]) for f in eps_factors]
    checks = [
        _one_step(fraction(fgsm), fraction(pgd), tol, steps),
        _transfer(None if transfer is None else fraction(transfer), fraction(pgd), tol, steps),
        _unbounded(fraction(unbounded), tol, unbounded_steps),
        _random(int(broken.sum()), len(survivors), tol, random_samples),
        _monotone(curve_eps, curve_acc, tol),
    ]
    return {"accuracy": None, "n": n, "seconds": round(time.time() - t0, 3),
            "passed": all(c["passed"] is not False for c in checks), "checks": checks,
            "eps_curve": {"eps": curve_eps, "accuracy": curve_acc, "steps": steps},
            "params": {"eps": eps, "steps": steps, "tol": tol, "random_samples": random_samples,
                       "unbounded_steps": unbounded_steps, "unbounded_step_size": unbounded_step_size}}


def _one_step(fgsm: float, pgd: float, tol: float, steps: int) -> dict:
    ok = fgsm >= pgd - tol
    return _check("one_step", "one-step attack is not stronger than iterative", ok,
                  f"FGSM accuracy {fgsm:.2%} {'>=' if ok else '<'} PGD-{steps} accuracy {pgd:.2%}",
                  fgsm_accuracy=fgsm, pgd_accuracy=pgd)


def _transfer(transfer: float | None, pgd: float, tol: float, steps: int) -> dict:
    title = "transfer from a surrogate is weaker than white-box"
    if transfer is None:
        return _check("transfer", title, None, "skipped: no surrogate model given (--surrogate PATH)",
                      pgd_accuracy=pgd)
    ok = transfer >= pgd - tol
    return _check("transfer", title, ok,
                  f"transfer PGD-{steps} accuracy {transfer:.2%} {'>=' if ok else '<'} white-box {pgd:.2%}",
                  transfer_accuracy=transfer, pgd_accuracy=pgd)


def _unbounded(acc: float, tol: float, steps: int) -> dict:
    ok = acc <= tol
    return _check("unbounded", "unbounded attack (eps = 1) reaches 0% accuracy", ok,
                  f"PGD-{steps} at eps = 1 leaves {acc:.2%} accuracy" + ("" if ok else f" (> {tol:.0%})"),
                  accuracy=acc)


def _random(found: int, survivors: int, tol: float, samples: int) -> dict:
    ok = found <= tol * survivors
    return _check("random_sampling", "random sampling finds nothing where PGD failed", ok,
                  f"{samples} random points per image broke {found} of the {survivors} images that survived PGD",
                  found=found, survivors=survivors, samples=samples)


def _monotone(eps: list[float], acc: list[float], tol: float) -> dict:
    rises = [(eps[i], eps[i + 1]) for i in range(len(acc) - 1) if acc[i + 1] > acc[i] + tol]
    detail = "accuracy " + " >= ".join(f"{a:.2%}" for a in acc) + " as eps grows"
    if rises:
        detail = "accuracy rises from eps " + ", ".join(f"{a:.4g} to {b:.4g}" for a, b in rises)
    return _check("monotone_eps", "accuracy falls as eps grows", not rises, detail, eps=eps, accuracy=acc)
