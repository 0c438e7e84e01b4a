"""The attack-time network: the model as the inner maximisation sees it, in eval mode, made cheap.

Ten of every eleven forward-backward passes of a PGD-10 training step are attack steps, and every
attack step runs the model in eval mode, where BatchNorm is a fixed per-channel affine map. The view
is a copy of the network in which

- every eval-mode Conv2d -> BatchNorm pair is folded into one convolution
  (W' = W * g / sqrt(v + e), b' = (b - m) * g / sqrt(v + e) + beta; the BatchNorm becomes Identity),
  found by tracing the forward with torch.fx, so a custom block's `bn(conv(x))` folds as well as a
  Sequential's; a BatchNorm that follows anything else (a pre-activation block's first one) stays;
- optionally the weights and the input are in channels_last (NHWC), which oneDNN's bf16 convolutions
  and cuDNN prefer.

The view keeps the model's module tree (the CAM layer and the attention layers resolve to the same
paths and give the same outputs; a convolution that is itself a CAM layer or an attention layer is not
folded), never changes the model it was made from, and is refreshed from the model's current weights
and BatchNorm statistics before it is used (`sync`, which copies only when a source tensor changed:
optimiser steps and load_state_dict bump a tensor's version, and every update of BatchNorm's running
statistics adds 1 to its num_batches_tracked).
It runs under whatever autocast its caller holds; its weights do not require grad (an attack needs the
input's gradient only). The plain path is the model itself, and a model with nothing to fold (no
BatchNorm, a ViT's LayerNorm) has only that one.

Which variant is fastest depends on the machine, the model and the batch: `measure` times a few
attack steps of each candidate on the run's own model and batch shape, and `choose` keeps the fastest.
`PART_ATTACK_FAST=0` in the environment forces the plain path whatever is asked for.
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

PATHS = ("plain", "folded", "folded-cl")  # the model itself; its folded copy; that copy in channels_last
CHOICES = ("auto", *PATHS)
ENV = "PART_ATTACK_FAST"


def forced_plain() -> bool:
    """PART_ATTACK_FAST=0: every attack runs the model itself."""
    return os.environ.get(ENV, "").strip() == "0"


def _check(path: str) -> None:
    if path not in CHOICES:
        raise ValueError(f"attack path '{path}' is not accepted; accepted: {', '.join(CHOICES)}")


@dataclass(frozen=True)
class FoldPair:
    conv: str  # dotted path of the Conv2d
    bn: str  # dotted path of the BatchNorm that takes the convolution's output, and only it


def _hooked(model: nn.Module) -> set[str]:
    """Paths of the modules whose outputs this project hooks: the CAM layer and the attention layers."""
    wanted = []
    if hasattr(model, "cam_layer"):
        with contextlib.suppress(Exception):
            wanted.append(model.cam_layer())
    if hasattr(model, "attention_layers"):
        with contextlib.suppress(Exception):
            wanted += list(model.attention_layers())
    ids = {id(m) for m in wanted}
    return {name for name, m in model.named_modules() if id(m) in ids}


class _Tracer(torch.fx.Tracer):
    """torch.fx's tracer, with every convolution and BatchNorm a leaf (a subclass too, such as DDP's
    BatchNorm over all ranks), so that their calls are graph nodes that can be paired."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, (nn.Conv2d, nn.modules.batchnorm._BatchNorm)) or super().is_leaf_module(m, qualname)


def fold_pairs(model: nn.Module) -> list[FoldPair]:
    """The Conv2d -> BatchNorm pairs of `model`'s forward that fold exactly; [] when it cannot be traced.

    A pair folds when the BatchNorm's only input is the convolution's output, nothing else reads that
    output, each module is called once per forward, the BatchNorm has running statistics, and the
    convolution is not a layer whose output is hooked (the CAM layer, an attention layer).
    """
    modules = dict(model.named_modules())
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in modules.values()):
        return []
    try:
        graph = _Tracer().trace(model)
    except Exception:  # data-dependent control flow and the like: nothing is folded
        return []
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    hooked = _hooked(model)
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.modules.batchnorm._BatchNorm):
            continue
        bn = modules[node.target]
        if len(node.args) != 1 or node.kwargs or not isinstance(node.args[0], torch.fx.Node):
            continue
        src = node.args[0]
        if src.op != "call_module" or not isinstance(modules.get(src.target), nn.Conv2d):
            continue
        if len(src.users) != 1 or calls[src.target] != 1 or calls[node.target] != 1:
            continue
        if bn.running_mean is None or bn.running_var is None or bn.num_features != modules[src.target].out_channels:
            continue
        if src.target in hooked:
            continue
        pairs.append(FoldPair(src.target, node.target))
    return pairs


