"""How a CAM relates to the object and to another CAM: the numbers behind "PART-based methods align
better with semantic information" (Zhang et al., ICML 2024, Section 5 and Figure 2).

- energy on the object: sum(cam * object) / sum(cam), the share of the map's mass on the object
  (the energy-based pointing game of Score-CAM, Wang et al., CVPR-W 2020). The object mask is known
  where the dataset record says how (Fashion-MNIST: input pixels brighter than 0.1 on black) or the
  dataset itself gives it (fashion-mnist-clutter: part.data.datasets.object_masks); elsewhere `object_mask`
  answers None and no number is made up;
- between two maps of the same image: the IoU of their top-k % pixels and Spearman's rank
  correlation (scipy.stats.spearmanr, ties averaged).

Every function takes batches: cams [B,H,W], images [B,C,H,W] in [0,1].
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import spearmanr

from part.data.datasets import DATASETS


def object_mask(x: torch.Tensor, dataset: str) -> torch.Tensor | None:
    """[B,H,W] bool: the object's pixels, or None where the dataset has no known object mask."""
    info = DATASETS.get(dataset)
    if info is None or info.object_threshold is None:
        return None
    return x.float().mean(1) > info.object_threshold


def mask_rule(dataset: str) -> str:
    """How the object masks of `dataset` are made, in words."""
    info = DATASETS.get(dataset)
    if info is not None and info.masks_in_data:
        return "each sample's object as the dataset placed it (its silhouette before clutter and noise)"
    if info is not None and info.object_threshold is not None:
        return f"input pixels brighter than {info.object_threshold:g}"
    return "no object mask is known"


def energy_on_object(cam: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B]: the share of each map's mass on its object (NaN for an all-zero map)."""
    cam = cam.float().clamp(min=0).flatten(1)
    total = cam.sum(1)
    inside = (cam * mask.flatten(1).float()).sum(1)
    return torch.where(total > 0, inside / total.clamp(min=1e-12), torch.full_like(total, float("nan")))


def top_k_iou(a: torch.Tensor, b: torch.Tensor, percent: float = 20.0) -> torch.Tensor:
    """[B]: IoU of the top `percent` % pixels of maps a and b (ties broken by position)."""
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent}")
    a, b = a.float().flatten(1), b.float().flatten(1)
    k = max(1, round(a.shape[1] * percent / 100))
    top_a = torch.zeros_like(a, dtype=torch.bool).scatter_(1, a.topk(k, 1).indices, True)
    top_b = torch.zeros_like(b, dtype=torch.bool).scatter_(1, b.topk(k, 1).indices, True)
    return (top_a & top_b).sum(1).float() / (top_a | top_b).sum(1).float()


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[B]: Spearman's rank correlation of maps a and b, pixel by pixel (NaN where one map is constant)."""
    out = []
    for u, v in zip(a.float().flatten(1).cpu().numpy(), b.float().flatten(1).cpu().numpy()):
        if np.ptp(u) == 0 or np.ptp(v) == 0:
            out.append(float("nan"))
        else:
            out.append(float(spearmanr(u, v).statistic))
    return torch.tensor(out)
