"""Seconds per PGD-10 adversarial training step of a model against a baseline, float32 and bf16 autocast.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_step.py [--model vit-tiny] [--repeats 7]
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_step.py --model small-cnn-4 --side 40   # the testbed's

The step is the fmnist-at one: batch 128 of SIDExSIDEx1 (the baseline at --baseline-side), PGD-10 (eps 0.1, step 0.025, random start) in
eval mode, then cross-entropy on the adversarial batch and an Adam update in train mode. Reported: the
median CPU seconds of this process (time.process_time) and wall seconds per step, per model and
precision, and the ViT / small-cnn ratio. The precisions and models are interleaved per repeat so drift
in machine speed favours none of them.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
import torch.nn.functional as F

from models import create_model
from part.attacks import pgd

PRECISIONS = ("float32", "bf16")


def make_step(name: str, precision: str):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_channels=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16"
                    else contextlib.nullcontext())
        with autocast:
            x_adv = pgd(model, x, y, eps=0.1, step_size=0.025, steps=10)
            model.train()
            loss = F.cross_entropy(model(x_adv).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit-tiny")
    parser.add_argument("--side", type=int, default=28, help="the model's input side")
    parser.add_argument("--baseline", default="small-cnn")
    parser.add_argument("--baseline-side", type=int, default=28)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (128,), generator=g)
    inputs = {args.baseline: torch.rand(128, 1, args.baseline_side, args.baseline_side, generator=g),
              args.model: torch.rand(128, 1, args.side, args.side, generator=g)}
    names = (args.baseline, args.model)
    steps = {(n, p): make_step(n, p) for n in names for p in PRECISIONS}
    cpu = {k: [] for k in steps}
    wall = {k: [] for k in steps}
    for r in range(args.repeats + 2):
        order = list(steps) if r % 2 == 0 else list(steps)[::-1]
        for key in order:
            c0, t0 = time.process_time(), time.perf_counter()
            steps[key](inputs[key[0]], y)
            if r >= 2:  # two warm-up rounds
                cpu[key].append(time.process_time() - c0)
                wall[key].append(time.perf_counter() - t0)
    print(f"threads={torch.get_num_threads()}  batch=128, {args.model} at {args.side}px, {args.baseline} at "
          f"{args.baseline_side}px  PGD-10 + Adam step  (median of {args.repeats})")
    for p in PRECISIONS:
        c = {n: statistics.median(cpu[n, p]) for n in names}
        w = {n: statistics.median(wall[n, p]) for n in names}
        for n in names:
            print(f"{p:8s} {n:12s} cpu {c[n]:.3f} s/step   wall {w[n]:.3f} s/step")
        print(f"{p:8s} ratio {args.model}/{args.baseline}: cpu {c[args.model] / c[args.baseline]:.2f}x  "
              f"wall {w[args.model] / w[args.baseline]:.2f}x")


if __name__ == "__main__":
    main()
