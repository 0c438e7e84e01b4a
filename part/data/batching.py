"""Deterministic batches of a dataset, whole or as one DDP rank's shard of each global batch, and
crop/flip augmentation that keeps images aligned with their pixel maps."""

from __future__ import annotations

import math
from typing import Iterator

import torch
from torch.utils.data import Dataset


def _get_batch(dataset: Dataset, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if hasattr(dataset, "get_batch"):
        return dataset.get_batch(indices)
    items = [dataset[int(i)] for i in indices]
    return torch.stack([it[0] for it in items]), torch.tensor([int(it[1]) for it in items], dtype=torch.long)


def len_batches(dataset: Dataset, batch_size: int, drop_last: bool = False) -> int:
    n = len(dataset)
    return n // batch_size if drop_last else math.ceil(n / batch_size)


def batches(dataset: Dataset, batch_size: int, *, shuffle: bool, seed: int = 0,
            drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield (x, y, idx) batches; with shuffle the order is a permutation fixed by `seed`."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    n = len(dataset)
    order = _order(n, shuffle, seed)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        if drop_last and len(idx) < batch_size:
            break
        x, y = _get_batch(dataset, idx)
        yield x, y, idx


def _order(n: int, shuffle: bool, seed: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed)) if shuffle else torch.arange(n)


def shard_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """The contiguous part [start, stop) of a batch of n that `rank` of `world` takes (sizes differ by <= 1)."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is outside a world of {world}")
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return start, start + base + int(rank < extra)


def sharded_batches(dataset: Dataset, batch_size: int, *, shuffle: bool, seed: int = 0, rank: int = 0,
                    world: int = 1) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, int]]:
    """Yield (x, y, idx, offset, total): this rank's part of each global batch of `batches`.

    DistributedSampler's contract (one seeded permutation, disjoint shards) cut per step: the parts
    of step t over all ranks are exactly the single-process batch t of `total` images, this one
    starting at `offset`; batch_size stays the global batch. A part may be empty.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    order = _order(len(dataset), shuffle, seed)
    for start in range(0, len(dataset), batch_size):
        batch = order[start:start + batch_size]
        a, b = shard_bounds(len(batch), rank, world)
        x, y = _get_batch(dataset, batch[a:b])
        yield x, y, batch[a:b], a, len(batch)


def random_crop_flip(x: torch.Tensor, *maps: torch.Tensor | None, padding: int = 4,
                     generator: torch.Generator | None = None, flip: bool = True,
                     shard_of: tuple[int, int] | None = None):
    """Zero-pad, randomly crop back to HxW and randomly flip each sample of x [B,C,H,W].

    Every tensor in `maps` ([B,H,W] or [B,C',H,W], or None) gets the same per-sample crop and flip,
    so importance maps stay aligned with their images. shard_of=(offset, total): x is rows
    offset..offset+B-1 of a global batch of `total`; the crops are drawn for the whole batch and
    these rows kept, so every image is cropped as in a single process. Returns (x_aug, *maps_aug).
    """
    if x.dim() != 4:
        raise ValueError(f"x must be [B,C,H,W], got {tuple(x.shape)}")
    B, _, H, W = x.shape
    offset, total = shard_of or (0, B)
    keep = slice(offset, offset + B)
    dev = generator.device if generator is not None else torch.device("cpu")
    oy = torch.randint(0, 2 * padding + 1, (total,), generator=generator, device=dev)[keep].to(x.device)
    ox = torch.randint(0, 2 * padding + 1, (total,), generator=generator, device=dev)[keep].to(x.device)
    rows = oy[:, None] + torch.arange(H, device=x.device)                      # [B,H]
    cols = ox[:, None] + torch.arange(W, device=x.device)                      # [B,W]
    if flip:
        flipped = (torch.rand(total, generator=generator, device=dev)[keep] < 0.5).to(x.device)
        cols = torch.where(flipped[:, None], cols.flip(1), cols)
    b = torch.arange(B, device=x.device)[:, None, None]

    def apply(t: torch.Tensor | None) -> torch.Tensor | None:
        if t is None:
            return None
        if t.dim() not in (3, 4) or t.shape[0] != B or tuple(t.shape[-2:]) != (H, W):
            raise ValueError(f"map of shape {tuple(t.shape)} does not match images {tuple(x.shape)}")
        t4 = t[:, None] if t.dim() == 3 else t
        padded = t4.new_zeros(B, t4.shape[1], H + 2 * padding, W + 2 * padding)
        padded[:, :, padding:padding + H, padding:padding + W] = t4
        dv = t.device
        out = padded[b.to(dv), :, rows[:, :, None].to(dv), cols[:, None, :].to(dv)]  # [B,H,W,C]
        out = out.permute(0, 3, 1, 2).contiguous()
        return out[:, 0] if t.dim() == 3 else out

    return (apply(x), *(apply(m) for m in maps))
