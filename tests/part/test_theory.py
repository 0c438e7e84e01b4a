"""Section 3.3's two-pixel linear model: hand-computed values, the theorem's expressions, and no torch."""

from __future__ import annotations

import itertools
import random
import subprocess
import sys

import pytest

from part.theory import case_iii, two_pixel, worst_loss

# x = [0.5, 0.5], w = [2, 0.5], b = 0, y = 1, eps1 = eps2 = 0.1:
# f(x) = 1.25, r = y - f(x) = -0.25; the attack pushes the residual further from zero with d = [+0.1, +0.1]:
# (y - f(x) - w1 eps1 - w2 eps2)^2 = (-0.25 - 0.2 - 0.05)^2 = 0.25.
HAND = dict(x1=0.5, x2=0.5, w1=2.0, w2=0.5, b=0.0, y=1.0, eps1=0.1, eps2=0.1)


def test_hand_computed_example():
    out = two_pixel(**HAND)
    assert out["f"] == pytest.approx(1.25) and out["residual"] == pytest.approx(-0.25)
    assert out["clean_loss"] == pytest.approx(0.0625)
    assert (out["optimal"]["delta1"], out["optimal"]["delta2"]) == pytest.approx((0.1, 0.1))
    assert out["optimal"]["loss"] == pytest.approx(0.25)
    # d worst / d eps_i = 2 |w_i| (|r| + |w1| eps1 + |w2| eps2) = 2 |w_i| * 0.5
    assert out["sensitivity"] == pytest.approx({"eps1": 2.0, "eps2": 0.5})
    # lowering eps2 to 0 keeps (0.25 + 0.2)^2 = 0.2025; lowering eps1 to 0 keeps only (0.25 + 0.05)^2 = 0.09
    assert out["tradeoff"]["lower_eps2"][0] == pytest.approx(0.2025)
    assert out["tradeoff"]["lower_eps1"][0] == pytest.approx(0.09)
    assert out["tradeoff"]["lower_eps1"][-1] == out["tradeoff"]["lower_eps2"][-1] == pytest.approx(0.25)


def test_theorem_3_2_expressions():
    points = case_iii(-0.25, 2.0, 0.5, 0.1, 0.1)
    # d2 = (y - f(x) - w1 eps1) / w2 subject to d1 = eps1: (-0.25 - 0.2) / 0.5 = -0.9, outside |d2| <= 0.1
    assert points[0] == {"fixed": "d1", "at": 1, "delta1": 0.1, "delta2": pytest.approx(-0.9), "feasible": False,
                         "loss": pytest.approx(0.0)}
    # d2 = (y - f(x) + w1 eps1) / w2 subject to d1 = -eps1: (-0.25 + 0.2) / 0.5 = -0.1, on the box
    assert points[1]["delta2"] == pytest.approx(-0.1) and points[1]["feasible"]
    # d1 = (y - f(x) - w2 eps2) / w1 subject to d2 = eps2: (-0.25 - 0.05) / 2 = -0.15
    assert points[2]["delta1"] == pytest.approx(-0.15) and not points[2]["feasible"]
    # d1 = (y - f(x) + w2 eps2) / w1 subject to d2 = -eps2: (-0.25 + 0.05) / 2 = -0.1
    assert points[3]["delta1"] == pytest.approx(-0.1) and points[3]["feasible"]
    assert case_iii(1.0, 1.0, 0.0, 0.1, 0.1)[0]["delta2"] is None  # w2 = 0: no expression


def test_the_optimum_is_the_best_point_of_the_box():
    rng = random.Random(0)
    for _ in range(50):
        p = dict(x1=rng.uniform(0, 1), x2=rng.uniform(0, 1), w1=rng.uniform(-3, 3), w2=rng.uniform(-3, 3),
                 b=rng.uniform(-1, 1), y=rng.choice([-1.0, 1.0]), eps1=rng.uniform(0, 0.3), eps2=rng.uniform(0, 0.3))
        out = two_pixel(**p, grid=21)
        best = max(itertools.chain.from_iterable(out["landscape"]["loss"]))
        assert out["optimal"]["loss"] == pytest.approx(best)  # the grid holds the corners
        assert out["optimal"]["loss"] == pytest.approx(max(c["loss"] for c in out["corners"]))
        assert out["optimal"]["loss"] >= out["clean_loss"]
        # the pixel with the larger |w| moves the worst loss more per unit of budget
        big, small = ("eps1", "eps2") if abs(p["w1"]) >= abs(p["w2"]) else ("eps2", "eps1")
        assert out["sensitivity"][big] >= out["sensitivity"][small]


def test_worst_loss_grows_with_each_budget_in_proportion_to_its_weight():
    h = 1e-6
    base = worst_loss(0.3, 2.0, 0.5, 0.1, 0.1)
    slope1 = (worst_loss(0.3, 2.0, 0.5, 0.1 + h, 0.1) - base) / h
    slope2 = (worst_loss(0.3, 2.0, 0.5, 0.1, 0.1 + h) - base) / h
    assert slope1 / slope2 == pytest.approx(4.0, rel=1e-4)


@pytest.mark.parametrize("bad, message", [({"eps1": -0.1}, "eps1 = -0.1"), ({"w2": float("nan")}, "w2 = nan"),
                                          ({"x1": 1e9}, "x1 = 1000000000.0")])
def test_bad_inputs_name_the_value_and_the_range(bad, message):
    with pytest.raises(ValueError, match=message) as err:
        two_pixel(**{**HAND, **bad})
    assert "accepted" in str(err.value)
    with pytest.raises(ValueError, match="grid"):
        two_pixel(**HAND, grid=1)


def test_the_module_does_not_import_torch():
    code = "import sys, part.theory; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