def _folded(conv_w, conv_b, bn_mean, bn_var, bn_eps, bn_w, bn_b) -> tuple[torch.Tensor, torch.Tensor]:
    """The convolution's weight and bias with the eval-mode BatchNorm after it folded in, in float64 (one
    rounding when copied into the view's dtype, so a float64 view is exact to float64's precision)."""
    scale = torch.rsqrt(bn_var.double() + bn_eps)
    if bn_w is not None:
        scale = scale * bn_w.double()
    bias = -bn_mean.double() * scale
    if conv_b is not None:
        bias = bias + conv_b.double() * scale
    if bn_b is not None:
        bias = bias + bn_b.double()
    weight = conv_w.double() * scale.reshape(-1, *([1] * (conv_w.dim() - 1)))
    return weight, bias


class AttackView(nn.Module):
    """The folded attack network of `model`, in channels_last when `channels_last`.

    Call it like the model; `cam_layer()`, `attention_layers()`, `reshape_transform` and `spec_name`
    are the folded copy's (the same paths as the model's). `sync()` refreshes the copy from the model.
    """

    def __init__(self, model: nn.Module, channels_last: bool = False):
        super().__init__()
        self.pairs: list[FoldPair] = fold_pairs(model)
        self.channels_last = channels_last
        self.path = "folded-cl" if channels_last else "folded"
        object.__setattr__(self, "source", model)  # not a submodule: its parameters are not the view's
        net = copy.deepcopy(model)
        for m in net.modules():  # a copy carries no hook of the model's
            for kind in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
                getattr(m, kind).clear()
        for pair in self.pairs:
            conv = net.get_submodule(pair.conv)
            if conv.bias is None:
                conv.bias = nn.Parameter(torch.zeros(conv.out_channels, device=conv.weight.device,
                                                     dtype=conv.weight.dtype))
            parent, _, name = pair.bn.rpartition(".")
            setattr(net.get_submodule(parent) if parent else net, name, nn.Identity())
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)  # the attack needs the input's gradient only
        # the layout is the path's, whatever the model's (a CUDA run with channels_last=true trains in NHWC)
        net = net.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        self.net = net
        folded = {p.conv for p in self.pairs} | {p.bn for p in self.pairs}
        src, dst = dict(_tensors(model)), dict(_tensors(net))
        # (destination, source) of every tensor copied as it is; the folded ones are computed in sync()
        self._copies = [(dst[k], src[k]) for k in dst if k.rpartition(".")[0] not in folded and k in src]
        self._folds = [(net.get_submodule(p.conv), model.get_submodule(p.conv), model.get_submodule(p.bn))
                       for p in self.pairs]
        self._sources = [t for _, t in self._copies] + [t for _, c, b in self._folds for t in _module_tensors(c, b)]
        self._stamp: tuple | None = None
        self.sync()

    @property
    def folds(self) -> int:
        return len(self.pairs)

    def train(self, mode: bool = True) -> "AttackView":
        """Only the flag: the folded copy stays in eval mode (its folded BatchNorms have no batch mode)."""
        self.training = mode
        return self

    def _signature(self) -> tuple:
        return tuple((t._version, t.data_ptr()) for t in self._sources)

    def sync(self, force: bool = False) -> "AttackView":
        """Copy the model's current weights and statistics into the folded copy (a no-op when none changed)."""
        stamp = self._signature()
        if not force and stamp == self._stamp:
            return self
        with torch.no_grad():
            for dst, src in self._copies:
                dst.copy_(src)
            for conv, src_conv, bn in self._folds:
                w, b = _folded(src_conv.weight, src_conv.bias, bn.running_mean, bn.running_var, bn.eps,
                               bn.weight, bn.bias)
                conv.weight.copy_(w)
                conv.bias.copy_(b)
        self._stamp = stamp
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    # what the CAM code and the attention code look up on a model
    def cam_layer(self) -> nn.Module:
        return self.net.cam_layer()

    def attention_layers(self) -> list[nn.Module]:
        return list(self.net.attention_layers()) if hasattr(self.net, "attention_layers") else []

    @property
    def reshape_transform(self):
        return getattr(self.net, "reshape_transform", None)

    @property
    def spec_name(self) -> str:
        return getattr(self.net, "spec_name", type(self.net).__name__)


