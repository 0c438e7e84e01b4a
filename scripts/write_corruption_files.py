"""Write the corruption benchmark of a dataset's evaluation images in the CIFAR-10-C file layout.

    .venv/bin/python scripts/write_corruption_files.py --dataset fashion-mnist --n 1000 --out /tmp/fmnist-c

DIR/<corruption>.npy holds uint8 [5*n, H, W] (grey) or [5*n, H, W, 3], severities 1-5 stacked, made by
part.evaluation.corruptions (corrupt-tta, seeded as `part eval --attacks corruptions` seeds it) from the first n
images of the evaluation subset (`load_dataset(name, "test", subset=n)`), and DIR/labels.npy their
labels. `part eval --attacks corruptions --corruption-files DIR --n n` then reads the very images the
generated benchmark uses, so both give the same accuracies.
"""

from __future__ import annotations

import argparse

import numpy as np

from part.evaluation.corruption_files import write_cifar_c
from part.evaluation.corruptions import CORRUPTIONS, SEVERITIES, corrupt_images
from part.data.datasets import load_dataset
from part.evaluation.evaluate import as_tensors


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--out", required=True)
    p.add_argument("--types", default=",".join(CORRUPTIONS), help="comma-separated corruptions")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    x, y = as_tensors(load_dataset(args.dataset, "test", subset=args.n))
    stacks = {}
    for name in [t.strip() for t in args.types.split(",") if t.strip()]:
        blocks = [corrupt_images(x, name, s, args.seed) for s in SEVERITIES]
        arr = (np.concatenate([b.numpy() for b in blocks]) * 255).round().astype(np.uint8)  # [5n, C, H, W]
        stacks[name] = arr[:, 0] if arr.shape[1] == 1 else arr.transpose(0, 2, 3, 1)
        print(f"{name}: {stacks[name].shape}", flush=True)
    write_cifar_c(args.out, stacks, y.numpy())
    print(f"wrote {len(stacks)} corruptions and labels.npy to {args.out}")


if __name__ == "__main__":
    main()
