"""Shared fixtures: a seeded small CNN at 28x28 and helpers that inspect a model after a call."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

import models

# amp=auto (the training default) trains in bf16 on CPUs with native bfloat16: tests train in float32 on
# every machine, subprocesses included, unless a test asks for bf16 (part/precision.py, PART_CPU_BF16).
os.environ["PART_CPU_BF16"] = "0"
# The attack network is chosen by timing when a run starts (part/attacks/attack_view.py), and timings differ
# from run to run: tests attack with the model itself unless a test asks for the folded network.
os.environ["PART_ATTACK_FAST"] = "0"

# Tiny tensors: one intra-op thread avoids oversubscription stalls when the 2 cores are shared.
torch.set_num_threads(1)


@pytest.fixture
def small_cnn() -> nn.Module:
    """The registered small CNN (1 channel, 10 classes) with fixed random weights."""
    torch.manual_seed(0)
    return models.create_model("small-cnn")


@pytest.fixture
def fmnist_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Two 28x28 grey images in [0,1] with labels."""
    g = torch.Generator().manual_seed(1)
    return torch.rand(2, 1, 28, 28, generator=g), torch.tensor([3, 7])


def hook_counts(model: nn.Module) -> dict[str, int]:
    """Module hooks of every kind, by module name and kind; empty when none are registered."""
    counts = {}
    for name, module in model.named_modules():
        for kind in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            n = len(getattr(module, kind))
            if n:
                counts[f"{name or '<root>'}.{kind}"] = n
    return counts


def grads_of(model: nn.Module) -> list[str]:
    """Names of parameters that hold a gradient."""
    return [name for name, p in model.named_parameters() if p.grad is not None]


def modes_of(model: nn.Module) -> set[bool]:
    return {m.training for m in model.modules()}
