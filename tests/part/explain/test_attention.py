"""Tests for part/explain/attention.py: rollout against hand products, grad-rollout, dispatch and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from models import create_model
from part.explain.attention import ATTENTION_METHODS, rollout
from part.explain.cam import METHODS, compute_cam
from tests.conftest import grads_of, hook_counts, modes_of

HEADS, SIDE, DIM = 2, 3, 4
T = 1 + SIDE * SIDE


def _rows(a: torch.Tensor) -> torch.Tensor:
    return a / a.sum(-1, keepdim=True)


class Forced(nn.Module):
    """Outputs given attention probabilities [heads, T, T] for every image, keeping the graph to its input."""

    def __init__(self, probs: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("probs", probs)
        self.last: torch.Tensor | None = None

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        out = a * 0 + self.probs
        if out.requires_grad:
            out.retain_grad()
        self.last = out
        return out


class ForcedBlock(nn.Module):
    def __init__(self, probs: torch.Tensor) -> None:
        super().__init__()
        self.qk = nn.Linear(DIM, DIM)
        self.v = nn.Linear(DIM, DIM)
        self.attn_probs = Forced(probs)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        b = t.shape[0]
        q = self.qk(t).view(b, T, HEADS, -1).transpose(1, 2)
        a = self.attn_probs((q @ q.transpose(-2, -1)).softmax(-1))
        v = self.v(t).view(b, T, HEADS, -1).transpose(1, 2)
        return t + torch.tanh((a @ v).transpose(1, 2).reshape(b, T, DIM))


class ForcedViT(nn.Module):
    """Two blocks with known attention; one token per pixel of a 3x3 grey image, plus a class token."""

    def __init__(self, probs: list[torch.Tensor]) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Linear(1, DIM)
        self.cls_token = nn.Parameter(torch.randn(1, 1, DIM))
        self.blocks = nn.Sequential(*[ForcedBlock(p) for p in probs])
        self.head = nn.Linear(DIM, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.embed(x.flatten(2).transpose(1, 2))
        t = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), t], dim=1)
        return self.head(self.blocks(t)[:, 0])


@pytest.fixture
def forced():
    probs = [_rows(torch.rand(HEADS, T, T, generator=torch.Generator().manual_seed(s)) ** 3) for s in (1, 2)]
    return ForcedViT(probs), [p.numpy().astype(np.float64) for p in probs]


@pytest.fixture
def vit():
    torch.manual_seed(0)
    return create_model("vit-tiny")


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(2, 1, 28, 28, generator=g), torch.tensor([3, 7])


def _hand_rollout(fused: list[np.ndarray]) -> np.ndarray:
    """Abnar & Zuidema by hand: 0.5*A + 0.5*I, rows to 1, A'_2 @ A'_1; the class row over patches, min-max."""
    joint = np.eye(T)
    for a in fused:
        a = 0.5 * a + 0.5 * np.eye(T)
        a = a / a.sum(-1, keepdims=True)
        joint = a @ joint
    row = joint[..., 0, 1:]
    row = row - row.min(-1, keepdims=True)
    return (row / (1e-7 + row.max(-1, keepdims=True))).reshape(*row.shape[:-1], SIDE, SIDE)


# --- against hand computation ---------------------------------------------------------------------

def test_rollout_equals_the_hand_product(forced):
    model, probs = forced
    x = torch.rand(2, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(3))
    expected = _hand_rollout([p.mean(0) for p in probs])  # the same for every image: attention is forced
    cam = compute_cam(model, x, None, "attention-rollout")
    assert cam.shape == (2, SIDE, SIDE)
    assert float(np.abs(expected).std()) > 0.1  # a map with structure
    for i in range(2):
        np.testing.assert_allclose(cam[i].numpy(), expected, atol=1e-5)


def test_rollout_function_is_the_ordered_product():
    blocks = [_rows(torch.rand(2, 5, 5, generator=torch.Generator().manual_seed(s))) for s in range(3)]
    joint = rollout(blocks).numpy()
    eye = np.eye(5)
    mats = [0.5 * b.numpy() + 0.5 * eye for b in blocks]
    mats = [m / m.sum(-1, keepdims=True) for m in mats]
    np.testing.assert_allclose(joint, mats[2] @ mats[1] @ mats[0], atol=1e-6)
    assert not np.allclose(joint, mats[0] @ mats[1] @ mats[2], atol=1e-3)  # order matters here
    np.testing.assert_allclose(joint.sum(-1), 1.0, atol=1e-6)  # still row-stochastic
    with pytest.raises(ValueError, match="at least one block"):
        rollout([])


def test_grad_rollout_equals_the_hand_computation(forced):
    model, probs = forced
    x = torch.rand(2, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(4))
    targets = torch.tensor([0, 2])
    cam = compute_cam(model, x, targets, "grad-rollout")
    assert grads_of(model) == []
    # the gradient of the target scores with respect to each block's attention, by plain autograd
    logits = model(x.clone().requires_grad_(True))
    logits.gather(1, targets.view(-1, 1)).sum().backward()
    grads = [b.attn_probs.last.grad.numpy().astype(np.float64) for b in model.blocks]
    fused = [np.maximum(g * p, 0).mean(1) for g, p in zip(grads, probs)]  # [B, T, T] per block
    assert all(float(np.abs(f).max()) > 0 for f in fused)
    expected = _hand_rollout(fused)
    np.testing.assert_allclose(cam.numpy(), expected, atol=1e-5)
    assert float(np.abs(expected[0] - _hand_rollout([p.mean(0) for p in probs])).max()) > 0.01


# --- on the ViT -----------------------------------------------------------------------------------

@pytest.mark.parametrize("method", sorted(ATTENTION_METHODS))
def test_contract_on_vit(vit, batch, method):
    x, y = batch
    vit.train()
    before = x.clone()
    cam = compute_cam(vit, x, y, method)
    assert cam.shape == (2, 28, 28) and cam.dtype == torch.float32
    assert float(cam.min()) >= 0 and float(cam.max()) <= 1 and float(cam.max()) > 0.5
    assert modes_of(vit) == {True} and hook_counts(vit) == {} and grads_of(vit) == []
    assert torch.equal(x, before) and not x.requires_grad


def test_grad_rollout_depends_on_the_target_and_rollout_does_not(vit, batch):
    x, _ = batch
    a = compute_cam(vit, x, torch.tensor([0, 0]), "grad-rollout")
    b = compute_cam(vit, x, torch.tensor([5, 5]), "grad-rollout")
    assert float((a - b).abs().max()) > 0.05
    assert torch.equal(compute_cam(vit, x, torch.tensor([0, 0]), "attention-rollout"),
                       compute_cam(vit, x, torch.tensor([5, 5]), "attention-rollout"))
    with torch.no_grad():
        predicted = vit.eval()(x).argmax(1)
    assert torch.allclose(compute_cam(vit, x, None, "grad-rollout"), compute_cam(vit, x, predicted, "grad-rollout"))


def test_grad_rollout_with_frozen_weights_and_under_bf16(vit, batch):
    x, y = batch
    for p in vit.parameters():
        p.requires_grad_(False)
    cam = compute_cam(vit, x, y, "grad-rollout")
    assert float(cam.max()) > 0.5
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = compute_cam(vit, x, y, "grad-rollout")
    assert low.dtype == torch.float32 and float(low.min()) >= 0 and float(low.max()) <= 1


def test_members_of_methods_and_of_the_ensemble(vit, batch):
    x, y = batch
    assert {"attention-rollout", "grad-rollout"} <= set(METHODS)
    a = compute_cam(vit, x, y, "attention-rollout")
    g = compute_cam(vit, x, y, "gradcam")
    assert float((a - g).abs().max()) > 1e-3
    assert torch.allclose(compute_cam(vit, x, y, ["gradcam", "attention-rollout"], weights=[1, 3]),
                          (g + 3 * a) / 4, atol=1e-6)
    for backend in ("native", "library"):  # one implementation under every backend
        assert torch.equal(compute_cam(vit, x, y, "attention-rollout", backend=backend), a)


# --- models without attention ---------------------------------------------------------------------

@pytest.mark.parametrize("method", sorted(ATTENTION_METHODS))
def test_model_without_attention_names_the_models_that_have_it(small_cnn, fmnist_batch, method):
    x, y = fmnist_batch
    message = f"'{method}' needs a model with attention blocks and 'small-cnn' has none"
    with pytest.raises(ValueError, match=message) as err:
        compute_cam(small_cnn, x, y, method)
    for name in ("vit-tiny", "vit-b16", "deit-s16"):
        assert name in str(err.value)
    assert "small-cnn," not in str(err.value)  # only models with attention are offered
    assert hook_counts(small_cnn) == {} and modes_of(small_cnn) == {True}
    bare = nn.Sequential(nn.Flatten(), nn.Linear(784, 3))
    with pytest.raises(ValueError, match="'Sequential' has none; models with attention: vit-tiny"):
        compute_cam(bare, x, y, method)
