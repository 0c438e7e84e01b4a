"""CAM-object and CAM-CAM agreement numbers, against hand-computed values and scipy."""

import math

import pytest
import torch
from scipy.stats import spearmanr

from part.explain.alignment import energy_on_object, object_mask, spearman, top_k_iou


def test_object_mask_is_the_bright_pixels_for_fashion_mnist_and_unknown_elsewhere():
    x = torch.zeros(1, 1, 2, 2)
    x[0, 0, 0, 0], x[0, 0, 1, 1] = 0.5, 0.1  # 0.1 is not brighter than 0.1
    assert object_mask(x, "fashion-mnist").tolist() == [[[True, False], [False, False]]]
    assert object_mask(torch.rand(1, 3, 4, 4), "cifar10") is None
    assert object_mask(x, "no-such-dataset") is None


def test_energy_on_object_is_the_share_of_the_map_on_the_object():
    cam = torch.tensor([[[1.0, 3.0], [0.0, 4.0]]])
    mask = torch.tensor([[[True, False], [False, True]]])
    assert energy_on_object(cam, mask).item() == pytest.approx(5 / 8)
    assert math.isnan(energy_on_object(torch.zeros(1, 2, 2), mask).item())


def test_top_k_iou_by_hand():
    a = torch.tensor([[[4.0, 3.0], [2.0, 1.0]]])
    b = torch.tensor([[[4.0, 1.0], [3.0, 2.0]]])
    assert top_k_iou(a, b, 50).item() == pytest.approx(1 / 3)  # {0,1} vs {0,2}
    assert top_k_iou(a, a, 25).item() == 1.0
    with pytest.raises(ValueError, match="percent"):
        top_k_iou(a, b, 0)


def test_spearman_matches_scipy_and_is_nan_for_a_constant_map():
    torch.manual_seed(0)
    a, b = torch.rand(2, 5, 5), torch.rand(2, 5, 5)
    got = spearman(a, b)
    for i in range(2):
        assert got[i].item() == pytest.approx(spearmanr(a[i].flatten(), b[i].flatten()).statistic, abs=1e-6)
    assert math.isnan(spearman(torch.ones(1, 3, 3), a[:1, :3, :3]).item())
