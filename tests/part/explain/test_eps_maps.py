"""Tests for part.explain.eps_maps: every eps-map recipe on hand-written CAMs, bounds, controls and errors."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from part.explain.eps_maps import (MASK_RECIPES, QUADRANTS, RECIPES, check_recipe_dataset, eps_map, importance,
                                    importance_scale, mask_stats, recipe_options)

EPS, LOW = 0.5, 0.25  # exact in binary, so expected maps compare with torch.equal
H, L = EPS, LOW

# A 4x4 CAM with mean 5.6 / 16 = 0.35, so w = cam / 0.35 and w > 1 exactly where cam > 0.35.
CAM = torch.tensor([[[0.0, 0.1, 0.2, 0.3],
                     [0.4, 0.5, 0.6, 0.7],
                     [0.8, 0.9, 1.0, 0.0],
                     [0.0, 0.0, 0.0, 0.1]]])
CAM_MEAN = 0.35


def test_hand_cam_mean():
    assert float(CAM.mean()) == pytest.approx(CAM_MEAN, abs=1e-7)


# --- paper ----------------------------------------------------------------------------------------

def test_paper_threshold_one():
    expected = torch.tensor([[L, L, L, L],
                             [H, H, H, H],
                             [H, H, H, L],
                             [L, L, L, L]])
    out = eps_map(CAM, eps=EPS, eps_low=LOW, recipe="paper")
    assert out.shape == (1, 1, 4, 4) and out.dtype == torch.float32
    assert torch.equal(out[0, 0], expected)


def test_paper_custom_threshold():
    # w > 1.5  <=>  cam > 0.525
    expected = torch.tensor([[L, L, L, L],
                             [L, L, H, H],
                             [H, H, H, L],
                             [L, L, L, L]])
    out = eps_map(CAM, eps=EPS, eps_low=LOW, recipe="paper", threshold=1.5)
    assert torch.equal(out[0, 0], expected)
    # w > 0.5  <=>  cam > 0.175: the 0.2 and 0.3 pixels join
    out = eps_map(CAM, eps=EPS, eps_low=LOW, recipe="paper", threshold=0.5)
    assert int((out == H).sum()) == 9


def test_paper_is_scale_invariant_and_per_image():
    cams = torch.stack([CAM[0], CAM[0] * 0.01])
    out = eps_map(cams, eps=EPS, eps_low=LOW, recipe="paper")
    assert torch.equal(out[0], out[1])


def test_paper_on_an_all_zero_cam_gives_eps_low():
    out = eps_map(torch.zeros(2, 3, 3), eps=EPS, eps_low=LOW)
    assert bool(torch.isfinite(out).all()) and bool((out == LOW).all())


# --- reference ------------------------------------------------------------------------------------

def _reference_by_hand(cam: np.ndarray) -> np.ndarray:
    """jet(cam^2) -> RGB [B,3,H,W]; z-score over all RGB values of an image; z > 1 gets eps."""
    rgb = matplotlib.colormaps["jet"](cam.astype(np.float64) ** 2)[..., :3].transpose(0, 3, 1, 2)
    flat = rgb.reshape(len(rgb), -1)
    z = (flat - flat.mean(1, keepdims=True)) / flat.std(1, ddof=1, keepdims=True)
    return np.where(z > 1, EPS, LOW).reshape(rgb.shape)


def test_reference_hand_cam_rgb_and_grey():
    expected = _reference_by_hand(CAM.numpy())
    rgb = eps_map(CAM, eps=EPS, eps_low=LOW, recipe="reference", channels=3)
    assert rgb.shape == (1, 3, 4, 4)
    np.testing.assert_array_equal(rgb.numpy(), expected)
    assert not np.array_equal(expected[:, 0], expected[:, 2])  # really per channel
    grey = eps_map(CAM, eps=EPS, eps_low=LOW, recipe="reference", channels=1)
    assert grey.shape == (1, 1, 4, 4)
    np.testing.assert_allclose(grey.numpy(), expected.mean(1, keepdims=True), atol=1e-7)


def test_reference_is_not_monotone_in_the_cam():
    # The CAM peak (1.0) is dark red in jet: not every channel of it gets the full eps.
    rgb = eps_map(CAM, eps=EPS, eps_low=LOW, recipe="reference", channels=3)
    assert float(rgb[0, :, 2, 2].min()) == LOW


def test_reference_colour_lookup_is_matplotlibs():
    # cam 0.1 -> v = 0.01: jet(v) is table entry floor(2.56) = 2 (round(255 v) would read entry 3),
    # which moves the z-scores enough to flip the blue channel of the cam-0 pixel.
    cam = torch.tensor([[[0.2, 0.1], [0.2, 0.0]]])
    got = eps_map(cam, eps=EPS, eps_low=LOW, recipe="reference", channels=3)
    np.testing.assert_array_equal(got.numpy(), _reference_by_hand(cam.numpy()))


def test_reference_matches_matplotlib_jet_on_random_cams():
    # matplotlib's jet of a float v reads entry floor(256 v) of its 256-entry table.
    g = torch.Generator().manual_seed(0)
    cams = torch.rand(40, 8, 8, generator=g)
    got = eps_map(cams, eps=EPS, eps_low=LOW, recipe="reference", channels=3)
    np.testing.assert_array_equal(got.numpy(), _reference_by_hand(cams.numpy()))


# --- soft masks -----------------------------------------------------------------------------------

def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


@pytest.mark.parametrize("tau", [10.0, 2.0])
def test_soft_values_by_hand(tau):
    out = eps_map(CAM, eps=EPS, eps_low=LOW, recipe="soft", tau=tau)[0, 0]
    for i in range(4):
        for j in range(4):
            w = float(CAM[0, i, j]) / CAM_MEAN
            assert float(out[i, j]) == pytest.approx(LOW + (EPS - LOW) * _sigmoid(tau * (w - 1)), abs=1e-6)


def test_soft_is_centred_and_reaches_the_range():
    mid = torch.tensor([[[0.0, 0.5], [0.5, 1.0]]])  # mean 0.5: the 0.5 pixels have w = 1
    out = eps_map(mid, eps=EPS, eps_low=LOW, recipe="soft")[0, 0]
    assert float(out[0, 1]) == pytest.approx((EPS + LOW) / 2, abs=1e-7)
    peak = torch.zeros(1, 4, 4)
    peak[0, 1, 2] = 1.0  # w = 16 at the peak, 0 elsewhere
    out = eps_map(peak, eps=EPS, eps_low=LOW, recipe="soft")
    assert float(out.min()) - LOW < 1e-3 * (EPS - LOW)
    assert EPS - float(out.max()) < 1e-3 * (EPS - LOW)


def test_soft_partpp_values_and_floor():
    out = eps_map(CAM, eps=EPS, eps_low=LOW, recipe="soft-partpp")[0, 0]
    for i in range(4):
        for j in range(4):
            s = _sigmoid(10.0 * float(CAM[0, i, j]) / CAM_MEAN)
            assert float(out[i, j]) == pytest.approx(s * EPS + (1 - s) * LOW, abs=1e-6)
    assert float(out[0, 0]) == pytest.approx((EPS + LOW) / 2, abs=1e-7)  # cam = 0 sits at the floor
    g = torch.Generator().manual_seed(3)
    many = eps_map(torch.rand(8, 6, 6, generator=g), eps=EPS, eps_low=LOW, recipe="soft-partpp")
    assert float(many.min()) >= (EPS + LOW) / 2 - 1e-7


# --- quadrant and the controls --------------------------------------------------------------------

QUADRANT_MAPS = {
    "ul": [[L, L, H, H], [L, L, H, H], [H, H, H, H], [H, H, H, H]],
    "ur": [[H, H, L, L], [H, H, L, L], [H, H, H, H], [H, H, H, H]],
    "bl": [[H, H, H, H], [H, H, H, H], [L, L, H, H], [L, L, H, H]],
    "br": [[H, H, H, H], [H, H, H, H], [H, H, L, L], [H, H, L, L]],
}


@pytest.mark.parametrize("q", QUADRANTS)
def test_quadrant(q):
    cams = torch.rand(2, 4, 4)
    out = eps_map(cams, eps=EPS, eps_low=LOW, recipe="quadrant", quadrant=q)
    assert out.shape == (2, 1, 4, 4)
    expected = torch.tensor(QUADRANT_MAPS[q])
    assert torch.equal(out[0, 0], expected) and torch.equal(out[1, 0], expected)


def test_quadrant_default_and_bad_name():
    assert torch.equal(eps_map(CAM, eps=EPS, eps_low=LOW, recipe="quadrant")[0, 0], torch.tensor(QUADRANT_MAPS["br"]))
    with pytest.raises(ValueError, match="unknown quadrant 'mid'; accepted: ul, ur, bl, br"):
        eps_map(CAM, eps=EPS, eps_low=LOW, recipe="quadrant", quadrant="mid")


def test_shuffled_is_the_paper_map_of_the_rolled_batch():
    g = torch.Generator().manual_seed(4)
    cams = torch.rand(3, 6, 6, generator=g)
    paper = eps_map(cams, eps=EPS, eps_low=LOW, recipe="paper", threshold=1.2)
    out = eps_map(cams, eps=EPS, eps_low=LOW, recipe="shuffled", threshold=1.2)
    for i in range(3):
        assert torch.equal(out[i], paper[(i - 1) % 3])
    assert not torch.equal(out, paper)  # placement really moves


def test_uniform_mean_keeps_the_budget_and_drops_the_placement():
    out = eps_map(CAM, eps=EPS, eps_low=LOW, recipe="uniform-mean")
    assert out.shape == (1, 1, 4, 4)
    expected = (7 * EPS + 9 * LOW) / 16
    assert torch.allclose(out, torch.full_like(out, expected), atol=1e-7)
    g = torch.Generator().manual_seed(5)
    cams = torch.rand(3, 5, 5, generator=g)
    paper = eps_map(cams, eps=EPS, eps_low=LOW, recipe="paper")
    out = eps_map(cams, eps=EPS, eps_low=LOW, recipe="uniform-mean")
    for i in range(3):
        assert torch.allclose(out[i], paper[i].mean().expand_as(out[i]), atol=1e-7)


# --- oracle: the dataset's exact object mask --------------------------------------------------------

def test_oracle_puts_full_eps_exactly_on_the_object_and_ignores_the_cam():
    mask = torch.tensor([[[True, False], [False, True]], [[False, False], [True, True]]])
    out = eps_map(None, eps=EPS, eps_low=LOW, recipe="oracle", object_mask=mask)
    assert out.shape == (2, 1, 2, 2) and out.dtype == torch.float32
    assert torch.equal(out[:, 0], torch.where(mask, H, L))
    # a CAM given beside the mask changes nothing; a 0/1 float mask (a cropped cache) reads the same
    assert torch.equal(eps_map(torch.rand(2, 2, 2), eps=EPS, eps_low=LOW, recipe="oracle", object_mask=mask), out)
    assert torch.equal(eps_map(None, eps=EPS, eps_low=LOW, recipe="oracle", object_mask=mask.half()), out)
    assert recipe_options("oracle") == {} and "oracle" in MASK_RECIPES


def test_oracle_without_object_masks_is_refused_naming_the_datasets_that_have_them():
    with pytest.raises(ValueError, match="exact object mask.*fashion-mnist-clutter"):
        eps_map(CAM, eps=EPS, eps_low=LOW, recipe="oracle")
    with pytest.raises(ValueError, match="object_mask must be \\[B,H,W\\]"):
        eps_map(None, eps=EPS, eps_low=LOW, recipe="oracle", object_mask=torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="dataset 'cifar10' gives none; accepted datasets for it: fashion-mnist-clutter"):
        check_recipe_dataset("oracle", "cifar10")
    check_recipe_dataset("oracle", "fashion-mnist-clutter")
    check_recipe_dataset("paper", "cifar10")  # the CAM recipes run anywhere


# --- all recipes: bounds --------------------------------------------------------------------------

CAMS = hnp.arrays(np.float32, hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=6),
                  elements=st.floats(0, 1, width=32))


@settings(max_examples=40, deadline=None)
@given(cam=CAMS, eps=st.floats(0.001, 0.5), frac=st.floats(0, 1), channels=st.sampled_from([1, 3]))
def test_every_recipe_stays_in_bounds(cam, eps, frac, channels):
    eps_low = eps * frac
    t = torch.from_numpy(cam)
    for recipe in RECIPES:
        out = eps_map(t, eps=eps, eps_low=eps_low, recipe=recipe, channels=channels, object_mask=t > 0.5)
        b, h, w = t.shape
        assert out.shape[0] == b and out.shape[2:] == (h, w)
        assert out.shape[1] == (3 if recipe == "reference" and channels == 3 else 1)
        assert bool(torch.isfinite(out).all())
        assert float(out.min()) >= eps_low - 1e-6 and float(out.max()) <= eps + 1e-6, recipe


# --- stats and errors -----------------------------------------------------------------------------

def test_mask_stats_on_a_known_map():
    emap = torch.tensor([[[[L, H], [H, H]]]])
    stats = mask_stats(emap, EPS)
    assert stats["full_eps_fraction"] == 0.75
    assert stats["mean_eps_ratio"] == pytest.approx((L + 3 * H) / 4 / EPS)


def test_mask_stats_counts_float32_eps_as_full():
    eps, low = 8 / 255, 7 / 255
    emap = eps_map(CAM, eps=eps, eps_low=low, recipe="paper")
    stats = mask_stats(emap, eps)
    assert stats["full_eps_fraction"] == 7 / 16
    assert stats["mean_eps_ratio"] == pytest.approx((7 * eps + 9 * low) / 16 / eps, rel=1e-6)


def test_unknown_recipe_lists_accepted():
    with pytest.raises(ValueError, match="unknown mask recipe 'gauss'") as err:
        eps_map(CAM, eps=EPS, eps_low=LOW, recipe="gauss")
    for name in RECIPES:
        assert name in str(err.value)


def test_unknown_option_lists_accepted():
    with pytest.raises(ValueError, match="recipe 'soft' has no option threshold; accepted: tau"):
        eps_map(CAM, eps=EPS, eps_low=LOW, recipe="soft", threshold=1.0)
    with pytest.raises(ValueError, match="recipe 'reference' has no option tau; accepted: none"):
        eps_map(CAM, eps=EPS, eps_low=LOW, recipe="reference", tau=1.0)


def test_recipe_options():
    assert recipe_options("paper") == {"threshold": 1.0}
    assert recipe_options("soft") == {"tau": 10.0}
    assert recipe_options("quadrant") == {"quadrant": "br"}
    assert recipe_options("reference") == {}


def test_cam_must_be_three_dimensional():
    with pytest.raises(ValueError, match=r"cam must be \[B,H,W\], got shape \(1, 1, 4, 4\)"):
        eps_map(CAM[:, None], eps=EPS, eps_low=LOW)


def peaked_cam() -> torch.Tensor:
    """An attention-rollout-like map: one token far above a spread of middling ones, min-max scaled."""
    cam = torch.linspace(0, 0.2, 64).reshape(1, 8, 8)
    cam[0, 3, 4] = 1.0
    return cam


@pytest.mark.parametrize("recipe", ["paper", "shuffled", "uniform-mean"])
@pytest.mark.parametrize("threshold", [1.0, 0.7])
def test_importance_crosses_the_middle_where_the_paper_mask_switches_to_eps(recipe, threshold):
    cam = peaked_cam()
    full = eps_map(cam, eps=EPS, eps_low=LOW, recipe="paper", threshold=threshold)[:, 0] == EPS
    assert 10 < int(full.sum()) < 60
    assert int((full & (cam < 0.5)).sum()) > 5  # drawn min-max, these full-eps pixels look unimportant
    shown = importance(cam, recipe=recipe, threshold=threshold)
    assert torch.equal(shown > 0.5, full)
    k = int(full.sum())  # the k brightest pixels of what is drawn are the mask's full-eps pixels
    top = torch.zeros(64, dtype=torch.bool)
    top[shown.flatten().argsort(descending=True)[:k]] = True
    assert torch.equal(top.view_as(full), full)
    assert float(shown.min()) >= 0 and float(shown.max()) == 1


def test_importance_of_soft_is_centred_with_the_sigmoid_and_reference_reads_cam_squared():
    cam = peaked_cam()
    soft = eps_map(cam, eps=EPS, eps_low=LOW, recipe="soft", tau=10.0)[:, 0]
    assert torch.equal(importance(cam, recipe="soft", tau=10.0) > 0.5, soft > (EPS + LOW) / 2)
    assert torch.allclose(importance(cam, recipe="reference"), cam ** 2)
    assert torch.equal(importance(cam, recipe="quadrant", quadrant="ul"), cam)
    with pytest.raises(ValueError, match="accepted: tau"):
        importance(cam, recipe="soft", threshold=1.0)


def test_importance_scale_names_the_threshold():
    assert "w = 0.7" in importance_scale("paper", threshold=0.7) and "1.4" in importance_scale("paper", threshold=0.7)
    assert "cam²" in importance_scale("reference")
