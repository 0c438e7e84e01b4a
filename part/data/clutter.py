"""Cluttered, translated Fashion-MNIST: a testbed where the place of the object varies and the
background holds distractors, built from the real Fashion-MNIST files, with the exact object mask
of every sample.

In the style of cluttered MNIST (Mnih et al., "Recurrent Models of Visual Attention", NeurIPS 2014;
Jaderberg et al., "Spatial Transformer Networks", NeurIPS 2015): each garment is placed at a random
position on a larger black canvas; fragments of *other* garments of the same split, at lower
contrast, are scattered around it, and mild Gaussian noise covers the whole canvas. On plain
Fashion-MNIST every garment is centred, so any CAM marks "the middle" and the place of the eps
budget cannot matter; here it can.

Every sample is a pure function of (split, canvas, index): its random numbers come from
numpy's SeedSequence([SEED, split, canvas, index]), so every epoch, process and machine sees the same
image and mask for the same index, and augmentation on top stays aligned with the CAM cache.
The object mask is the placed garment's silhouette (its pixels brighter than
OBJECT_THRESHOLD, before clutter and noise); the garment covers the clutter inside it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["ClutterDataset", "DEFAULT_CANVAS", "OBJECT_THRESHOLD"]

SEED = 16_2024
DEFAULT_CANVAS = 40
GARMENT = 28                  # Fashion-MNIST's side
OBJECT_THRESHOLD = 0.1        # the same silhouette rule as plain Fashion-MNIST's object mask
FRAGMENTS = 4                 # distractors per image
FRAGMENT_SIZE = (8, 14)       # side of a fragment, inclusive range
CONTRAST = (0.3, 0.6)         # fragment brightness relative to its garment
NOISE_STD = 0.03              # of the [0,1] range


class ClutterDataset(Dataset):
    """The cluttered version of `base` (a Fashion-MNIST InMemoryDataset of one split) on a
    `canvas` x `canvas` image; samples are made on first use and kept."""

    def __init__(self, base, split: str, canvas: int = DEFAULT_CANVAS):
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if not GARMENT <= canvas <= 256:
            raise ValueError(f"the clutter canvas must be {GARMENT}..256 pixels per side (the garment is "
                             f"{GARMENT}x{GARMENT}); got image_size={canvas}")
        self.base, self.split, self.canvas = base, split, int(canvas)
        self.name, self.classes = "fashion-mnist-clutter", list(base.classes)
        self.num_classes, self.in_channels, self.image_size = base.num_classes, 1, self.canvas
        self.labels = base.labels
        n = len(base)
        self._images = torch.zeros(n, 1, canvas, canvas, dtype=torch.uint8)
        self._masks = torch.zeros(n, canvas, canvas, dtype=torch.bool)
        self._made = torch.zeros(n, dtype=torch.bool)

    def __len__(self) -> int:
        return len(self.labels)

    def _make(self, i: int) -> None:
        c, src = self.canvas, self.base.images
        rng = np.random.default_rng([SEED, 0 if self.split == "train" else 1, c, i])
        canvas = np.zeros((c, c), np.float32)
        for _ in range(FRAGMENTS):  # distractors: crops of other garments, dimmed, anywhere
            j = int(rng.integers(len(src) - 1))
            j += j >= i  # never the garment itself
            size = int(rng.integers(FRAGMENT_SIZE[0], FRAGMENT_SIZE[1] + 1))
            r0, c0 = (int(v) for v in rng.integers(4, GARMENT - size - 3, 2))  # from the garment's middle
            piece = src[j, 0, r0:r0 + size, c0:c0 + size].numpy().astype(np.float32) / 255
            piece *= rng.uniform(*CONTRAST)
            y, x = (int(v) for v in rng.integers(0, c - size + 1, 2))
            np.maximum(canvas[y:y + size, x:x + size], piece, out=canvas[y:y + size, x:x + size])
        garment = src[i, 0].numpy().astype(np.float32) / 255
        silhouette = garment > OBJECT_THRESHOLD
        y, x = (int(v) for v in rng.integers(0, c - GARMENT + 1, 2))
        region = canvas[y:y + GARMENT, x:x + GARMENT]
        region[silhouette] = garment[silhouette]
        canvas += rng.normal(0.0, NOISE_STD, canvas.shape).astype(np.float32)
        self._images[i, 0] = torch.from_numpy(np.rint(np.clip(canvas, 0, 1) * 255).astype(np.uint8))
        mask = np.zeros((c, c), bool)
        mask[y:y + GARMENT, x:x + GARMENT] = silhouette
        self._masks[i] = torch.from_numpy(mask)
        self._made[i] = True

    def _ensure(self, indices: torch.Tensor) -> None:
        for i in indices[~self._made[indices]].tolist():
            self._make(int(i))

    def __getitem__(self, i: int):
        self._ensure(torch.tensor([i]))
        return self._images[i].float().div_(255), int(self.labels[i]), int(i)

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        indices = torch.as_tensor(indices, dtype=torch.long)
        self._ensure(indices)
        return self._images[indices].float().div_(255), self.labels[indices]

    def object_masks(self, indices: torch.Tensor) -> torch.Tensor:
        """[N,H,W] bool: the placed garment's silhouette of each sample."""
        indices = torch.as_tensor(indices, dtype=torch.long)
        self._ensure(indices)
        return self._masks[indices].clone()
