"""Tiny models and data for the evaluation tests, trained once per test session."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(not FASHION_DIR.is_dir(), reason=f"Fashion-MNIST not installed at {FASHION_DIR}")


class TinyCNN(nn.Module):
    def __init__(self, channels: int = 1, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 8, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16 * 7 * 7, classes)

    def forward(self, x):
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        return self.fc(x.flatten(1))


class Quantized(nn.Module):
    """Masked gradients: round(x*levels)/levels before the net; round has a zero gradient everywhere."""

    def __init__(self, net: nn.Module, levels: int = 8):
        super().__init__()
        self.net, self.levels = net, levels

    def forward(self, x):
        return self.net(torch.round(x * self.levels) / self.levels)


def _fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(64):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


@functools.lru_cache(maxsize=None)
def fashion(split: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    from part.data.datasets import load_dataset
    from part.evaluation.evaluate import as_tensors

    return as_tensors(load_dataset("fashion-mnist", split, subset=n))


@functools.lru_cache(maxsize=None)
def clean_model() -> nn.Module:
    """A clean-trained (non-robust) tiny CNN on 4000 Fashion-MNIST images: about 75% accuracy."""
    torch.manual_seed(0)
    x, y = fashion("train", 4000)
    return _fit(TinyCNN(), x, y, epochs=8, seed=0)


def masked_model() -> nn.Module:
    """The clean model behind a quantiser: the same decisions, no input gradient anywhere."""
    return Quantized(clean_model()).eval()
