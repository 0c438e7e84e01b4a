"""The published corruption benchmarks read from their files: CIFAR-10-C, CIFAR-100-C and Tiny-ImageNet-C.

Hendrycks and Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations", ICLR 2019; PART (Zhang et al., ICML 2024) reports CIFAR-10-C in Table 4. Two layouts:

    cifar-c          DIR/<corruption>.npy  uint8 [5*M, H, W, 3] (or [5*M, H, W] grey): severities 1-5
                     stacked, M images each; DIR/labels.npy  integer [5*M] (or [M])
    tiny-imagenet-c  DIR/<corruption>/<severity>/<wnid>/*.JPEG  (severity 1-5; the wnids, sorted, are the
                     classes in the model's order)

Each severity's first n images are evaluated (n = the test images of the evaluation; CIFAR-10-C keeps
the test set's order, Tiny-ImageNet-C files are taken in file-name order across classes). The result has
the layout of `part.evaluation.corruptions.evaluate_corruptions` (Table 4) and names the corruptions found and
missing. Arrays are read with allow_pickle=False.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from part.evaluation.accuracy import SILENT, Progress, correct_under, fraction
from part.evaluation.corruptions import CORRUPTIONS, LUMA, SEVERITIES

CIFAR_C = ("cifar-c: DIR/<corruption>.npy of uint8 images [5*M, H, W, 3] (severities 1-5 stacked, M images "
           "each, e.g. [50000, 32, 32, 3]) and DIR/labels.npy of integer labels [5*M] or [M]")
TINY_C = "tiny-imagenet-c: DIR/<corruption>/<severity 1-5>/<wnid>/*.JPEG"
LAYOUTS = f"{CIFAR_C}; or {TINY_C}"
IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}


class CorruptionFilesError(ValueError):
    """A file or folder that is missing or does not have the expected layout (names the path and the layout)."""


def detect_layout(root: str | Path) -> str:
    """'cifar-c' or 'tiny-imagenet-c' from what DIR holds."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"corruption files not found: {root} is not a folder; expected {LAYOUTS}")
    if any((root / f"{c}.npy").is_file() for c in CORRUPTIONS):
        return "cifar-c"
    if any((root / c).is_dir() for c in CORRUPTIONS):
        return "tiny-imagenet-c"
    raise CorruptionFilesError(f"{root} holds none of the {len(CORRUPTIONS)} corruptions "
                               f"({', '.join(CORRUPTIONS[:3])}, ...); expected {LAYOUTS}")


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r")
    except (ValueError, OSError) as err:
        raise CorruptionFilesError(f"{path} is not a readable .npy array ({err}); expected {CIFAR_C}") from None


