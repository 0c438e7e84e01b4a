"""Tests for models/vit.py and the CAM contract on a ViT: shapes, records, token reshape, every method."""

from __future__ import annotations

import pytest
import torch

import models
from models import Normalized, create_model, get_spec
from models.vit import VisionTransformer, tokens_to_map
from part.explain.cam import METHODS, NATIVE_METHODS, compute_cam, resolve_layer
from tests.conftest import grads_of, hook_counts, modes_of

VITS = ("vit-tiny", "vit-b16", "deit-s16")


@pytest.fixture
def vit() -> Normalized:
    """vit-tiny for 28x28 grey images with fixed random weights."""
    torch.manual_seed(0)
    return create_model("vit-tiny")


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(2, 1, 28, 28, generator=g), torch.tensor([3, 7])


# --- the architecture -----------------------------------------------------------------------------

@pytest.mark.parametrize("in_channels,side,num_classes", [(1, 28, 10), (3, 32, 100)])
def test_forward_shapes(in_channels, side, num_classes):
    torch.manual_seed(0)
    model = create_model("vit-tiny", num_classes=num_classes, in_channels=in_channels).eval()
    tokens = {}
    model.cam_layer().register_forward_hook(lambda m, i, o: tokens.setdefault("t", o))
    with torch.no_grad():
        out = model(torch.rand(3, in_channels, side, side))
    assert out.shape == (3, num_classes) and bool(torch.isfinite(out).all())
    grid = side // 4
    assert tokens["t"].shape == (3, 1 + grid * grid, 48)
    assert tokens_to_map(tokens["t"]).shape == (3, 48, grid, grid)


def test_side_not_a_multiple_of_the_patch(vit):
    with pytest.raises(ValueError, match="input is 30x30; each side must be a multiple of the patch size 4"):
        vit(torch.rand(1, 1, 30, 30))


def test_position_embedding_is_resized_bicubic_for_another_grid(vit):
    net = vit.net
    assert net.position_embedding(7, 7) is net.pos_embed  # the built size: the parameter itself
    with torch.no_grad():
        net.pos_embed[:, 1:] = torch.linspace(-1, 1, 48)  # the same vector at every patch
    resized = net.position_embedding(8, 6)
    assert resized.shape == (1, 1 + 48, 48)
    assert torch.equal(resized[:, 0], net.pos_embed[:, 0])  # the class token's entry kept
    assert torch.allclose(resized[:, 1:], net.pos_embed[:, 1:2].expand(1, 48, 48), atol=1e-6)
    with torch.no_grad():  # a real resize: a 7x7 ramp becomes an 8x8 ramp with the same ends
        ramp = torch.arange(7.0).view(1, 7, 1, 1).expand(1, 7, 7, 48).reshape(1, 49, 48)
        net.pos_embed[:, 1:] = ramp
        big = net.position_embedding(8, 8)[:, 1:].reshape(8, 8, 48)[:, 0, 0]
    assert bool((big[1:] > big[:-1]).all()) and float(big[0]) < 0.5 and float(big[-1]) > 5.5
    x = torch.rand(1, 1, 32, 24)
    with torch.no_grad():
        assert vit(x).shape == (1, 10)


@pytest.mark.parametrize("name,params", [("vit-b16", 86_567_656), ("deit-s16", 22_050_664)])
def test_large_configs_match_timm_sizes(name, params):
    model = create_model(name, num_classes=1000, in_channels=3).eval()
    assert sum(p.numel() for p in model.net.parameters()) == params  # timm's count for the same model
    spec = get_spec(name)
    assert spec.input_size == 224 and model.net.patch_embed.patch == 16 and model.net.grid == 14
    with torch.no_grad():  # 32x32 = a 2x2 grid: the bicubic-resized embedding
        assert model(torch.rand(1, 3, 32, 32)).shape == (1, 1000)


