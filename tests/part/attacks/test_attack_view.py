"""The attack-time network (part/attacks/attack_view.py): folded BatchNorm and channels_last give the
model's logits, input gradients and CAMs; the view follows the model's weights and never changes them;
the path is chosen by timing, pinned by the config, and forced plain by PART_ATTACK_FAST=0."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings, strategies as st
from torch import nn

import models
from part.attacks import attack_view, mma, pgd
from part.attacks.attack_view import AttackView, build, choose, fold_pairs, measure
from part.explain.cam import compute_cam
from tests.conftest import grads_of, hook_counts, modes_of

# Every registered CNN, at an input size that keeps the test short (their pooling is adaptive).
CNNS = {"small-cnn": 28, "small-cnn-4": 40, "resnet18": 32, "preact-resnet18": 32, "wrn-34-10": 16}


@pytest.fixture(autouse=True)
def _fast_allowed(monkeypatch):
    monkeypatch.delenv(attack_view.ENV, raising=False)


def test_the_config_offers_the_paths_there_are():
    from part.training.config import CHOICES

    assert CHOICES["attack_path"] == attack_view.CHOICES


def test_every_registered_cnn_is_covered():
    with_bn = [n for n in models.model_names()
               if any(isinstance(m, nn.BatchNorm2d) for m in models.create_model(n, in_channels=3).modules())]
    assert sorted(with_bn) == sorted(CNNS)


def randomised(name: str, seed: int, channels: int) -> nn.Module:
    """The model with random weights, random BatchNorm affine parameters and random BatchNorm statistics, in
    eval mode. The statistics are those of random images, each then moved at random (the mean by up to a
    standard deviation, the variance by a factor in [0.5, 2]): statistics drawn from nothing would blow a
    34-layer network's logits up until its loss saturates and its input gradient underflows."""
    torch.manual_seed(seed)
    model = models.create_model(name, in_channels=channels)
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for m in bns:
            n = m.num_features
            m.weight.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.copy_(torch.randn(n, generator=g) * 0.2)
            m.reset_running_stats()
            m.momentum = None  # a cumulative average: one batch gives its statistics
        size = CNNS[name]
        model.train()(torch.rand(8, channels, size, size, generator=g))
        for m in bns:
            n = m.num_features
            m.running_mean.add_((torch.rand(n, generator=g) * 2 - 1) * m.running_var.sqrt())
            m.running_var.mul_(2 ** (torch.rand(n, generator=g) * 2 - 1))
            m.momentum = 0.1
    return model.eval()


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp(min=1e-30))


def logits_and_input_grad(net: nn.Module, x: torch.Tensor, y: torch.Tensor):
    x = x.clone().requires_grad_(True)
    logits = net(x)
    (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), x)
    return logits.detach(), grad


