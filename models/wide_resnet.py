"""WideResNet-34-10.

S. Zagoruyko and N. Komodakis, "Wide Residual Networks", BMVC 2016, in the
configuration used for adversarial training by TRADES (Zhang et al., ICML
2019) and MART (Wang et al., ICLR 2020): depth 34, widen factor 10, no dropout.
Global pooling is adaptive, so any input size works.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import ModelSpec, register

TINY_IMAGENET_MEAN = (0.4802, 0.4481, 0.3975)
TINY_IMAGENET_STD = (0.2770, 0.2691, 0.2821)


class WideBasicBlock(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, stride: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.drop_rate = drop_rate
        self.equal_in_out = in_planes == out_planes
        self.conv_shortcut: nn.Module | None = None
        if not self.equal_in_out:
            self.conv_shortcut = nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.relu1(self.bn1(x))
        shortcut = x if self.conv_shortcut is None else self.conv_shortcut(o)
        out = self.relu2(self.bn2(self.conv1(o)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return self.conv2(out) + shortcut


class NetworkBlock(nn.Module):
    def __init__(self, n: int, in_planes: int, out_planes: int, stride: int, drop_rate: float) -> None:
        super().__init__()
        self.layer = nn.Sequential(
            *[
                WideBasicBlock(in_planes if i == 0 else out_planes, out_planes,
                               stride if i == 0 else 1, drop_rate)
                for i in range(n)
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    def __init__(
        self,
        depth: int = 34,
        widen_factor: int = 10,
        num_classes: int = 10,
        in_channels: int = 3,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"WideResNet depth must satisfy (depth - 4) % 6 == 0; got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        self.block1 = NetworkBlock(n, widths[0], widths[1], 1, drop_rate)
        self.block2 = NetworkBlock(n, widths[1], widths[2], 2, drop_rate)
        self.block3 = NetworkBlock(n, widths[2], widths[3], 2, drop_rate)
        self.final = nn.Sequential(nn.BatchNorm2d(widths[3]), nn.ReLU())
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = self.final(out)
        return self.fc(torch.flatten(self.avgpool(out), 1))


def wrn_34_10(num_classes: int = 10, in_channels: int = 3) -> WideResNet:
    return WideResNet(34, 10, num_classes, in_channels, 0.0)


register(
    ModelSpec(
        name="wrn-34-10",
        builder=lambda num_classes, in_channels: wrn_34_10(num_classes, in_channels),
        input_size=64,
        cam_layer="final",
        mean=TINY_IMAGENET_MEAN,
        std=TINY_IMAGENET_STD,
        description="WideResNet-34-10 (no dropout) as used in TRADES/MART; any input size",
    )
)
