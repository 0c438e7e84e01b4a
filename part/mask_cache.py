"""CAMs of the whole training set, keyed by dataset index, refreshed every s epochs.

Keyed by index, never by batch position: the official code looked masks up by batch number in a
differently shuffled pass, so every image was attacked with another image's mask. The cache holds
the CAM of each un-augmented image; the trainer crops and flips it together with the image, so the
eps-map that bounds an augmented image is that image's own.
"""

from __future__ import annotations

from typing import Callable

import torch

from part.data import batches


class MaskCache:
    def __init__(self, cams: torch.Tensor, epoch: int):
        self.cams = cams  # [N,H,W] float16, row i belongs to dataset index i
        self.epoch = epoch  # the epoch at whose start it was computed

    @classmethod
    def build(cls, dataset, cam_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *, epoch: int,
              batch_size: int = 256, device: str | torch.device = "cpu") -> "MaskCache":
        """Run cam_fn(x, y) -> [B,H,W] over the dataset in index order (no augmentation)."""
        cams = None
        for x, y, idx in batches(dataset, batch_size, shuffle=False):
            maps = cam_fn(x.to(device), y.to(device)).to("cpu", torch.float16)
            if cams is None:
                cams = torch.zeros((len(dataset),) + tuple(maps.shape[1:]), dtype=torch.float16)
            cams[idx] = maps
        return cls(cams, epoch)

    def lookup(self, idx: torch.Tensor) -> torch.Tensor:
        return self.cams[idx.cpu()].float()

    def state(self) -> dict:
        return {"cams": self.cams, "epoch": self.epoch}

    @classmethod
    def from_state(cls, state: dict) -> "MaskCache":
        return cls(state["cams"], int(state["epoch"]))