def _cifar_labels(root: Path, total: int, name: str) -> np.ndarray:
    path = root / "labels.npy"
    if not path.is_file():
        raise CorruptionFilesError(f"{path} is missing; expected {CIFAR_C}")
    labels = np.asarray(_load_npy(path))
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise CorruptionFilesError(f"{path} holds {labels.dtype} of shape {labels.shape}; expected {CIFAR_C}")
    if len(labels) not in (total, total // len(SEVERITIES)):
        raise CorruptionFilesError(f"{path} has {len(labels)} labels for {total} images in {name}.npy; "
                                   f"expected {CIFAR_C}")
    return labels


def _cifar_severities(root: Path, name: str, n: int, size: tuple[int, int]) -> tuple[list[np.ndarray], np.ndarray]:
    """The first n images [n, H, W, C] of each severity and their labels."""
    path = root / f"{name}.npy"
    arr = _load_npy(path)
    grey = arr.ndim == 3
    if arr.dtype != np.uint8 or arr.ndim not in (3, 4) or (not grey and arr.shape[3] not in (1, 3)):
        raise CorruptionFilesError(f"{path} holds {arr.dtype} of shape {tuple(arr.shape)}; expected {CIFAR_C}")
    if len(arr) == 0 or len(arr) % len(SEVERITIES):
        raise CorruptionFilesError(f"{path} holds {len(arr)} images, not 5 equal severities; expected {CIFAR_C}")
    if tuple(arr.shape[1:3]) != size:
        raise CorruptionFilesError(f"{path} holds {arr.shape[1]}x{arr.shape[2]} images; the model takes "
                                   f"{size[0]}x{size[1]}")
    per = len(arr) // len(SEVERITIES)
    labels = _cifar_labels(root, len(arr), name)
    k = min(n, per) if n > 0 else per
    blocks = [np.asarray(arr[s * per:s * per + k]) for s in range(len(SEVERITIES))]
    blocks = [b[..., None] if grey else b for b in blocks]
    return blocks, np.asarray(labels[:k])  # labels of one severity: the same images in every block


def _tiny_severities(root: Path, name: str, n: int, size: tuple[int, int]) -> tuple[list[np.ndarray], np.ndarray]:
    from PIL import Image

    blocks, labels = [], None
    for s in SEVERITIES:
        folder = root / name / str(s)
        if not folder.is_dir():
            raise CorruptionFilesError(f"{folder} is missing; expected {TINY_C}")
        wnids = sorted(d.name for d in folder.iterdir() if d.is_dir())
        files = sorted(((f.name, k, f) for k, w in enumerate(wnids) for f in (folder / w).iterdir()
                        if f.suffix.lower() in IMAGE_SUFFIXES), key=lambda t: (t[0], t[1]))
        if not files:
            raise CorruptionFilesError(f"{folder} holds no images; expected {TINY_C}")
        files = files[:n] if n > 0 else files
        images = []
        for _, _, f in files:
            try:
                with Image.open(f) as img:
                    images.append(np.asarray(img.convert("RGB")))
            except OSError as err:
                raise CorruptionFilesError(f"{f} is not a readable image ({err}); expected {TINY_C}") from None
            if images[-1].shape[:2] != size:
                raise CorruptionFilesError(f"{f} is {images[-1].shape[1]}x{images[-1].shape[0]}; the model takes "
                                           f"{size[1]}x{size[0]}")
        these = np.array([k for _, k, _ in files])
        if labels is not None and (len(these) != len(labels) or (these != labels).any()):
            raise CorruptionFilesError(f"{folder} does not hold the same images as severity 1 of {name}; "
                                       f"expected {TINY_C}")
        labels = these
        blocks.append(np.stack(images))
    return blocks, labels


def _to_tensor(block: np.ndarray, channels: int) -> torch.Tensor:
    """uint8 [N,H,W,C] -> float [N,channels,H,W] in [0,1]; RGB to grey with the ITU-R 601 luma weights."""
    x = block.astype(np.float64)
    if x.shape[3] == 3 and channels == 1:
        x = np.clip(np.rint(x @ LUMA), 0, 255)[..., None]
    elif x.shape[3] == 1 and channels == 3:
        x = np.repeat(x, 3, axis=3)
    return torch.from_numpy(x).permute(0, 3, 1, 2).float().div(255)


def evaluate_corruption_files(model: nn.Module, root: str | Path, *, n: int = 0, channels: int = 3,
                              size: tuple[int, int] = (32, 32), num_classes: int | None = None,
                              batch_size: int = 128, progress: Progress = SILENT) -> dict:
    """Accuracy per (corruption, severity) on the files in `root`; the layout of evaluate_corruptions plus
    params {"source": "files", "root", "layout", "found", "missing"}."""
    root = Path(root)
    layout = detect_layout(root)
    found = [c for c in CORRUPTIONS if (root / f"{c}.npy" if layout == "cifar-c" else root / c).exists()]
    read = _cifar_severities if layout == "cifar-c" else _tiny_severities
    data = {name: read(root, name, n, tuple(size)) for name in found}  # every file checked before any attack
    for name, (_, labels) in data.items():
        if num_classes is not None and len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise CorruptionFilesError(f"the labels of {name} in {root} run from {labels.min()} to {labels.max()}; "
                                       f"the model has {num_classes} classes")
    total = sum(len(b) for blocks, _ in data.values() for b in blocks)
    t0, per_type = time.time(), {}
    with progress.task("corruptions", total) as task:
        for name, (blocks, labels) in data.items():
            y = torch.from_numpy(labels.astype(np.int64))
            accs, correct = [], []
            for block in blocks:
                flags = correct_under(model, _to_tensor(block, channels), y, batch_size=batch_size)
                accs.append(fraction(flags))
                correct.append([int(c) for c in flags.tolist()])
                task.update(len(block))
            per_type[name] = {"accuracy": accs, "correct": correct}
    by_severity = [float(np.mean([per_type[t]["accuracy"][i] for t in found])) for i in range(len(SEVERITIES))]
    images = len(next(iter(data.values()))[1])
    return {"accuracy": float(np.mean(by_severity)), "n": images, "seconds": round(time.time() - t0, 3),
            "severities": list(SEVERITIES), "mean_by_severity": by_severity, "types": per_type,
            "params": {"source": "files", "root": str(root.resolve()), "layout": layout, "found": found,
                       "missing": [c for c in CORRUPTIONS if c not in found]}}


def write_cifar_c(root: str | Path, images: dict[str, np.ndarray], labels: np.ndarray) -> None:
    """Write corruptions in the cifar-c layout: images[name] is uint8 [5*M, H, W, C]; labels [M] or [5*M]."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for name, arr in images.items():
        np.save(root / f"{name}.npy", np.ascontiguousarray(arr, dtype=np.uint8), allow_pickle=False)
    np.save(root / "labels.npy", np.asarray(labels, dtype=np.int64), allow_pickle=False)
