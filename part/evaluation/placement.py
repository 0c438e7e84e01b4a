"""Does the place of the budget matter on this dataset? PGD-K with the budget put on the object, off it,
everywhere, PART's way and the other way round, on the same images, each paired with PART's placement.

PART (Zhang et al., ICML 2024) gives the pixels a CAM marks the full eps and the others eps_low. How much
that can change is bounded by the dataset, before any CAM is involved: with each test image's exact
object mask (fashion-mnist-clutter gives it; Fashion-MNIST's is the pixels brighter than 0.1) the
attack `placement` runs PGD-K (step eps/4, random start, as PGD-20 in Table 1) under five budgets:

- everywhere:      eps on every pixel (the scalar threat model);
- part_like:       eps on the object, eps_low off it (PART's placement with a perfect mask; the reference);
- inverted:        eps_low on the object, eps off it (the same idea, placed wrongly);
- object_only:     eps on the object, nothing off it;
- off_object_only: nothing on the object, eps off it.

Every case starts from the same random noise, so the cases differ only in their budget, and each is
compared with part_like image by image: the difference in points, the exact McNemar p
(part.evaluation.reports.mcnemar) and the 95 % interval of the paired difference. share_of_full_loss says
how much of the full attack's loss (clean minus everywhere) a case causes: object_only's share is how
much of the attackable robustness sits on the object.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from part.attacks import pgd
from part.evaluation.accuracy import Task, correct_under, fraction, model_device, predict, seeded

CASES = {
    "everywhere": "eps on every pixel",
    "part_like": "eps on the object, eps_low off it",
    "inverted": "eps_low on the object, eps off it",
    "object_only": "eps on the object, nothing off it",
    "off_object_only": "nothing on the object, eps off it",
}
REFERENCE = "part_like"
DEFAULT_STEPS = 20
DEFAULT_LOW_RATIO = 7 / 8  # the paper's eps_low / eps (7/255 of 8/255) where no run says otherwise


def budgets(eps: float, eps_low: float) -> dict[str, tuple[float, float]]:
    """(budget on the object, budget off it) of every case."""
    return {"everywhere": (eps, eps), "part_like": (eps, eps_low), "inverted": (eps_low, eps),
            "object_only": (eps, 0.0), "off_object_only": (0.0, eps)}


def budget_map(mask: torch.Tensor, on: float, off: float) -> torch.Tensor:
    """[N,1,H,W] float32: `on` where mask [N,H,W] is set, `off` elsewhere."""
    return torch.where(mask.bool(), on, off)[:, None].float()


def paired(correct: torch.Tensor, reference: torch.Tensor) -> dict:
    """The difference to the reference in points, its exact McNemar p and the half-width of the 95 % interval of
    the paired difference (part.evaluation.reports.paired_difference)."""
    from part.evaluation.reports import paired_difference

    d = paired_difference(correct.int().tolist(), reference.int().tolist())
    return {"delta_points": d["delta_points"], "p": d["p"], "ci95_points": d["ci95_points"],
            "only_case": d["only_a"], "only_reference": d["only_b"]}


def placement(model: nn.Module, x: torch.Tensor, y: torch.Tensor, masks: torch.Tensor, *, eps: float,
              eps_low: float, steps: int = DEFAULT_STEPS, batch_size: int = 128, seed: int = 0,
              task: Task | None = None, object_mask: str = "") -> dict:
    """The five placements of the budget on images x [N,C,H,W] with object masks [N,H,W] (bool).

    Returns {"eps", "eps_low", "steps", "step_size", "random_start", "n", "object_mask", "object_fraction",
    "reference", "clean": {"accuracy", "correct"}, "cases": {case: {"accuracy", "correct", "on_object",
    "off_object", "mean_budget", "share_of_full_loss", and against part_like "delta_points", "p",
    "ci95_points", "only_case", "only_reference"}}, "seconds"}.
    """
    if masks.shape != (x.shape[0], *x.shape[2:]):
        raise ValueError(f"object masks {tuple(masks.shape)} do not fit images {tuple(x.shape)}")
    if not 0 < eps <= 1 or not 0 <= eps_low <= eps:
        raise ValueError(f"placement needs 0 <= eps_low <= eps <= 1 and eps > 0, got eps = {eps:g}, eps_low = {eps_low:g}")
    masks = masks.bool().cpu()
    device, t0 = model_device(model), time.time()
    step = eps / 4
    clean = correct_under(model, x, y, batch_size=batch_size)
    correct: dict[str, torch.Tensor] = {}
    for case, (on, off) in budgets(eps, eps_low).items():
        emap = budget_map(masks, on, off)
        out = []
        with seeded(seed, device):  # the same random start in every case: they differ only in the budget
            for s in range(0, len(x), batch_size):
                xb, yb, eb = (t[s:s + batch_size].to(device) for t in (x, y, emap))
                out.append((predict(model, pgd(model, xb, yb, eps=eb, step_size=step, steps=steps)) == yb).cpu())
                if task is not None:
                    task.update(len(xb))
        correct[case] = torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)
    fraction_on = float(masks.flatten(1).float().mean()) if len(masks) else 0.0
    full_loss = fraction(clean) - fraction(correct["everywhere"])
    cases = {}
    for case, (on, off) in budgets(eps, eps_low).items():
        acc = fraction(correct[case])
        rec = {"accuracy": acc, "correct": [int(c) for c in correct[case].tolist()], "on_object": on,
               "off_object": off, "mean_budget": on * fraction_on + off * (1 - fraction_on),
               "share_of_full_loss": (fraction(clean) - acc) / full_loss if full_loss > 0 else None}
        if case != REFERENCE:
            rec.update(paired(correct[case], correct[REFERENCE]))
        cases[case] = rec
    return {"eps": eps, "eps_low": eps_low, "steps": steps, "step_size": step, "random_start": True, "n": len(x),
            "object_mask": object_mask, "object_fraction": fraction_on, "reference": REFERENCE,
            "clean": {"accuracy": fraction(clean), "correct": [int(c) for c in clean.tolist()]},
            "cases": cases, "seconds": round(time.time() - t0, 3)}
