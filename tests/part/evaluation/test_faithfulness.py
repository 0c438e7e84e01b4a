"""Alignment (CAM energy on the object) and faithfulness (ROAD via pytorch-grad-cam) as evaluation attacks."""

import math

import pytest
import torch
from torch import nn

from part.explain.alignment import energy_on_object, object_mask
from part.explain.cam import compute_cam
from part.evaluation.evaluate import evaluate, parse_attack
from part.evaluation.faithfulness import alignment, cam_settings, faithfulness, faithfulness_one
from part.evaluation.reports import cam_class_rows, cam_rows, markdown_report


class LeftHalf(nn.Module):
    """Class 0's logit is the mean of the left half of the image, class 1's a constant: only the left half matters."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)
        nn.init.ones_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def cam_layer(self):
        return self.conv

    def forward(self, x):
        a = self.conv(x)
        left = a[:, :, :, : x.shape[3] // 2].mean((1, 2, 3))
        return torch.stack([8 * left, torch.full_like(left, 2.0)], 1)


def _images(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=g) * 0.5 + 0.3
    x[:, :, :2] = 0.0  # a dark band: not the object
    return x, torch.zeros(n, dtype=torch.long)


def test_alignment_is_the_mean_energy_on_the_object_of_the_run_cams():
    model, (x, y) = LeftHalf(), _images()
    y[3:] = 1
    rec = alignment(model, x, y, "fashion-mnist", cam_settings({"cam_methods": ["gradcam"]}), batch_size=4,
                    classes=["left", "flat"])
    cams = compute_cam(model, x, y, "gradcam")
    energy = energy_on_object(cams, object_mask(x, "fashion-mnist"))
    valid = energy[~torch.isnan(energy)]
    assert rec["n"] == 6 and rec["cam_methods"] == ["gradcam"] and rec["cam_target"] == "label"
    assert rec["energy"] == pytest.approx(valid.mean().item(), abs=1e-5)
    assert rec["object_fraction"] == pytest.approx(0.75)  # the 2 dark rows of 8
    assert set(rec["per_class"]) == {"left", "flat"} and rec["per_class"]["left"]["n"] == 3
    assert len(rec["energy_per_image"]) == 6


def test_alignment_says_when_the_dataset_has_no_object_mask():
    rec = alignment(LeftHalf(), *_images(), "cifar10")
    assert rec["energy"] is None and "no object mask" in rec["note"]
    header, rows = cam_rows([{"label": "AT", "run": "/x/run-a", "epoch": 3, "attacks": {"alignment": rec}}])
    assert rows[0][header.index("Energy on object")] == "no object mask"


def test_road_ranks_a_map_of_the_pixels_the_model_uses_above_its_inverse():
    model = LeftHalf()
    x, y = _images(1)
    x[:, :, 2:] = 0.9
    true_map = torch.zeros(8, 8)
    true_map[:, :4] = torch.linspace(0.5, 1.0, 4)
    wrong_map = 1 - true_map
    good, bad = faithfulness_one(model, x, y, true_map), faithfulness_one(model, x, y, wrong_map)
    assert good["road_combined"] > bad["road_combined"]
    assert good["road_combined"] == pytest.approx((good["road_lerf"] - good["road_morf"]) / 2, abs=1e-6)
    assert faithfulness_one(model, x, y, true_map) == good  # seeded imputation noise: reproducible


def test_faithfulness_record_combines_morf_and_lerf_per_image():
    model, (x, y) = LeftHalf(), _images(5)
    rec = faithfulness(model, x, y, percentiles=(20, 50), batch_size=2)
    assert rec["n"] == 5 and rec["percentiles"] == [20, 50] and len(rec["road_combined_per_image"]) == 5
    assert rec["road_combined"] == pytest.approx((rec["road_lerf"] - rec["road_morf"]) / 2, abs=1e-5)
    assert math.isfinite(rec["cam_mult_change"])
    with pytest.raises(ValueError, match="percentiles"):
        faithfulness(model, x, y, percentiles=(0, 50))


def test_alignment_and_faithfulness_are_attacks_of_evaluate_and_land_in_the_reports():
    assert parse_attack("Alignment").kind == "alignment" and parse_attack("faithfulness").kind == "faithfulness"
    model, (x, y) = LeftHalf(), _images(4)
    out = evaluate(model, (x, y), ["alignment", "faithfulness"], eps=0.1,
                   cam={"cam_methods": ["gradcam", "layercam"], "cam_target": "label"})
    al, fa = out["attacks"]["alignment"], out["attacks"]["faithfulness"]
    assert al["kind"] == "alignment" and al["energy"] is None  # an (x, y) pair names no dataset: no mask
    assert fa["cam_methods"] == ["gradcam", "layercam"] and fa["n"] == 4
    result = {"label": "PART", "run": "/r/fmnist-part-s0", "epoch": 10, "eps": 0.1, "n": 4, "dataset": "d",
              "attacks": {**out["attacks"], "alignment": alignment(model, x, y, "fashion-mnist", fa)}}
    text = markdown_report([result])
    assert "CAM alignment and faithfulness" in text and "gradcam+layercam (label)" in text
    header, rows = cam_class_rows([result])
    assert header == ["Class", "PART (fmnist-part-s0)"] and rows[0][0] == "0"


def test_a_cam_layer_is_named_as_in_the_registry_or_as_a_module_path(small_cnn):
    from part.evaluation.faithfulness import cam_layer

    assert cam_layer(small_cnn, "features.1") is small_cnn.net.features[1]
    assert cam_layer(small_cnn, "net.features.0") is small_cnn.net.features[0]
    assert cam_layer(small_cnn, None) is None and cam_settings({})["cam_layer"] is None
    with pytest.raises(ValueError, match="no layer 'features.9' in the model; accepted: net, net.features"):
        cam_layer(small_cnn, "features.9")


def test_alignment_at_another_layer_uses_that_layers_maps(small_cnn):
    x, y = _images(4)
    x = torch.nn.functional.interpolate(x, size=28)
    masks = x[:, 0] > 0.5
    own = alignment(small_cnn, x, y, "d", None, masks=masks)
    early = alignment(small_cnn, x, y, "d", {"cam_layer": "features.0"}, masks=masks)
    expected = energy_on_object(compute_cam(small_cnn, x, y, "gradcam", small_cnn.net.features[0]), masks)
    assert early["cam_layer"] == "features.0" and own["cam_layer"] is None
    assert early["energy_per_image"] == [round(float(v), 4) for v in expected]
    assert early["energy_per_image"] != own["energy_per_image"]
