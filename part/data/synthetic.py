"""Generated dataset files, for timing and checks where the real dataset is not installed.

`write_cifar10` writes random images in the exact `cifar-10-batches-py` layout that
`load_dataset("cifar10", ...)` reads (data_batch_1..5, test_batch, batches.meta): `make test-gpu`
(scripts/gpu_check.py) and `part bench --model resnet18` train on them. Random pixels train to nothing;
they time and exercise the code exactly as real images of the same shape do.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

CIFAR10_CLASSES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship",
                   b"truck"]


def write_cifar10(root: str | Path, n_train: int, n_test: int, seed: int = 0) -> Path:
    """`n_train` images in 5 training batches and `n_test` in test_batch, as the official tarball lays them out."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sizes = [n_train // 5 + (k < n_train % 5) for k in range(5)]
    for name, n in [(f"data_batch_{k + 1}", s) for k, s in enumerate(sizes)] + [("test_batch", n_test)]:
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        batch = {b"batch_label": name.encode(), b"labels": labels,
                 b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                 b"filenames": [f"{name}_{i}.png".encode() for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"num_cases_per_batch": sizes[0], b"label_names": CIFAR10_CLASSES, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder
