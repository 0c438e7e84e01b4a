"""Tests for part.explain.cam: the CAM contract for every method, native vs pytorch-grad-cam, ensembles, layers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from part.explain.attention import ATTENTION_METHODS
from part.explain.cam import LIBRARY_METHODS, METHODS, NATIVE_METHODS, compute_cam, resolve_layer
from tests.conftest import grads_of, hook_counts, modes_of

SINGLE = [m for m in METHODS if m != "ensemble" and m not in ATTENTION_METHODS]  # the ViT ones: test_attention.py


def test_method_lists():
    assert set(SINGLE) == set(LIBRARY_METHODS)
    assert set(METHODS) == set(LIBRARY_METHODS) | set(ATTENTION_METHODS) | {"ensemble"}
    assert set(NATIVE_METHODS) == {"gradcam", "gradcam++", "xgradcam", "layercam", "hirescam"}
    assert "ensemble" in METHODS


# --- the contract, for every method ---------------------------------------------------------------

@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("method", SINGLE)
def test_cam_contract(small_cnn, fmnist_batch, method, training):
    x, y = fmnist_batch
    small_cnn.train(training)
    bn = small_cnn.net.features[0][1]
    running = bn.running_mean.clone()
    cam = compute_cam(small_cnn, x, y, method)
    assert cam.shape == (2, 28, 28)
    assert cam.dtype == torch.float32
    assert bool(torch.isfinite(cam).all())
    assert float(cam.min()) >= 0.0 and float(cam.max()) <= 1.0
    assert float(cam.max()) > 0.5  # min-max normalised: not an all-zero map
    assert modes_of(small_cnn) == {training}
    assert torch.equal(bn.running_mean, running)  # computed in eval mode: BN statistics untouched
    assert hook_counts(small_cnn) == {}
    assert grads_of(small_cnn) == []
    assert small_cnn.net.features[2] is resolve_layer(small_cnn, None)  # the layer put back (ablation)


@pytest.mark.parametrize("backend", ["native", "library"])
@pytest.mark.parametrize("method", sorted(NATIVE_METHODS))
def test_both_backends_leave_no_grads_hooks_or_mode(small_cnn, fmnist_batch, method, backend):
    x, y = fmnist_batch
    small_cnn.train()
    cam = compute_cam(small_cnn, x, y, method, backend=backend)
    assert cam.shape == (2, 28, 28)
    assert grads_of(small_cnn) == []
    assert hook_counts(small_cnn) == {}
    assert modes_of(small_cnn) == {True}


def test_input_is_not_modified_and_gets_no_grad(small_cnn, fmnist_batch):
    x, y = fmnist_batch
    before = x.clone()
    compute_cam(small_cnn, x, y, "gradcam")
    assert torch.equal(x, before)
    assert x.grad is None and not x.requires_grad


def test_frozen_weights_still_give_a_cam(small_cnn, fmnist_batch):
    x, y = fmnist_batch
    for p in small_cnn.parameters():
        p.requires_grad_(False)
    cam = compute_cam(small_cnn, x, y, "gradcam", backend="native")
    assert cam.shape == (2, 28, 28) and float(cam.max()) > 0.5


# --- native path against pytorch-grad-cam ---------------------------------------------------------

@pytest.mark.parametrize("use_labels", [True, False], ids=["labels", "predicted"])
@pytest.mark.parametrize("method", sorted(NATIVE_METHODS))
def test_native_matches_library(small_cnn, method, use_labels):
    g = torch.Generator().manual_seed(2)
    x = torch.rand(4, 1, 28, 28, generator=g)
    targets = torch.tensor([0, 4, 9, 2]) if use_labels else None
    native = compute_cam(small_cnn, x, targets, method, backend="native")
    library = compute_cam(small_cnn, x, targets, method, backend="library")
    assert native.shape == library.shape == (4, 28, 28)
    assert float(native.std()) > 0.05  # a map with structure, so the comparison means something
    assert float((native - library).abs().max()) < 1e-4


def test_predicted_class_is_the_default_target(small_cnn, fmnist_batch):
    x, _ = fmnist_batch
    small_cnn.eval()
    with torch.no_grad():
        predicted = small_cnn(x).argmax(1)
    for backend in ("native", "library"):
        default = compute_cam(small_cnn, x, None, "gradcam", backend=backend)
        explicit = compute_cam(small_cnn, x, predicted, "gradcam", backend=backend)
        assert torch.allclose(default, explicit, atol=1e-6)


def test_target_class_changes_the_map(small_cnn, fmnist_batch):
    x, _ = fmnist_batch
    a = compute_cam(small_cnn, x, torch.tensor([0, 0]), "gradcam")
    b = compute_cam(small_cnn, x, torch.tensor([5, 5]), "gradcam")
    assert float((a - b).abs().max()) > 0.05


def test_auto_backend_is_native_where_available(small_cnn, fmnist_batch):
    x, y = fmnist_batch
    assert torch.equal(compute_cam(small_cnn, x, y, "layercam"),
                       compute_cam(small_cnn, x, y, "layercam", backend="native"))


def test_backend_errors(small_cnn, fmnist_batch):
    x, y = fmnist_batch
    with pytest.raises(ValueError, match="unknown CAM backend 'gpu'; accepted: auto, native, library"):
        compute_cam(small_cnn, x, y, "gradcam", backend="gpu")
    with pytest.raises(ValueError, match="no native path for 'eigencam'") as err:
        compute_cam(small_cnn, x, y, "eigencam", backend="native")
    for name in NATIVE_METHODS:
        assert name in str(err.value)


# --- ensembles ------------------------------------------------------------------------------------

def test_ensemble_default_is_equal_weight_mean(small_cnn, fmnist_batch):
    x, y = fmnist_batch
    parts = [compute_cam(small_cnn, x, y, m) for m in ("gradcam", "gradcam++", "xgradcam")]
    ens = compute_cam(small_cnn, x, y, "ensemble")
    assert torch.allclose(ens, sum(parts) / 3, atol=1e-6)


def test_ensemble_from_a_list_of_methods(small_cnn, fmnist_batch):
    x, y = fmnist_batch
    a = compute_cam(small_cnn, x, y, "gradcam")
    b = compute_cam(small_cnn, x, y, "layercam")
    assert float((a - b).abs().max()) > 1e-3  # two different maps, so the weights matter
    assert torch.allclose(compute_cam(small_cnn, x, y, ["gradcam", "layercam"]), (a + b) / 2, atol=1e-6)
    assert torch.allclose(compute_cam(small_cnn, x, y, ["gradcam", "layercam"], weights=[2, 1]),
                          (2 * a + b) / 3, atol=1e-6)
    assert torch.allclose(compute_cam(small_cnn, x, y, "ensemble", methods=["gradcam", "layercam"],
                                      weights=[0, 1]), b, atol=1e-6)
    assert torch.equal(compute_cam(small_cnn, x, y, ["layercam"]), b)


def test_ensemble_with_a_library_method_keeps_the_contract(small_cnn, fmnist_batch):
    x, y = fmnist_batch
    small_cnn.train()
    ens = compute_cam(small_cnn, x, y, ["gradcam", "eigencam"])
    e = compute_cam(small_cnn, x, y, "eigencam")
    g = compute_cam(small_cnn, x, y, "gradcam")
    assert torch.allclose(ens, (g + e) / 2, atol=1e-6)
    assert float(ens.min()) >= 0 and float(ens.max()) <= 1
    assert modes_of(small_cnn) == {True} and hook_counts(small_cnn) == {} and grads_of(small_cnn) == []


@pytest.mark.parametrize("weights", [[1.0], [1, 2, 3], [1, -1], [0, 0]])
def test_ensemble_bad_weights(small_cnn, fmnist_batch, weights):
    x, y = fmnist_batch
    with pytest.raises(ValueError, match=r"ensemble weights .* must be 2 non-negative numbers with a positive sum"):
        compute_cam(small_cnn, x, y, ["gradcam", "layercam"], weights=weights)


def test_unknown_method_lists_accepted(small_cnn, fmnist_batch):
    x, y = fmnist_batch
    with pytest.raises(ValueError, match="unknown CAM method 'fullgrad'") as err:
        compute_cam(small_cnn, x, y, "fullgrad")
    for name in METHODS:
        assert name in str(err.value)
    with pytest.raises(ValueError, match="unknown CAM method 'nope'"):
        compute_cam(small_cnn, x, y, ["gradcam", "nope"])


# --- target layer ---------------------------------------------------------------------------------

def test_layer_by_path_and_by_module(small_cnn, fmnist_batch):
    x, y = fmnist_batch
    by_path = compute_cam(small_cnn, x, y, "gradcam", layer="net.features.1")
    by_module = compute_cam(small_cnn, x, y, "gradcam", layer=small_cnn.net.features[1])
    default = compute_cam(small_cnn, x, y, "gradcam")
    registered = compute_cam(small_cnn, x, y, "gradcam", layer="net.features.2")
    assert torch.equal(by_path, by_module)
    assert torch.equal(default, registered)
    assert float((by_path - default).abs().max()) > 1e-3
    assert by_path.shape == (2, 28, 28)


def test_unknown_layer_path(small_cnn, fmnist_batch):
    x, y = fmnist_batch
    with pytest.raises(ValueError, match="no layer 'net.features.9' in the model; accepted: .*net.features.2"):
        compute_cam(small_cnn, x, y, "gradcam", layer="net.features.9")
    assert hook_counts(small_cnn) == {}


def test_model_without_registered_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match="no registered CAM layer"):
        compute_cam(model, x, None, "gradcam")
    cam = compute_cam(model, x, None, "gradcam", layer="1")
    assert cam.shape == (2, 8, 8) and float(cam.min()) >= 0 and float(cam.max()) <= 1
