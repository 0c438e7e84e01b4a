"""CAMs of the whole training set, keyed by dataset index, refreshed every s epochs.

Keyed by index, never by batch position: the official code looked masks up by batch number in a
differently shuffled pass, so every image was attacked with another image's mask. The cache holds
the CAM of each un-augmented image; the trainer crops and flips it together with the image, so the
eps-map that bounds an augmented image is that image's own.
"""

from __future__ import annotations

import copy
import time
from typing import Callable

import torch

from part.training import distributed as dist
from part.data.batching import batches, shard_bounds
from part.data.datasets import SubsetDataset


class CamCache:
    def __init__(self, cams: torch.Tensor, epoch: int):
        self.cams = cams  # [N,H,W] float16, row i belongs to dataset index i
        self.epoch = epoch  # the epoch at whose start it was computed

    @classmethod
    def build(cls, dataset, cam_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *, epoch: int,
              batch_size: int = 256, device: str | torch.device = "cpu") -> "CamCache":
        """Run cam_fn(x, y) -> [B,H,W] over the dataset in index order (no augmentation).

        Under DDP each rank maps a contiguous block of indices and the blocks are gathered in rank
        order, so every rank holds the whole cache and row i is still dataset index i.
        """
        rank, world = dist.rank(), dist.world()
        sizes = [b - a for a, b in (shard_bounds(len(dataset), r, world) for r in range(world))]
        start, stop = shard_bounds(len(dataset), rank, world)
        block = SubsetDataset(dataset, torch.arange(start, stop))
        local = None
        for x, y, idx in batches(block, batch_size, shuffle=False):
            maps = cam_fn(x.to(device), y.to(device)).to("cpu", torch.float16)
            if local is None:
                local = torch.zeros((len(block),) + tuple(maps.shape[1:]), dtype=torch.float16)
            local[idx] = maps
        if local is None:  # an empty block: learn the map shape from one image
            local = cam_fn(*(t.to(device) for t in _first(dataset))).to("cpu", torch.float16)[:0]
        return cls(dist.all_gather_rows(local, sizes), epoch)

    def lookup(self, idx: torch.Tensor) -> torch.Tensor:
        return self.cams[idx.cpu()].float()

    def state(self) -> dict:
        return {"cams": self.cams, "epoch": self.epoch}

    @classmethod
    def from_state(cls, state: dict) -> "CamCache":
        return cls(state["cams"], int(state["epoch"]))


def masks_for(trainer, epoch: int, status) -> float:
    """Make sure trainer.mask_cache is the one `epoch` uses (kept, loaded or built); returns build seconds.

    Every rank takes the same branch (same config, same files), since building is collective.
    """
    cfg, run = trainer.cfg, trainer.run
    if not trainer.pixel_reweighting(epoch) or cfg.mask_every == 0 or trainer.oracle:
        return 0.0  # per-batch CAMs, or the oracle recipe's object masks: fixed, read by index each step
    due = trainer.last_refresh_epoch(epoch)
    if trainer.mask_cache is not None and trainer.mask_cache.epoch == due:
        return 0.0
    saved = None if trainer.refresh_due(epoch) else run.load_mask_cache()
    if saved is not None and int(saved["epoch"]) == due:
        trainer.mask_cache = CamCache.from_state(saved)
        return 0.0
    status.update(epoch, 0, 1, "mask-refresh", force=True)
    model = trainer.attack_model()  # the attack-time network (folded BatchNorm where it is faster), eval mode
    if due != epoch:  # resumed mid-interval without the cache: rebuild it from the weights it came from
        older = copy.deepcopy(trainer.model)
        older.load_state_dict(run.load_checkpoint(due - 1)["model"])
        model = trainer.attack_model(older)
    t0 = time.time()
    trainer.mask_cache = CamCache.build(trainer.train_set, lambda x, y: trainer.cams(x, y, model),
                                         epoch=due, device=trainer.device)
    seconds = time.time() - t0
    if dist.is_main():
        run.save_mask_cache(trainer.mask_cache.state())
    return seconds


def _first(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    x, y, _ = next(batches(dataset, 1, shuffle=False))
    return x, y
