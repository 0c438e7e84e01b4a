"""Small all-convolutional CNN for 28x28 images (Fashion-MNIST).

A compact conv-BN-ReLU network in the spirit of the VGG family
(K. Simonyan and A. Zisserman, "Very Deep Convolutional Networks for
Large-Scale Image Recognition", ICLR 2015) with batch normalisation
(S. Ioffe and C. Szegedy, "Batch Normalization", ICML 2015) and global
average pooling (M. Lin, Q. Chen and S. Yan, "Network In Network", ICLR 2014),
sized for CPU adversarial training.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import ModelSpec, register


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


class SmallCNN(nn.Module):
    """Conv blocks (32/s2, 64/s2, 128/s1, then `extra` more 128/s1), global average pool, linear."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, extra: int = 0) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _block(in_channels, 32, 2),
            _block(32, 64, 2),
            _block(64, 128, 1),
            *[_block(128, 128, 1) for _ in range(extra)],
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


register(
    ModelSpec(
        name="small-cnn",
        builder=lambda num_classes, in_channels: SmallCNN(num_classes, in_channels),
        input_size=28,
        cam_layer="features.2",
        mean=(0.5,),
        std=(0.5,),
        description="3-block conv-BN-ReLU CNN (~94k params) for CPU training on 28x28 images",
    )
)

# A larger canvas (the cluttered testbed's 40x40) needs a wider receptive field: one more stage lets
# each unit of the CAM layer see most of a garment (a receptive field of 23 pixels, not 15).
register(
    ModelSpec(
        name="small-cnn-4",
        builder=lambda num_classes, in_channels: SmallCNN(num_classes, in_channels, extra=1),
        input_size=40,
        cam_layer="features.3",
        mean=(0.5,),
        std=(0.5,),
        description="small-cnn with a fourth 128-channel stage (~242k params) for 40x40 canvases",
    )
)
