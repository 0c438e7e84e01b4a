"""Section 3.3's toy model: how per-pixel budgets shape the optimal perturbation of a two-pixel input.

Zhang et al., "Improving Accuracy-robustness Trade-off via Pixel Reweighted Adversarial Training",
ICML 2024, Section 3.3 (Eq. 5, Lemma 3.1, Theorem 3.2) and Appendix F. A linear model
f(x) = w1 x1 + w2 x2 + b with the square loss (y - f(x))^2 is attacked by Delta = [d1, d2] with
|d1| <= eps1 and |d2| <= eps2. With the residual r = y - f(x):

- the loss under attack is (r - w1 d1 - w2 d2)^2, a convex function of Delta, so its maximum over the
  box is at a corner (Lemma 3.1's case ii): d_i* = -sign(r) sign(w_i) eps_i, and the maximum is
  (|r| + |w1| eps1 + |w2| eps2)^2 (Appendix F: L = -(y - f(x) - w1 eps1 - w2 eps2)^2);
- Theorem 3.2's case (iii) points hold one coordinate at its bound and solve for the other,
  e.g. d2 = (r - w1 eps1) / w2 subject to d1 = eps1; there the residual is zero;
- d(max loss)/d eps_i = 2 |w_i| (|r| + |w1| eps1 + |w2| eps2): a pixel's budget moves the loss under
  attack in proportion to its weight, so lowering eps on a low-weight pixel costs the attack little.

Pure Python (no torch), so a service can answer it instantly:

    two_pixel(x1=0.5, x2=0.5, w1=2.0, w2=0.5, b=0.0, y=1.0, eps1=0.1, eps2=0.1)
"""

from __future__ import annotations

import math

LIMITS = {"x1": (-10.0, 10.0), "x2": (-10.0, 10.0), "w1": (-100.0, 100.0), "w2": (-100.0, 100.0),
          "b": (-100.0, 100.0), "y": (-100.0, 100.0), "eps1": (0.0, 1.0), "eps2": (0.0, 1.0)}
MAX_GRID = 201


def json_ready(value):
    """`value` with every non-finite float as the text "inf", "-inf" or "nan": JSON has no such numbers
    (they would be written as null, which reads as "no value"). Case (iii)'s free coordinate is infinite
    where its weight is so small that solving for it overflows."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def _checked(values: dict[str, float]) -> dict[str, float]:
    out = {}
    for name, value in values.items():
        lo, hi = LIMITS[name]
        v = float(value)
        if not math.isfinite(v) or not lo <= v <= hi:
            raise ValueError(f"{name} = {value!r} is not accepted; accepted: a finite number in [{lo:g}, {hi:g}]")
        out[name] = v
    return out


def _sign(v: float) -> float:
    """sign with sign(0) = +1: at r = 0 or w = 0 every corner is optimal and this picks one."""
    return -1.0 if v < 0 else 1.0


def loss(r: float, w1: float, w2: float, d1: float, d2: float) -> float:
    """The square loss after the perturbation: (y - f(x + Delta))^2 = (r - w1 d1 - w2 d2)^2."""
    return (r - w1 * d1 - w2 * d2) ** 2


def optimal_perturbation(r: float, w1: float, w2: float, eps1: float, eps2: float) -> tuple[float, float]:
    """The maximiser of the loss over the box: the corner that pushes the residual away from zero."""
    return -_sign(r) * _sign(w1) * eps1, -_sign(r) * _sign(w2) * eps2


def worst_loss(r: float, w1: float, w2: float, eps1: float, eps2: float) -> float:
    """max over the box of the loss: (|r| + |w1| eps1 + |w2| eps2)^2."""
    return (abs(r) + abs(w1) * eps1 + abs(w2) * eps2) ** 2


def case_iii(r: float, w1: float, w2: float, eps1: float, eps2: float) -> list[dict]:
    """Theorem 3.2's four expressions: one coordinate at a bound, the other solved for; each says whether
    it lies inside the other coordinate's budget (else it is not a feasible point)."""
    points = []
    for fixed, sign in (("d1", 1), ("d1", -1), ("d2", 1), ("d2", -1)):
        if fixed == "d1":
            d1 = sign * eps1
            d2 = (r - w1 * d1) / w2 if w2 else None
            free, bound = d2, eps2
        else:
            d2 = sign * eps2
            d1 = (r - w2 * d2) / w1 if w1 else None
            free, bound = d1, eps1
        points.append({"fixed": fixed, "at": sign, "delta1": d1, "delta2": d2,
                       "feasible": free is not None and abs(free) <= bound + 1e-12,
                       "loss": None if free is None else loss(r, w1, w2, d1, d2)})
    return points


def _grid(lo: float, hi: float, n: int) -> list[float]:
    return [lo + (hi - lo) * i / (n - 1) for i in range(n)] if hi > lo else [lo]


def two_pixel(*, x1: float, x2: float, w1: float, w2: float, b: float, y: float, eps1: float, eps2: float,
              grid: int = 41) -> dict:
    """Everything the Theory page draws, JSON-ready.

    Returns {"inputs", "f", "residual", "clean_loss", "optimal": {"delta1", "delta2", "loss"},
    "corners": [{"delta1", "delta2", "loss"}] * 4, "case_iii": [...], "sensitivity": {"eps1", "eps2"}
    (d worst loss / d eps_i), "landscape": {"delta1": [...], "delta2": [...], "loss": [[...]]} over the
    box (rows follow delta2), "tradeoff": {"budget": [0..1], "lower_eps1": [...], "lower_eps2": [...]}
    (the worst loss when one pixel's budget is scaled by `budget` and the other's kept)}.
    """
    v = _checked({"x1": x1, "x2": x2, "w1": w1, "w2": w2, "b": b, "y": y, "eps1": eps1, "eps2": eps2})
    if not 2 <= int(grid) <= MAX_GRID:
        raise ValueError(f"grid = {grid!r} is not accepted; accepted: an integer in [2, {MAX_GRID}]")
    w1, w2, e1, e2 = v["w1"], v["w2"], v["eps1"], v["eps2"]
    f = w1 * v["x1"] + w2 * v["x2"] + v["b"]
    r = v["y"] - f
    d1, d2 = optimal_perturbation(r, w1, w2, e1, e2)
    top = worst_loss(r, w1, w2, e1, e2)
    corners = [{"delta1": s1 * e1, "delta2": s2 * e2, "loss": loss(r, w1, w2, s1 * e1, s2 * e2)}
               for s1 in (1, -1) for s2 in (1, -1)]
    grow = 2 * (abs(r) + abs(w1) * e1 + abs(w2) * e2)
    g1, g2 = _grid(-e1, e1, int(grid)), _grid(-e2, e2, int(grid))
    scales = _grid(0.0, 1.0, 21)
    return {
        "inputs": v, "f": f, "residual": r, "clean_loss": r * r,
        "optimal": {"delta1": d1, "delta2": d2, "loss": top},
        "corners": corners,
        "case_iii": case_iii(r, w1, w2, e1, e2),
        "sensitivity": {"eps1": abs(w1) * grow, "eps2": abs(w2) * grow},
        "landscape": {"delta1": g1, "delta2": g2, "loss": [[loss(r, w1, w2, a, c) for a in g1] for c in g2]},
        "tradeoff": {"budget": scales, "lower_eps1": [worst_loss(r, w1, w2, s * e1, e2) for s in scales],
                     "lower_eps2": [worst_loss(r, w1, w2, e1, s * e2) for s in scales]},
    }
