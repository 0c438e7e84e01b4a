"""Tests for part.attacks: PGD and MMA under per-pixel budgets, mode and gradient hygiene, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from torch import nn

from part.attacks import LOSSES, budget, mma, pgd
from tests.conftest import grads_of, modes_of


def tiny_net(channels: int, classes: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(channels, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, classes),
    ).eval()


@st.composite
def attack_case(draw):
    b, c = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    h, w = draw(st.integers(4, 12)), draw(st.integers(4, 12))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    x = torch.rand(b, c, h, w, generator=g)
    kind = draw(st.sampled_from(["scalar", "zero-scalar", "zeros", "full", "per-pixel", "per-image", "sparse"]))
    top = draw(st.floats(0.0, 0.3))
    eps = {
        "scalar": top,
        "zero-scalar": 0.0,
        "zeros": torch.zeros(b, 1, h, w),
        "full": torch.rand(b, c, h, w, generator=g) * top,
        "per-pixel": torch.rand(b, 1, h, w, generator=g) * top,
        "per-image": torch.rand(b, 1, 1, 1, generator=g) * top,
        "sparse": (torch.rand(1, c, h, w, generator=g) > 0.5).float() * top,
    }[kind]
    return x, eps, draw(st.integers(0, 2**31 - 1))


def _within(x_adv, x, eps):
    assert x_adv.shape == x.shape
    assert bool(((x_adv - x).abs() <= torch.as_tensor(eps) + 1e-6).all())
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0


# --- PGD ------------------------------------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(case=attack_case(), loss=st.sampled_from(LOSSES))
def test_pgd_respects_the_budget_and_the_box(case, loss):
    x, eps, seed = case
    model = tiny_net(x.shape[1])
    y = torch.randint(0, 3, (x.shape[0],), generator=torch.Generator().manual_seed(seed))
    torch.manual_seed(seed)
    x_adv = pgd(model, x, y, eps=eps, step_size=0.1, steps=3, loss=loss)
    _within(x_adv, x, eps)
    if float(torch.as_tensor(eps).max()) == 0.0:
        assert torch.equal(x_adv, x)


@pytest.mark.parametrize("shape", [(2, 3, 6, 6), (2, 1, 6, 6), (1, 1, 1, 1)])
def test_pgd_constant_map_equals_scalar(shape):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 6, 6, generator=g)
    y = torch.tensor([0, 2])
    model = tiny_net(3)
    torch.manual_seed(7)
    a = pgd(model, x, y, eps=0.1, step_size=0.03, steps=4)
    torch.manual_seed(7)
    b = pgd(model, x, y, eps=torch.full(shape, 0.1), step_size=0.03, steps=4)
    assert torch.equal(a, b)
    assert not torch.equal(a, x)


@pytest.mark.parametrize("random_start", [True, False])
def test_pgd_zero_map_returns_x(random_start):
    x = torch.rand(3, 2, 5, 5)
    out = pgd(tiny_net(2), x, torch.tensor([0, 1, 2]), eps=torch.zeros(3, 1, 5, 5), step_size=0.1,
              steps=3, random_start=random_start)
    assert torch.equal(out, x)


def test_pgd_only_moves_pixels_with_budget():
    x = torch.rand(2, 1, 6, 6)
    eps = torch.zeros(2, 1, 6, 6)
    eps[:, :, :3] = 0.2  # top half only
    out = pgd(tiny_net(1), x, torch.tensor([0, 1]), eps=eps, step_size=0.05, steps=3)
    assert torch.equal(out[:, :, 3:], x[:, :, 3:])
    assert float((out[:, :, :3] - x[:, :, :3]).abs().max()) > 0.05


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("attack", ["pgd", "mma"])
def test_mode_restored_stats_and_grads_untouched(attack, training):
    model = tiny_net(1)
    model.train(training)
    bn = model[1]
    running = bn.running_mean.clone()
    x = torch.rand(4, 1, 6, 6)
    y = torch.tensor([0, 1, 2, 0])
    if attack == "pgd":
        pgd(model, x, y, eps=0.1, step_size=0.03, steps=2)
    else:
        mma(model, x, y, eps=0.1, step_size=0.03, steps=2)
    assert modes_of(model) == {training}
    assert torch.equal(bn.running_mean, running)  # attacked in eval mode
    assert grads_of(model) == []
    assert x.grad is None


def test_mode_restored_after_an_error():
    model = tiny_net(1).train()
    with pytest.raises(RuntimeError):  # two channels into a one-channel conv
        pgd(model, torch.rand(2, 2, 6, 6), torch.tensor([0, 1]), eps=0.1, step_size=0.03, steps=1)
    assert modes_of(model) == {True}


@pytest.fixture
def fixed_case():
    """A fixed conv net whose logits depend on the input, 16 images 8x8, labels = its predictions."""
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                          nn.Linear(32, 5)).eval()
    with torch.no_grad():
        model[0].weight.mul_(4)
        model[4].weight.mul_(4)
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        y = model(x).argmax(1)  # clean accuracy 100%
    return model, x, y


def test_pgd_increases_the_loss(fixed_case):
    model, x, y = fixed_case
    with torch.no_grad():
        clean = F.cross_entropy(model(x), y, reduction="none")
    for random_start in (True, False):
        torch.manual_seed(0)
        x_adv = pgd(model, x, y, eps=0.05, step_size=0.0125, steps=5, random_start=random_start)
        with torch.no_grad():
            adv = F.cross_entropy(model(x_adv), y, reduction="none")
        assert bool((adv > clean).all())
        assert float(adv.mean()) > float(clean.mean()) + 0.1


def test_pgd_kl_moves_the_output_away_from_clean(fixed_case):
    model, x, y = fixed_case

    def kl_to_clean(x_adv):
        with torch.no_grad():
            p = F.softmax(model(x), 1)
            return F.kl_div(F.log_softmax(model(x_adv), 1), p, reduction="batchmean").item()

    torch.manual_seed(0)
    noise_only = pgd(model, x, y, eps=0.05, step_size=0.0125, steps=0, loss="kl")
    torch.manual_seed(0)
    attacked = pgd(model, x, y, eps=0.05, step_size=0.0125, steps=5, loss="kl")
    _within(attacked, x, 0.05)
    assert kl_to_clean(attacked) > 2 * kl_to_clean(noise_only)
    assert kl_to_clean(attacked) > 1e-3


# --- errors ---------------------------------------------------------------------------------------

def test_bad_loss_name():
    with pytest.raises(ValueError, match="unknown attack loss 'hinge'; accepted: ce, kl"):
        pgd(tiny_net(1), torch.rand(1, 1, 4, 4), torch.tensor([0]), eps=0.1, step_size=0.1, steps=1, loss="hinge")


@pytest.mark.parametrize("shape", [(2, 1, 5, 5), (3, 1, 1, 1), (2, 2, 4, 4), (1, 2, 1, 4, 4), (5,)])
@pytest.mark.parametrize("attack", [pgd, mma])
def test_bad_eps_shape(attack, shape):
    x = torch.rand(2, 1, 4, 4)
    with pytest.raises(ValueError, match=r"eps of shape .* does not broadcast to the input \(2, 1, 4, 4\)"):
        attack(tiny_net(1), x, torch.tensor([0, 1]), eps=torch.full(shape, 0.1), step_size=0.1, steps=1)


@pytest.mark.parametrize("attack", [pgd, mma])
def test_negative_eps(attack):
    x = torch.rand(2, 1, 4, 4)
    eps = torch.full((2, 1, 4, 4), 0.1)
    eps[1, 0, 2, 2] = -0.01
    for bad in (eps, -0.1):
        with pytest.raises(ValueError, match="eps must be >= 0 everywhere"):
            attack(tiny_net(1), x, torch.tensor([0, 1]), eps=bad, step_size=0.1, steps=1)


def test_budget_follows_x():
    x = torch.rand(2, 1, 4, 4, dtype=torch.float64)
    b = budget(0.1, x)
    assert b.dtype == torch.float64 and b.shape == ()
    assert budget(torch.ones(2, 1, 1, 1), x).dtype == torch.float64


# --- MMA ------------------------------------------------------------------------------------------

@settings(max_examples=20, deadline=None)
@given(case=attack_case(), k=st.integers(1, 4))
def test_mma_respects_the_budget_and_the_box(case, k):
    x, eps, seed = case
    model = tiny_net(x.shape[1], classes=4)
    y = torch.randint(0, 4, (x.shape[0],), generator=torch.Generator().manual_seed(seed))
    torch.manual_seed(seed)
    x_adv = mma(model, x, y, eps=eps, step_size=0.1, steps=3, k=k)
    _within(x_adv, x, eps)
    if float(torch.as_tensor(eps).max()) == 0.0:
        assert torch.equal(x_adv, x)


def test_mma_constant_map_equals_scalar():
    x = torch.rand(3, 2, 6, 6)
    y = torch.tensor([0, 1, 3])
    model = tiny_net(2, classes=4)
    torch.manual_seed(3)
    a = mma(model, x, y, eps=0.1, step_size=0.03, steps=3)
    torch.manual_seed(3)
    b = mma(model, x, y, eps=torch.full((3, 1, 6, 6), 0.1), step_size=0.03, steps=3)
    assert torch.equal(a, b)


def _targeted(model, x, y, target, eps, step_size, steps, kappa=50.0):
    """One targeted run by hand: sign ascent on min(z_t - z_y, kappa), projected to the eps box."""
    x_adv = x.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        z = model(x_adv)
        margin = (z.gather(1, target[:, None]) - z.gather(1, y[:, None])).clamp(max=kappa).sum()
        (g,) = torch.autograd.grad(margin, x_adv)
        x_adv = torch.min(torch.max(x_adv.detach() + step_size * g.sign(), x - eps), x + eps).clamp(0, 1)
    return x_adv.detach()


def _margins(model, x, y, targets):
    with torch.no_grad():
        z = model(x)
    return z.gather(1, targets) - z.gather(1, y[:, None])  # [B,k]


def test_mma_k1_is_the_top1_targeted_run(fixed_case):
    model, x, y = fixed_case
    with torch.no_grad():
        wrong = model(x).scatter(1, y[:, None], float("-inf"))
    top1 = wrong.argmax(1)
    by_hand = _targeted(model, x, y, top1, 0.03, 0.01, 5)
    out = mma(model, x, y, eps=0.03, step_size=0.01, steps=5, k=1, random_start=False)
    assert torch.allclose(out, by_hand, atol=1e-6)


def test_mma_is_at_least_as_strong_as_its_top1_run(fixed_case):
    model, x, y = fixed_case
    eps, step, steps = 0.1, 0.025, 5
    with torch.no_grad():
        logits = model(x)
    top3 = logits.scatter(1, y[:, None], float("-inf")).topk(3, dim=1).indices
    by_hand = _targeted(model, x, y, top3[:, 0], eps, step, steps)
    out = mma(model, x, y, eps=eps, step_size=step, steps=steps, k=3, random_start=False)
    _within(out, x, eps)
    hand_margin = _margins(model, by_hand, y, top3[:, :1])[:, 0]
    mma_margin = _margins(model, out, y, top3).max(1).values
    assert bool((mma_margin >= hand_margin - 1e-5).all())
    with torch.no_grad():
        acc_clean = (logits.argmax(1) == y).float().mean()
        acc_hand = (model(by_hand).argmax(1) == y).float().mean()
        acc_mma = (model(out).argmax(1) == y).float().mean()
    assert acc_mma <= acc_hand <= acc_clean
    assert acc_mma < acc_clean  # the budget is large enough to break some examples
    # every example whose top-1 run crossed the boundary is broken by MMA as well
    assert bool((model(out).argmax(1) != y)[hand_margin > 0].all())


def test_mma_picks_a_target_other_than_top1_when_it_is_better(fixed_case):
    model, x, y = fixed_case
    with torch.no_grad():
        top3 = model(x).scatter(1, y[:, None], float("-inf")).topk(3, dim=1).indices
    runs = [_targeted(model, x, y, top3[:, j], 0.1, 0.025, 5) for j in range(3)]
    margins = torch.stack([_margins(model, r, y, top3[:, j:j + 1])[:, 0] for j, r in enumerate(runs)], 1)
    best = margins.argmax(1)
    assert bool((best != 0).any())  # some example is best attacked through another class
    out = mma(model, x, y, eps=0.1, step_size=0.025, steps=5, k=3, random_start=False)
    expected = torch.stack([runs[int(j)][i] for i, j in enumerate(best)])
    assert torch.allclose(out, expected, atol=1e-6)


@pytest.mark.parametrize("classes,k", [(2, 3), (3, 5), (4, 10)])
def test_mma_clamps_k(classes, k):
    model = tiny_net(1, classes=classes)
    x = torch.rand(3, 1, 5, 5)
    y = torch.tensor([0, 1, 0])
    out = mma(model, x, y, eps=0.1, step_size=0.05, steps=2, k=k)
    assert out.shape == x.shape
    _within(out, x, 0.1)