def test_records_carry_the_cam_quirks(vit):
    assert set(VITS) <= set(models.model_names())
    for name in VITS:
        spec = get_spec(name)
        depth = {"vit-tiny": 4, "vit-b16": 12, "deit-s16": 12}[name]
        assert spec.cam_layer == f"blocks.{depth - 1}.norm1"
        assert spec.reshape_transform is tokens_to_map
        assert spec.attention == "blocks.*.attn.attn_probs"
    assert vit.reshape_transform is tokens_to_map
    assert resolve_layer(vit, None) is vit.net.blocks[3].norm1
    assert vit.attention_layers() == [b.attn.attn_probs for b in vit.net.blocks]
    cnn = create_model("small-cnn")
    assert cnn.reshape_transform is None and cnn.attention_layers() == []


def test_attention_probabilities_pass_through_the_named_module(vit, batch):
    seen = []
    handle = vit.net.blocks[1].attn.attn_probs.register_forward_hook(lambda m, i, o: seen.append(o))
    with torch.no_grad():
        vit(batch[0])
    handle.remove()
    (probs,) = seen
    assert probs.shape == (2, 3, 50, 50)
    assert torch.allclose(probs.sum(-1), torch.ones(2, 3, 50), atol=1e-5) and float(probs.min()) >= 0


def test_tokens_to_map_places_patches_row_major():
    tokens = torch.randn(2, 1 + 3 * 3, 5)
    fmap = tokens_to_map(tokens)
    assert fmap.shape == (2, 5, 3, 3)
    for i in range(3):
        for j in range(3):
            assert torch.equal(fmap[:, :, i, j], tokens[:, 1 + 3 * i + j])
    with pytest.raises(ValueError, match="6 patch tokens do not form a square grid"):
        tokens_to_map(torch.randn(1, 7, 5))


def test_builder_rejects_a_size_off_the_patch():
    with pytest.raises(ValueError, match="img_size 30 is not a multiple of the patch size 4"):
        VisionTransformer(10, 1, img_size=30, patch=4, dim=8, depth=1, heads=2)


# --- every CAM method on the ViT ------------------------------------------------------------------

@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("method", METHODS)
def test_every_method_on_vit(vit, batch, method, training):
    x, y = batch
    vit.train(training)
    cam = compute_cam(vit, x, y, method)
    assert cam.shape == (2, 28, 28) and cam.dtype == torch.float32
    assert bool(torch.isfinite(cam).all())
    assert float(cam.min()) >= 0.0 and float(cam.max()) <= 1.0
    assert float(cam.max()) > 0.5  # min-max scaled: not an all-zero map
    assert modes_of(vit) == {training}
    assert hook_counts(vit) == {} and grads_of(vit) == []
    assert resolve_layer(vit, None) is vit.net.blocks[3].norm1  # put back after ablation


@pytest.mark.parametrize("method", ["gradcam", "eigencam", "attention-rollout"])
def test_rgb_32_maps_at_input_resolution(method):
    torch.manual_seed(0)
    model = create_model("vit-tiny", in_channels=3)
    cam = compute_cam(model, torch.rand(2, 3, 32, 32), torch.tensor([0, 1]), method)
    assert cam.shape == (2, 32, 32) and float(cam.min()) >= 0 and float(cam.max()) <= 1


@pytest.mark.parametrize("use_labels", [True, False], ids=["labels", "predicted"])
@pytest.mark.parametrize("method", sorted(NATIVE_METHODS))
def test_native_matches_library_on_vit(vit, method, use_labels):
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    targets = torch.tensor([0, 4, 9, 2]) if use_labels else None
    native = compute_cam(vit, x, targets, method, backend="native")
    library = compute_cam(vit, x, targets, method, backend="library")
    assert native.shape == library.shape == (4, 28, 28)
    assert float(native.std()) > 0.05  # a map with structure, so the comparison means something
    assert float((native - library).abs().max()) < 1e-4


def test_cam_on_vit_depends_on_the_target(vit, batch):
    x, _ = batch
    a = compute_cam(vit, x, torch.tensor([0, 0]), "gradcam")
    b = compute_cam(vit, x, torch.tensor([5, 5]), "gradcam")
    assert float((a - b).abs().max()) > 0.05


def test_a_conv_layer_of_the_vit_is_not_reshaped(vit, batch):
    x, y = batch
    cam = compute_cam(vit, x, y, "gradcam", layer="net.patch_embed.proj")  # already a map [B,C,7,7]
    assert cam.shape == (2, 28, 28) and float(cam.max()) > 0.5
