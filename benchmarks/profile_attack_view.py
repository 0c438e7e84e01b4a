"""Where the time of a PGD-K training step goes, on each attack network: the attack steps (forward + input
gradient, eval mode) against the outer update (forward + full backward + optimiser step, train mode), in
float32 and bf16, and a per-operator profile of one attack step of the fast path.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/profile_attack_view.py [--model small-cnn] [--batch 128]

The attack networks are part/attacks/attack_view.py's: plain (the model itself), folded (BatchNorm folded
into the convolutions), folded-cl (and channels_last). The outer update always runs the model itself.
Timings are CPU seconds of this process (time.process_time; with one thread, the compute a step needs,
which other work on a shared machine does not inflate), medians over interleaved repeats.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import statistics
import time

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from models import create_model, get_spec
from part.attacks import attack_view
from part.precision import capability

PRECISIONS = {"float32": None, "bf16": torch.bfloat16}


def _autocast(dtype):
    return torch.autocast("cpu", dtype=dtype) if dtype is not None else contextlib.nullcontext()


def _attack_step(net, x, y, dtype) -> None:
    x_adv = x.clone().requires_grad_(True)
    with _autocast(dtype):
        loss = F.cross_entropy(net(x_adv).float(), y, reduction="sum")
    torch.autograd.grad(loss, x_adv)


def _outer_step(model, opt, x, y, dtype) -> None:
    model.train()
    with _autocast(dtype):
        loss = F.cross_entropy(model(x).float(), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def cpu_ms(model_name: str, batch: int, repeats: int) -> dict[tuple[str, str], float]:
    """Median CPU ms of one attack step for every (network, precision) and of one outer step per precision."""
    torch.manual_seed(0)
    spec = get_spec(model_name)
    channels = 1 if spec.input_size in (28, 40) else 3
    model = create_model(model_name, in_channels=channels)
    opt = torch.optim.SGD(model.parameters(), lr=1e-9)  # the weights barely move: every repeat times the same work
    x = torch.rand(batch, channels, spec.input_size, spec.input_size)
    y = torch.randint(0, 10, (batch,))
    nets = {p: attack_view.build(model, p) for p in attack_view.candidates(model)}
    jobs = {(p, prec): (lambda net=net, d=d: (model.eval(), _attack_step(net, x, y, d)))
            for p, net in nets.items() for prec, d in PRECISIONS.items()}
    jobs.update({("outer update", prec): (lambda d=d: _outer_step(model, opt, x, y, d)) for prec, d in PRECISIONS.items()})
    for net in nets.values():  # the view follows the weights the outer step moves (by 1e-9)
        if isinstance(net, attack_view.AttackView):
            jobs = {k: (lambda f=f, net=net: (net.sync(), f())) if k[0] == net.path else f for k, f in jobs.items()}
    times = {k: [] for k in jobs}
    order = list(jobs)
    for r in range(repeats + 1):
        for k in order if r % 2 == 0 else order[::-1]:
            c0 = time.process_time()
            jobs[k]()
            if r:  # the first round warms up
                times[k].append(1000 * (time.process_time() - c0))
    return {k: statistics.median(v) for k, v in times.items()}


def op_profile(model_name: str, batch: int, path: str, dtype, repeats: int) -> collections.Counter:
    torch.manual_seed(0)
    spec = get_spec(model_name)
    channels = 1 if spec.input_size in (28, 40) else 3
    model = create_model(model_name, in_channels=channels).eval()
    net = attack_view.build(model, path)
    x = torch.rand(batch, channels, spec.input_size, spec.input_size)
    y = torch.randint(0, 10, (batch,))
    _attack_step(net, x, y, dtype)
    out = collections.Counter()
    for _ in range(repeats):
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            _attack_step(net, x, y, dtype)
        for e in prof.key_averages(group_by_input_shape=True):
            if e.self_cpu_time_total > 0:
                out[(e.key, str(e.input_shapes[:1]))] += e.self_cpu_time_total / repeats / 1000
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="small-cnn")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--steps", type=int, default=10, help="attack steps per training step (PGD-K)")
    args = p.parse_args()
    cap = capability()
    print(f"threads: {torch.get_num_threads()}, model: {args.model}, batch {args.batch}, CPU: {cap['cpu_capability']}, "
          f"native bf16: {', '.join(cap['cpu_bf16_flags']) or 'no'}")
    ms = cpu_ms(args.model, args.batch, args.repeats)
    print(f"CPU ms per step (median of {args.repeats}):")
    print(f"{'network':14s} {'float32':>9s} {'bf16':>9s}")
    for net in dict.fromkeys(k[0] for k in ms):
        print(f"{net:14s} {ms[net, 'float32']:9.1f} {ms[net, 'bf16']:9.1f}")
    base = args.steps * ms["plain", "float32"] + ms["outer update", "float32"]
    print(f"a PGD-{args.steps} training step, CPU ms (attack steps + outer update), and its speed-up over float32:")
    for net in (k for k in dict.fromkeys(k[0] for k in ms) if k != "outer update"):
        for prec in PRECISIONS:
            total = args.steps * ms[net, prec] + ms["outer update", prec]
            share = args.steps * ms[net, prec] / total
            print(f"  {net:10s} {prec:8s} {total:9.1f}  {base / total:5.2f}x  (attack {100 * share:4.1f}% of it)")
    best = min(((n, p) for n, p in ms if n != "outer update"), key=ms.get)
    prof = op_profile(args.model, args.batch, best[0], PRECISIONS[best[1]], max(2, args.repeats // 2))
    total = sum(prof.values())
    print(f"one attack step of the fastest ({best[0]}, {best[1]}), profiler ms {total:.1f}:")
    print(f"{'operator':34s} {'first input shape':24s} {'ms':>7s} {'share':>6s}")
    for key, v in prof.most_common(12):
        print(f"{key[0]:34s} {key[1].replace(' ', '')[1:-1]:24s} {v:7.2f} {100 * v / total:5.1f}%")


if __name__ == "__main__":
    main()
