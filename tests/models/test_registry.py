"""Tests for the model registry and architectures."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import models
from models import ModelSpec, Normalized, create_model, get_spec, model_names

EXPECTED = {"small-cnn", "resnet18", "preact-resnet18", "wrn-34-10"}
CAM_PATHS = {
    "small-cnn": "net.features.2",
    "resnet18": "net.layer4",
    "preact-resnet18": "net.final",
    "wrn-34-10": "net.final",
}


def _side(spec: ModelSpec) -> int:
    # WRN-34-10 is expensive on CPU; 32x32 exercises the adaptive pooling path cheaply.
    return 32 if spec.name == "wrn-34-10" else spec.input_size


def test_register_adds_replaces_and_lists_in_order():
    """A record registered under a new name is built by create_model with its CAM layer; the same name
    again replaces it without moving it; the default model stays first."""
    before = model_names()
    spec = ModelSpec("probe-net", lambda k, c: nn.Sequential(nn.Conv2d(c, 4, 3, padding=1), nn.Flatten(),
                                                           nn.LazyLinear(k)), 8, "0", (0.5,), (0.5,), "test record")
    try:
        models.register(spec)
        assert model_names() == before + ["probe-net"] and model_names()[0] == models.DEFAULT_MODEL
        net = create_model("probe-net", num_classes=3)
        assert net(torch.rand(2, 1, 8, 8)).shape == (2, 3) and isinstance(net.cam_layer(), nn.Conv2d)
        models.register(ModelSpec(**{**spec.__dict__, "description": "replaced"}))
        assert model_names() == before + ["probe-net"] and get_spec("probe-net").description == "replaced"
    finally:
        models.registry._REGISTRY.pop("probe-net", None)
    assert model_names() == before

@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("in_channels,num_classes", [(1, 10), (3, 200)])
def test_forward_shape_and_cam_layer(name, in_channels, num_classes):
    torch.manual_seed(0)
    spec = get_spec(name)
    model = create_model(name, num_classes=num_classes, in_channels=in_channels).eval()
    assert isinstance(model, Normalized)
    assert model.spec_name == name
    assert model.cam_layer_name == CAM_PATHS[name] == "net." + spec.cam_layer
    assert model.mean.shape == (1, in_channels, 1, 1)
    assert model.std.shape == (1, in_channels, 1, 1)

    layer = model.cam_layer()
    assert isinstance(layer, nn.Module)
    captured = []
    handle = layer.register_forward_hook(lambda m, i, o: captured.append(o))
    side = _side(spec)
    x = torch.rand(2, in_channels, side, side)
    try:
        with torch.no_grad():
            y = model(x)
    finally:
        handle.remove()
    assert y.shape == (2, num_classes)
    assert torch.isfinite(y).all()
    assert len(captured) == 1
    feat = captured[0]
    assert feat.dim() == 4
    assert feat.shape[0] == 2 and feat.shape[2] >= 2 and feat.shape[3] >= 2
    assert (feat >= 0).all()  # post-ReLU activation


@pytest.mark.parametrize("name", ["small-cnn", "resnet18", "preact-resnet18"])
def test_cam_layer_gradient_flows(name):
    model = create_model(name, in_channels=3).eval()
    store = {}
    handle = model.cam_layer().register_forward_hook(lambda m, i, o: store.setdefault("a", o))
    x = torch.rand(2, 3, 32, 32)
    try:
        out = model(x)
    finally:
        handle.remove()
    (grad,) = torch.autograd.grad(out[:, 0].sum(), store["a"])
    assert grad.shape == store["a"].shape


def test_wrn_native_input_size():
    model = create_model("wrn-34-10", num_classes=200, in_channels=3).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 64)).shape == (1, 200)


@pytest.mark.parametrize("name", ["small-cnn", "resnet18", "preact-resnet18"])
def test_normalisation_is_inside_model(name):
    torch.manual_seed(0)
    model = create_model(name, in_channels=3).eval()
    spec = get_spec(name)
    mean = torch.tensor(spec.mean).expand(3).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).expand(3).view(1, 3, 1, 1)
    assert torch.allclose(model.mean, mean)
    assert torch.allclose(model.std, std)
    x = torch.rand(2, 3, spec.input_size, spec.input_size)
    with torch.no_grad():
        assert torch.allclose(model(x), model.net((x - mean) / std), atol=1e-6)


def test_custom_mean_std_broadcast_and_per_channel():
    m = create_model("small-cnn", in_channels=3, mean=(0.1,), std=(0.2,))
    assert torch.allclose(m.mean.flatten(), torch.full((3,), 0.1))
    assert torch.allclose(m.std.flatten(), torch.full((3,), 0.2))
    m = create_model("small-cnn", in_channels=3, mean=(0.1, 0.2, 0.3), std=(1.0, 2.0, 3.0))
    assert torch.allclose(m.mean.flatten(), torch.tensor([0.1, 0.2, 0.3]))
    x = torch.rand(2, 3, 28, 28)
    with torch.no_grad():
        expected = m.net((x - m.mean) / m.std)
        assert torch.allclose(m(x), expected)


def test_buffers_follow_state_dict():
    m = create_model("small-cnn")
    sd = m.state_dict()
    assert "mean" in sd and "std" in sd
    assert any(k.startswith("net.") for k in sd)
    m2 = create_model("small-cnn")
    m2.load_state_dict(sd)


def test_unknown_name_lists_accepted():
    with pytest.raises(ValueError) as exc:
        create_model("vgg-nonexistent")
    msg = str(exc.value)
    assert "unknown model 'vgg-nonexistent'" in msg
    assert "accepted:" in msg
    for name in EXPECTED:
        assert name in msg
    with pytest.raises(ValueError, match="accepted"):
        get_spec("nope")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"in_channels": 3, "mean": (0.1, 0.2)}, "mean"),
        ({"in_channels": 1, "std": (0.1, 0.2, 0.3)}, "std"),
        ({"in_channels": 3, "std": (0.0,)}, "std"),
        ({"num_classes": 1}, "num_classes"),
        ({"num_classes": 0}, "num_classes"),
        ({"in_channels": 0}, "in_channels"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_model("small-cnn", **kwargs)


def test_small_cnn_shape_and_param_count():
    m = create_model("small-cnn", num_classes=10, in_channels=1)
    assert sum(p.numel() for p in m.parameters()) == 94_186
    spec = get_spec("small-cnn")
    assert spec.input_size == 28 and spec.mean == (0.5,) and spec.std == (0.5,)
    convs = [mod for mod in m.net.modules() if isinstance(mod, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride[0]) for c in convs] == [
        (1, 32, 2),
        (32, 64, 2),
        (64, 128, 1),
    ]
    assert all(c.bias is None and c.kernel_size == (3, 3) for c in convs)
    with torch.no_grad():
        m.eval()
        store = {}
        h = m.cam_layer().register_forward_hook(lambda mod, i, o: store.setdefault("a", o))
        m(torch.rand(2, 1, 28, 28))
        h.remove()
    assert store["a"].shape == (2, 128, 7, 7)


def test_no_inplace_relu():
    for name in model_names():
        m = create_model(name)
        for mod in m.modules():
            if isinstance(mod, nn.ReLU):
                assert not mod.inplace, name


def test_rgb_defaults_collapse_for_single_channel():
    m = create_model("resnet18", in_channels=1)
    spec = get_spec("resnet18")
    assert m.mean.shape == (1, 1, 1, 1)
    assert m.mean.item() == pytest.approx(sum(spec.mean) / 3)
    assert m.std.item() == pytest.approx(sum(spec.std) / 3)
    with pytest.raises(ValueError, match="mean"):
        create_model("resnet18", in_channels=1, mean=spec.mean)
