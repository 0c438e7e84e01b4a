"""Where bf16 autocast gains and where it does not: CPU seconds of a training step and a per-operator
profile of one PGD step (forward + input-gradient backward), float32 against bf16, on this CPU.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/profile_precision.py [--repeats 20]

The step is the fmnist-at preset's (small-cnn, batch 128, PGD-10 + the outer update). Timings are CPU
seconds of this process (time.process_time), which other work on a shared machine does not inflate;
the per-operator table is the profiler's (wall-clock) self time, whose split is what it is for.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from part.training.config import preset
from part.precision import capability
from part.runs import RunDir
from part.training.trainer import Trainer

AMPS = ("off", "bf16")


def step_cpu_seconds(repeats: int) -> dict[str, float]:
    """Median CPU seconds of one training step (attack + outer update), the precisions interleaved."""
    trainers = {}
    for amp in AMPS:
        with tempfile.TemporaryDirectory() as tmp:
            trainers[amp] = Trainer(preset("fmnist-at", subset=512, eval_n=8, device="cpu", amp=amp), RunDir(tmp))
    x, y = trainers["off"].train_set.get_batch(torch.arange(128))
    sums = dict.fromkeys(("loss", "adv_correct", "clean_correct", "n", "full", "ratio"), 0.0)
    cpu = {a: [] for a in AMPS}
    for r in range(repeats + 2):
        for amp in AMPS if r % 2 == 0 else AMPS[::-1]:
            c0 = time.process_time()
            trainers[amp]._step(x, y, trainers[amp].cfg.eps, 1.0, sums)
            if r >= 2:  # the first two are warm-up
                cpu[amp].append(time.process_time() - c0)
    return {a: statistics.median(v) for a, v in cpu.items()}


def pgd_step_profile(repeats: int) -> dict[bool, collections.Counter]:
    """Self milliseconds per PGD step of each operator and input shape, for float32 (False) and bf16 (True)."""
    torch.manual_seed(0)
    from models import create_model

    model = create_model("small-cnn").eval()
    x, y = torch.rand(128, 1, 28, 28), torch.randint(0, 10, (128,))

    def step(bf16: bool) -> None:
        x_adv = x.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x_adv).float(), y)
        torch.autograd.grad(loss, x_adv)

    for bf16 in (False, True):
        step(bf16)
    out = {False: collections.Counter(), True: collections.Counter()}
    for r in range(repeats):
        for bf16 in (False, True) if r % 2 == 0 else (True, False):
            with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
                step(bf16)
            for e in prof.key_averages(group_by_input_shape=True):
                if e.self_cpu_time_total > 0:
                    out[bf16][(e.key, str(e.input_shapes[:1]))] += e.self_cpu_time_total / repeats / 1000
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    cap = capability()
    print(f"threads: {torch.get_num_threads()}, CPU: {cap['cpu_capability']}, "
          f"native bf16: {', '.join(cap['cpu_bf16_flags']) or 'no'}")
    step = step_cpu_seconds(args.repeats)
    print(f"training step, CPU ms (median of {args.repeats}): float32 {1000 * step['off']:.0f}, "
          f"bf16 {1000 * step['bf16']:.0f}, ratio {step['off'] / step['bf16']:.2f}")
    prof = pgd_step_profile(args.repeats)
    total = {k: sum(v.values()) for k, v in prof.items()}
    print(f"PGD step, profiler ms: float32 {total[False]:.1f}, bf16 {total[True]:.1f}, "
          f"ratio {total[False] / total[True]:.2f}")
    print(f"{'operator':30s} {'first input shape':22s} {'float32':>8s} {'bf16':>8s} {'ratio':>6s} {'share f32':>9s}")
    keys = sorted(set(prof[False]) | set(prof[True]), key=lambda k: -prof[False][k])
    for key in keys[:14]:
        f, b = prof[False][key], prof[True][key]
        shape = key[1].replace(" ", "")[1:-1]
        print(f"{key[0]:30s} {shape:22s} {f:8.2f} {b:8.2f} {f / b if b else float('inf'):6.2f} "
              f"{100 * f / total[False]:8.1f}%")


if __name__ == "__main__":
    main()
