"""Common corruptions: the CIFAR-10-C protocol on any dataset (19 types, severities 1-5).

Hendrycks and Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations", ICLR 2019; the corruption functions are those of `corrupt-tta` (a maintained port of
the ImageNet-C / CIFAR-10-C code). PART (Zhang et al., ICML 2024) reports them in Table 4.

The library takes uint8 HxWx3 images and draws from NumPy's global RNG. Grey images are replicated to
three channels, corrupted and turned back to grey with the ITU-R 601 luma weights. The RNGs are
seeded per (type, severity) and restored afterwards, so every model sees the same corrupted images.
"""

from __future__ import annotations

import contextlib
import functools
import time
import zlib

import numpy as np
import torch
from torch import nn

from part.evaluation.accuracy import SILENT, Progress, correct_under, fraction

# Table 4's order (noise, blur, weather, digital); names are corrupt-tta's function names.
CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "defocus_blur", "glass_blur",
    "motion_blur", "zoom_blur", "gaussian_blur", "snow", "frost", "fog", "brightness", "spatter",
    "contrast", "elastic_transform", "pixelate", "jpeg_compression", "saturate",
)
SEVERITIES = (1, 2, 3, 4, 5)
LUMA = np.array([0.299, 0.587, 0.114])


def title(name: str) -> str:
    """'jpeg_compression' -> 'JPEG Compression', as Table 4 writes it."""
    return " ".join("JPEG" if w == "jpeg" else w.capitalize() for w in name.split("_"))


def _check(name: str, severity: int) -> None:
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption '{name}'; accepted: {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")


@contextlib.contextmanager
def _seeded_numpy(seed: int):
    """Seed NumPy's global RNG, and skimage's random_noise (impulse noise, which otherwise draws from a
    fresh unseeded generator), for the block; restore both afterwards."""
    import corrupt_tta.corruptions as lib

    saved, random_noise = np.random.get_state(), lib.random_noise
    np.random.seed(seed)
    lib.random_noise = functools.partial(random_noise, rng=np.random.default_rng(seed))
    try:
        yield
    finally:
        np.random.set_state(saved)
        lib.random_noise = random_noise


def corrupt_images(x: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """Corrupted copies of x [N,C,H,W] in [0,1] (C = 1 or 3), quantised to 8 bits like CIFAR-10-C."""
    import corrupt_tta

    _check(name, severity)
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must be [N,1|3,H,W], got {tuple(x.shape)}")
    grey = x.shape[1] == 1
    imgs = (x.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    if grey:
        imgs = np.repeat(imgs, 3, axis=3)
    with _seeded_numpy(zlib.crc32(f"{name}/{severity}/{seed}".encode())):
        out = np.stack([np.asarray(corrupt_tta.corrupt(img, severity, corruption_name=name), dtype=np.float64)
                        for img in imgs])
    if grey:
        out = (out @ LUMA)[..., None]
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div(255).to(x.dtype)


def evaluate_corruptions(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                         types: tuple[str, ...] = CORRUPTIONS, severities: tuple[int, ...] = SEVERITIES,
                         batch_size: int = 128, seed: int = 0, progress: Progress = SILENT) -> dict:
    """Accuracy on every (type, severity) of corrupted x.

    Returns {"accuracy" (mean over all types and severities), "n", "seconds", "severities",
    "mean_by_severity", "types": {type: {"accuracy": [per severity], "correct": [[0/1] * n per
    severity]}}, "params"}.
    """
    for name in types:
        for s in severities:
            _check(name, s)
    t0, per_type = time.time(), {}
    with progress.task("corruptions", len(types) * len(severities) * len(x)) as task:
        for name in types:
            accs, correct = [], []
            for s in severities:
                flags = correct_under(model, corrupt_images(x, name, s, seed), y, batch_size=batch_size)
                accs.append(fraction(flags))
                correct.append([int(c) for c in flags.tolist()])
                task.update(len(x))
            per_type[name] = {"accuracy": accs, "correct": correct}
    by_severity = [float(np.mean([per_type[t]["accuracy"][i] for t in types])) for i in range(len(severities))]
    return {"accuracy": float(np.mean(by_severity)), "n": len(x), "seconds": round(time.time() - t0, 3),
            "severities": list(severities), "mean_by_severity": by_severity, "types": per_type,
            "params": {"library": "corrupt-tta", "seed": seed}}