def _tensors(model: nn.Module) -> Iterable[tuple[str, torch.Tensor]]:
    yield from model.named_parameters(remove_duplicate=False)
    yield from model.named_buffers(remove_duplicate=False)


def _module_tensors(conv: nn.Conv2d, bn: nn.Module) -> list[torch.Tensor]:
    """What a fold reads, and num_batches_tracked: BatchNorm's kernel updates its running statistics
    without bumping their version, but every update of them also adds 1 to num_batches_tracked."""
    return [t for t in (conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var,
                        getattr(bn, "num_batches_tracked", None)) if t is not None]


def build(model: nn.Module, path: str) -> nn.Module:
    """The network the attacks run on `path`: the model itself for plain (also where PART_ATTACK_FAST=0
    or nothing folds), else its AttackView."""
    _check(path)
    if path == "auto":
        raise ValueError("build() needs a resolved path (plain, folded, folded-cl); choose() resolves auto")
    if forced_plain() or path == "plain" or not fold_pairs(model):
        return model
    return AttackView(model, channels_last=path == "folded-cl")


def path_of(network: nn.Module) -> str:
    """plain, folded or folded-cl: the path of a network build() returned."""
    return network.path if isinstance(network, AttackView) else "plain"


def candidates(model: nn.Module) -> list[str]:
    """The paths worth timing for `model`: plain, and the folded ones where something folds."""
    if forced_plain():
        return ["plain"]
    return list(PATHS) if fold_pairs(model) else ["plain"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def attack_step(view: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One PGD step's network work: forward in eval mode and the input gradient of the CE loss."""
    x = x.detach().requires_grad_(True)
    logits = view(x)
    loss = F.cross_entropy(logits.float(), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def measure(model: nn.Module, shape: tuple[int, ...], num_classes: int, *,
            autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
            paths: list[str] | None = None, steps: int = 3, warmup: int = 1, min_seconds: float = 1.0,
            max_rounds: int = 30, device: torch.device | None = None) -> dict[str, float]:
    """Seconds of one attack step (forward + input gradient) of each path on a batch of `shape`: the
    fastest of its timed steps, since other work on a shared machine only ever adds time.

    Every round times each path once, in an order that alternates, so drift favours none; after
    `warmup` rounds, at least `steps` timed rounds, more while all rounds took under `min_seconds`
    (a small model's steps are short and noisy), at most `max_rounds`. Random inputs in [0,1];
    `model` is not changed (its mode is restored).
    """
    paths = candidates(model) if paths is None else paths
    device = device or next(model.parameters()).device
    g = torch.Generator().manual_seed(0)
    x = torch.rand(shape, generator=g).to(device)
    y = torch.randint(0, num_classes, (shape[0],), generator=g).to(device)
    was_training = model.training
    model.eval()
    try:
        views = {p: build(model, p) for p in paths}
        times: dict[str, list[float]] = {p: [] for p in paths}
        start = time.perf_counter()
        with autocast():
            for r in range(warmup + max(steps, max_rounds)):
                if r >= warmup + steps and (time.perf_counter() - start >= min_seconds or r >= warmup + max_rounds):
                    break
                for p in paths if r % 2 == 0 else paths[::-1]:
                    _sync(device)
                    t0 = time.perf_counter()
                    attack_step(views[p], x, y)
                    _sync(device)
                    if r >= warmup:
                        times[p].append(time.perf_counter() - t0)
    finally:
        model.train(was_training)
    return {p: min(t) for p, t in times.items()}


def choose(model: nn.Module, shape: tuple[int, ...], num_classes: int, requested: str = "auto", *,
           autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
           **timing) -> tuple[str, dict[str, float]]:
    """(the path to attack with, the seconds of one attack step measured for each candidate; {} unmeasured).

    `requested` other than auto is kept (plain where PART_ATTACK_FAST=0 or nothing folds); auto times
    the candidates (measure(); `timing`: its steps, warmup, min_seconds, max_rounds) and keeps the fastest.
    """
    _check(requested)
    if forced_plain():
        return "plain", {}
    options = candidates(model)
    if requested != "auto":
        return (requested if requested in options else "plain"), {}
    if options == ["plain"]:
        return "plain", {}
    timings = measure(model, shape, num_classes, autocast=autocast, paths=options, **timing)
    return min(timings, key=timings.get), timings
