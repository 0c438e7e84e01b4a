"""The training half of `make test-gpu`: one `cifar10-part` epoch on generated CIFAR-10 files.

Writes a few hundred random images in the exact `cifar-10-batches-py` layout (data_batch_1..5,
test_batch, batches.meta) into a temporary folder, runs

    part train --preset cifar10-part --set data_dir=<it> --set epochs=1 --set burn_in_epochs=0
               --set subset=512 --set amp=bf16 --set channels_last=true --set device=cuda --out <tmp>

and checks that the run folder is complete: status completed, one epoch of finite metrics in the
PART phase, a checkpoint that loads with weights_only, probes and the mask cache. On one GPU it
takes well under a minute after start-up. Without CUDA it stops at once with exit status 1 and says
why. `--probe` only reports the GPU (or fails without one). The same path runs on CPU with small
settings (tests/gpu/test_gpu_check.py):

    python scripts/gpu_check.py --device cpu --amp off --channels-last false --images 64 --set attack_steps=1
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from part.data.synthetic import write_cifar10  # noqa: E402,F401  (tests/gpu use it from here)
from part.runs import RunDir, load_model  # noqa: E402


class CheckFailed(Exception):
    """The run folder lacks something a completed one-epoch run has."""


def cuda_report() -> dict:
    """What torch sees; raises CheckFailed with the reason when it sees no CUDA device."""
    if not torch.cuda.is_available():
        build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise CheckFailed(
            f"no CUDA device: torch {torch.__version__} ({build}) reports torch.cuda.is_available() == False. "
            "`make test-gpu` needs a machine with an NVIDIA GPU and its driver (nvidia-smi lists it); "
            "`make test` needs none.")
    props = torch.cuda.get_device_properties(0)
    return {"gpu": props.name, "gpus": torch.cuda.device_count(), "capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2**30, 1), "torch": torch.__version__,
            "cuda": torch.version.cuda, "bf16": torch.cuda.is_bf16_supported()}


def train_command(data_dir: Path, out: Path, args: argparse.Namespace) -> list[str]:
    settings = {"data_dir": data_dir, "epochs": 1, "burn_in_epochs": 0, "subset": args.images, "amp": args.amp,
                "channels_last": args.channels_last, "device": args.device}
    shown = {k: str(v).lower() if isinstance(v, bool) else v for k, v in settings.items()}
    flags = [x for k, v in shown.items() for x in ("--set", f"{k}={v}")]
    flags += [x for pair in args.set for x in ("--set", pair)]
    return [sys.executable, "-m", "part.cli", "train", "--preset", "cifar10-part", *flags, "--out", str(out),
            "--no-progress"]


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise CheckFailed(what)


def check_run(path: Path, expected: dict) -> dict:
    """Check the run folder of a completed one-epoch PART run; returns its metrics row."""
    try:
        return _check_run(RunDir(path), expected)
    except (OSError, ValueError, KeyError, TypeError) as err:  # a file missing or unreadable
        raise CheckFailed(f"the run folder {path} is incomplete: {type(err).__name__}: {err}") from err


def _check_run(run: RunDir, expected: dict) -> dict:
    status, config = run.status(), run.config()
    _expect(status.get("state") == "completed", f"status is {status.get('state')!r}: {status.get('message', '')}")
    for key, value in expected.items():
        _expect(config.get(key) == value, f"the config has {key}={config.get(key)!r}, expected {value!r}")
    _expect(run.epochs() == [1], f"checkpoints of epochs {run.epochs()}, expected [1]")
    rows = run.metrics()
    _expect(len(rows) == 1, f"the metrics hold {len(rows)} epochs, expected 1")
    row = rows[0]
    _expect(row["phase"] == "part", f"epoch 1 ran phase {row['phase']!r}, expected 'part' (burn_in_epochs=0)")
    _expect(math.isfinite(row["train_loss"]), f"train_loss is {row['train_loss']}")
    for key in ("train_adv_acc", "test_clean_acc", "test_pgd_acc", "full_eps_fraction"):
        _expect(row[key] is not None and 0 <= row[key] <= 1, f"{key} is {row[key]}, expected a fraction")
    ratio = config["eps_low"] / config["eps"]
    _expect(ratio - 1e-6 <= row["mean_eps_ratio"] <= 1 + 1e-6,
            f"mean_eps_ratio is {row['mean_eps_ratio']}, expected within [{ratio:.3f}, 1]")
    model, ckpt = load_model(run.checkpoint_path(1))  # weights_only, on CPU
    _expect(all(torch.isfinite(t).all() for t in ckpt["model"].values() if t.is_floating_point()),
            "the checkpoint holds non-finite weights")
    _expect(ckpt["meta"]["image_size"] == 32 and ckpt["meta"]["in_channels"] == 3, f"meta is {ckpt['meta']}")
    probes, inputs = run.load_probes(1), run.load_probe_inputs()
    n = len(inputs["x"])
    _expect(probes["cam"].shape == (n, 32, 32), f"probe CAMs have shape {tuple(probes['cam'].shape)}")
    emap = probes["eps_map"].float()
    _expect(bool(((emap >= config["eps_low"] - 1e-3) & (emap <= config["eps"] + 1e-3)).all()),
            "probe eps-maps leave [eps_low, eps]")
    _expect(run.load_train_state() is not None and run.load_mask_cache() is not None,
            "the resume state or the CAM cache is missing")
    return row


def _bool(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"'{text}' is not true or false")
    return text.lower() == "true"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--amp", choices=("bf16", "fp16", "off"), default="bf16")
    p.add_argument("--channels-last", type=_bool, default=True, metavar="true|false")
    p.add_argument("--images", type=int, default=512, help="generated training images, all trained on (subset)")
    p.add_argument("--test-images", type=int, default=200)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more settings for part train")
    p.add_argument("--out", type=Path, help="keep the data and the run here (default: a temporary folder)")
    p.add_argument("--timeout", type=float, default=600, help="seconds the training may take")
    p.add_argument("--in-process", action="store_true", help="call part.cli.main here instead of a subprocess")
    p.add_argument("--probe", action="store_true", help="only report the GPU torch sees (fail without one)")
    return p.parse_args(argv)


def run_check(args: argparse.Namespace, work: Path) -> dict:
    report = cuda_report() if args.device == "cuda" else {"device": "cpu", "torch": torch.__version__}
    print("gpu_check: " + json.dumps(report), flush=True)
    data = work / "data"
    write_cifar10(data, args.images, args.test_images)
    cmd = train_command(data, work / "run", args)
    print("gpu_check: " + " ".join(cmd[1:]), flush=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    t0 = time.time()
    if args.in_process:
        from part.cli import main as part_main
        returncode = part_main(cmd[3:])
    else:
        try:
            returncode = subprocess.run(cmd, cwd=ROOT, env=env, timeout=args.timeout).returncode
        except subprocess.TimeoutExpired:
            raise CheckFailed(f"part train took longer than {args.timeout:.0f} s") from None
    if returncode != 0:
        raise CheckFailed(f"part train exited with status {returncode} (its output is above)")
    expected = {"device": args.device, "amp": args.amp, "channels_last": args.channels_last, "epochs": 1,
                "part": True, "dataset": "cifar10", "subset": args.images}
    row = check_run(work / "run", expected)
    return {**report, "train_s": round(time.time() - t0, 1), "epoch_s": round(row["epoch_s"], 2),
            "train_loss": row["train_loss"], "full_eps_fraction": row["full_eps_fraction"]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.probe:
            print("gpu_check: " + json.dumps(cuda_report()), flush=True)
            return 0
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            summary = run_check(args, args.out)
        else:
            with tempfile.TemporaryDirectory(prefix="part-gpu-check-") as tmp:
                summary = run_check(args, Path(tmp))
    except CheckFailed as err:
        print(f"gpu_check: FAILED: {err}", file=sys.stderr)
        return 1
    print("gpu_check: passed " + json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