def relu_inputs(net: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The input of every ReLU module in a forward of `net`, by module path (the view's as the model's)."""
    store, handles = {}, []
    for name, m in net.named_modules():
        if isinstance(m, nn.ReLU):
            key = name.split("net.", 1)[-1] if name.startswith("net.net.") else name
            handles.append(m.register_forward_hook(lambda mod, i, o, key=key: store.__setitem__(key, i[0].detach())))
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    return store


def sign_ties(model: nn.Module, view: nn.Module, x: torch.Tensor) -> list[float]:
    """|z| / max|z| of the layer, for every ReLU input whose sign differs between model and view."""
    a, b = relu_inputs(model, x), relu_inputs(view.net, x)
    assert a.keys() == b.keys() and a
    return [float(v) for k in a for v in (a[k].abs() / a[k].abs().max())[(a[k] > 0) != (b[k] > 0)]]


@pytest.mark.parametrize("name", list(CNNS))
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1), channels=st.sampled_from([1, 3]), batch=st.integers(1, 3),
       path=st.sampled_from(["folded", "folded-cl"]))
def test_the_folded_network_gives_the_models_logits_and_input_gradients(name, seed, channels, batch, path):
    """float32, relative 1e-5: logits always; input gradients too, or else the difference is float32's and
    not the fold's. Two ways it is: (1) the input gradient of a ReLU network is piecewise constant, and where
    a unit's input lies within rounding of zero the two networks can put it on different sides, and that one
    unit moves the gradient by more (up to ~3e-2 seen, on resnet18 and wrn-34-10 with random statistics,
    either network being the one far from the float64 gradient): such a difference comes with a sign tie
    (|z| < 1e-5 of its layer's largest); (2) in wrn-34-10, 34 layers deep, rounding alone can reach 1e-5: the
    view's gradient is then within 1e-5 of the float64 gradient (the model's float32 one is the farther)."""
    model = randomised(name, seed, channels)
    size = CNNS[name]
    g = torch.Generator().manual_seed(seed + 1)
    x, y = torch.rand(batch, channels, size, size, generator=g), torch.randint(0, 10, (batch,), generator=g)
    view = build(model, path)
    assert isinstance(view, AttackView) and view.path == path and view.folds == len(fold_pairs(model)) > 0
    want_logits, want_grad = logits_and_input_grad(model, x, y)
    got_logits, got_grad = logits_and_input_grad(view, x, y)
    assert rel(got_logits, want_logits) < 1e-5
    if rel(got_grad, want_grad) >= 1e-5:
        ties = sign_ties(model, view, x)
        if not ties:
            exact = logits_and_input_grad(copy.deepcopy(model).double(), x.double(), y)[1]
            assert rel(got_grad.double(), exact) < 1e-5, (rel(got_grad, want_grad), rel(want_grad.double(), exact))
        else:
            assert max(ties) < 1e-5, (rel(got_grad, want_grad), ties)
    assert F.cosine_similarity(got_grad.flatten(), want_grad.flatten(), dim=0) > 0.999


@pytest.mark.parametrize("name", list(CNNS))
@pytest.mark.parametrize("path", ["folded", "folded-cl"])
def test_the_fold_is_exact_in_float64(name, path):
    """In float64 no unit sits within rounding of zero: logits and input gradients agree to 1e-10."""
    model = randomised(name, 7, 3).double()
    size = CNNS[name]
    g = torch.Generator().manual_seed(8)
    x, y = torch.rand(2, 3, size, size, generator=g, dtype=torch.float64), torch.tensor([1, 8])
    view = build(model, path)
    assert next(view.parameters()).dtype is torch.float64
    want_logits, want_grad = logits_and_input_grad(model, x, y)
    got_logits, got_grad = logits_and_input_grad(view, x, y)
    assert rel(got_logits, want_logits) < 1e-10 and rel(got_grad, want_grad) < 1e-10


def test_what_folds_in_each_registered_cnn():
    """Every Conv-BN pair folds; a BatchNorm after a residual sum (pre-activation blocks) stays."""
    counts = {n: (len(fold_pairs(models.create_model(n, in_channels=3))),
                  sum(isinstance(m, nn.BatchNorm2d) for m in models.create_model(n, in_channels=3).modules()))
              for n in CNNS}
    assert counts["small-cnn"] == (3, 3) and counts["small-cnn-4"] == (4, 4) and counts["resnet18"] == (20, 20)
    assert 0 < counts["preact-resnet18"][0] < counts["preact-resnet18"][1]
    assert 0 < counts["wrn-34-10"][0] < counts["wrn-34-10"][1]


def test_models_without_batchnorm_take_the_plain_path():
    vit = models.create_model("vit-tiny")
    assert fold_pairs(vit) == [] and build(vit, "folded-cl") is vit
    assert choose(vit, (2, 1, 28, 28), 10) == ("plain", {})


def test_unfoldable_pairs_stay():
    class Shared(nn.Module):  # the convolution's output also feeds the sum: folding would change it
        def __init__(self):
            super().__init__()
            self.conv, self.bn, self.head = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Linear(4, 2)

        def forward(self, x):
            z = self.conv(x)
            return self.head((self.bn(z) + z).mean((2, 3)))

    assert fold_pairs(Shared()) == []
    cnn = models.create_model("small-cnn")
    cam_conv = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    cnn.net.features[2] = cam_conv  # the CAM layer's own output is a block's: its conv still folds
    assert "net.features.2.0" in {p.conv for p in fold_pairs(cnn)}
    cnn.cam_layer_name = "net.features.2.0"  # a convolution that is itself the CAM layer keeps its output
    assert "net.features.2.0" not in {p.conv for p in fold_pairs(cnn)}


def test_building_and_using_the_view_never_changes_the_model():
    model = randomised("resnet18", 0, 3).train()
    model.net.conv1.register_forward_hook(lambda *a: None)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hooks, modes = hook_counts(model), modes_of(model)
    formats = {k: v.is_contiguous() for k, v in model.state_dict().items()}
    x, y = torch.rand(2, 3, 32, 32), torch.tensor([1, 2])
    for path in ("folded", "folded-cl"):
        view = build(model, path)
        pgd(view, x, y, eps=8 / 255, step_size=2 / 255, steps=2)
        compute_cam(view, x, y, "gradcam")
        compute_cam(view, x, y, "gradcam", backend="library")
        view.sync(force=True)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert hook_counts(model) == hooks and modes_of(model) == modes == {True}
    assert {k: v.is_contiguous() for k, v in after.items()} == formats
    assert grads_of(model) == [] and all(p.requires_grad for p in model.parameters())
    assert hook_counts(view) == {}  # the copy carries none of the model's hooks


def test_the_view_follows_optimizer_steps_batchnorm_statistics_and_loaded_weights():
    torch.manual_seed(0)
    model = models.create_model("small-cnn")
    view = build(model, "folded-cl")
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))

    def agrees() -> bool:
        view.sync()
        with torch.no_grad():
            want = model.eval()(x)
            model.train()
            return rel(view(x), want) < 1e-5

    assert agrees()
    for _ in range(3):  # each step changes weights and, through the train-mode forward, running statistics
        model.train()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad()
        assert agrees()
    model.train()
    with torch.no_grad():
        model(x * 3)  # only the BatchNorm statistics move
    assert agrees()
    other = models.create_model("small-cnn")
    model.load_state_dict(other.state_dict())
    assert agrees()
    stamp = view._stamp
    assert view.sync() is view and view._stamp == stamp  # nothing changed: nothing copied


def test_the_view_stays_in_eval_mode_and_keeps_the_cam_layer():
    model = randomised("small-cnn", 3, 1)
    view = build(model, "folded")
    view.train()
    assert all(not m.training for m in view.net.modules())
    assert view.cam_layer() is view.net.get_submodule("net.features.2")
    assert [n for n, _ in view.named_modules() if n.endswith("features.2")] == ["net.net.features.2"]
    assert all(not p.requires_grad for p in view.parameters())


@pytest.mark.parametrize("path", ["folded", "folded-cl"])
@pytest.mark.parametrize("method", ["gradcam", "layercam", "gradcam++"])
def test_cams_of_the_view_are_the_models(path, method):
    model = randomised("resnet18", 1, 3)
    x, y = torch.rand(3, 3, 32, 32), torch.tensor([0, 4, 9])
    view = build(model, path)
    for backend in ("native", "library"):
        want = compute_cam(model, x, y, method, backend=backend)
        got = compute_cam(view, x, y, method, backend=backend)
        assert (got - want).abs().max() < 1e-4, backend


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), kind=st.sampled_from(["scalar", "per-pixel", "per-channel"]),
       attack=st.sampled_from(["pgd-ce", "pgd-kl", "mma"]), path=st.sampled_from(["folded", "folded-cl"]))
def test_attacks_on_the_view_stay_in_the_box_and_in_the_unit_cube(seed, kind, attack, path):
    g = torch.Generator().manual_seed(seed)
    model = randomised("small-cnn", seed % 1000, 1)
    x, y = torch.rand(3, 1, 28, 28, generator=g), torch.randint(0, 10, (3,), generator=g)
    eps = {"scalar": 0.1, "per-pixel": torch.rand(3, 1, 28, 28, generator=g) * 0.2,
           "per-channel": torch.rand(1, 1, 28, 28, generator=g) * 0.2}[kind]
    torch.manual_seed(seed)
    view = build(model, path)
    if attack == "mma":
        x_adv = mma(view, x, y, eps=eps, step_size=0.05, steps=3)
    else:
        x_adv = pgd(view, x, y, eps=eps, step_size=0.05, steps=3, loss=attack[4:])
    assert x_adv.shape == x.shape and x_adv.is_contiguous() or x_adv.is_contiguous(memory_format=torch.channels_last)
    assert bool(((x_adv - x).abs() <= torch.as_tensor(eps) + 1e-6).all())
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1


def test_pgd_on_the_view_is_pgd_on_the_model():
    model = randomised("resnet18", 2, 3)
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    outs = []
    for net in (model, build(model, "folded"), build(model, "folded-cl")):
        torch.manual_seed(0)
        outs.append(pgd(net, x, y, eps=8 / 255, step_size=2 / 255, steps=3))
    for other in outs[1:]:  # a sign step can flip where a gradient entry is ~0: nearly every pixel agrees
        assert float(((other - outs[0]).abs() > 1e-6).float().mean()) < 0.01


# --- the choice ------------------------------------------------------------------------------------------

def test_auto_times_every_candidate_and_keeps_the_fastest(monkeypatch):
    model = models.create_model("small-cnn")
    path, timings = choose(model, (4, 1, 28, 28), 10, min_seconds=0.0)
    assert set(timings) == {"plain", "folded", "folded-cl"} and min(timings.values()) > 0
    assert path == min(timings, key=timings.get)
    monkeypatch.setattr(attack_view, "measure", lambda *a, **k: {"plain": 3.0, "folded": 1.0, "folded-cl": 2.0})
    assert choose(model, (4, 1, 28, 28), 10) == ("folded", {"plain": 3.0, "folded": 1.0, "folded-cl": 2.0})


def test_a_requested_path_is_kept_and_zero_in_the_environment_forces_plain(monkeypatch):
    model = models.create_model("small-cnn")
    monkeypatch.setattr(attack_view, "measure", lambda *a, **k: pytest.fail("a pinned path is not timed"))
    assert choose(model, (4, 1, 28, 28), 10, "folded-cl") == ("folded-cl", {})
    assert choose(model, (4, 1, 28, 28), 10, "plain") == ("plain", {})
    monkeypatch.setenv(attack_view.ENV, "0")
    assert choose(model, (4, 1, 28, 28), 10) == ("plain", {}) == choose(model, (4, 1, 28, 28), 10, "folded")
    assert build(model, "folded-cl") is model
    with pytest.raises(ValueError, match="accepted: auto, plain, folded, folded-cl"):
        choose(model, (4, 1, 28, 28), 10, "compiled")


def test_measuring_leaves_the_model_as_it_was():
    model = models.create_model("small-cnn").train()
    before = copy.deepcopy(model.state_dict())
    measure(model, (2, 1, 28, 28), 10, steps=1, min_seconds=0.0)
    assert model.training and all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
