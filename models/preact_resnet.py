"""Pre-activation ResNet-18 for CIFAR-sized inputs.

K. He, X. Zhang, S. Ren and J. Sun, "Identity Mappings in Deep Residual
Networks", ECCV 2016. CIFAR variant: 3x3 stride-1 stem, no max-pool, with a
final BN+ReLU before pooling.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import ModelSpec, register
from .resnet import CIFAR10_MEAN, CIFAR10_STD


class PreActBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.relu2(self.bn2(out)))
        return out + shortcut


class PreActResNet(nn.Module):
    def __init__(
        self,
        num_blocks: tuple[int, int, int, int] = (2, 2, 2, 2),
        num_classes: int = 10,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.layer1 = self._make_layer(64, num_blocks[0], 1)
        self.layer2 = self._make_layer(128, num_blocks[1], 2)
        self.layer3 = self._make_layer(256, num_blocks[2], 2)
        self.layer4 = self._make_layer(512, num_blocks[3], 2)
        self.final = nn.Sequential(nn.BatchNorm2d(512), nn.ReLU())
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(512, num_classes)

    def _make_layer(self, planes: int, n: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(PreActBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = self.final(out)
        return self.linear(torch.flatten(self.avgpool(out), 1))


def preact_resnet18(num_classes: int = 10, in_channels: int = 3) -> PreActResNet:
    return PreActResNet((2, 2, 2, 2), num_classes, in_channels)


register(
    ModelSpec(
        name="preact-resnet18",
        builder=lambda num_classes, in_channels: preact_resnet18(num_classes, in_channels),
        input_size=32,
        cam_layer="final",
        mean=CIFAR10_MEAN,
        std=CIFAR10_STD,
        description="Pre-activation ResNet-18 (CIFAR stem) for 32x32 images",
    )
)
