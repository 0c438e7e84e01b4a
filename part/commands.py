"""The `part` command lines that other processes run, one builder per command.

The CLI's torchrun relaunch, the backend's job runner and scripts/reproduce.py all build their
`part train`, `part resume` and `part eval` lines here, and the torchrun line that spreads one over nodes. A training config crosses the process
boundary once, as a file (`--config FILE`, a resolved TrainConfig as JSON), never as `--set` text.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

PART = (sys.executable, "-m", "part.cli")  # the same interpreter and install as the caller


def _flags(pairs: dict[str, Any]) -> list[str]:
    """`--flag value` for every value that is not None; True becomes a bare flag, False nothing."""
    out: list[str] = []
    for flag, value in pairs.items():
        if value is None or value is False:
            continue
        out += [flag] if value is True else [flag, str(value)]
    return out


def train_argv(out: str | Path, *, config_file: str | Path | None = None, preset: str | None = None,
               seed: int | None = None, sets: dict[str, Any] | None = None, nproc: int | None = None,
               progress: bool = False, part: tuple[str, ...] | list[str] = PART) -> list[str]:
    """`part train` from a config file, or (for commands people read and rerun) a preset with --set pairs."""
    if (config_file is None) == (preset is None):
        raise ValueError("give exactly one of config_file and preset")
    argv = [*part, "train", *_flags({"--config": config_file, "--preset": preset, "--seed": seed})]
    for key, value in (sets or {}).items():
        argv += ["--set", f"{key}={value}"]
    return argv + ["--out", str(out), *_flags({"--no-progress": not progress,
                                               "--nproc": nproc if nproc and nproc > 1 else None})]


def resume_argv(run_dir: str | Path, *, nproc: int | None = None, progress: bool = False,
                part: tuple[str, ...] | list[str] = PART) -> list[str]:
    return [*part, "resume", str(run_dir), *_flags({"--nproc": nproc, "--no-progress": not progress})]


def eval_argv(run_dir: str | Path, *, attacks: str | list[str], n: int | None = None, epoch: int | None = None,
              out: str | Path | None = None, progress: bool = False, part: tuple[str, ...] | list[str] = PART,
              **options: Any) -> list[str]:
    """`part eval --run RUN ...`; `options` are the other flags by name (device, surrogate,
    corruption_files, map_run, map_epoch, map_recipe, map_eps, map_eps_low, amp, seed, ...)."""
    attacks = attacks if isinstance(attacks, str) else ",".join(attacks)
    flags = {"--run": run_dir, "--no-progress": not progress, "--epoch": epoch, "--attacks": attacks, "--n": n,
             **{"--" + name.replace("_", "-"): value for name, value in options.items()}, "--out": out}
    return [*part, "eval", *_flags(flags)]


def torchrun_argv(argv: list[str], *, nnodes: int, nproc_per_node: int, rdzv_endpoint: str, rdzv_id: str) -> list[str]:
    """`torchrun` running `part ARGV` (argv after `part`) on each of nnodes nodes, which meet at the c10d
    rendezvous on rdzv_endpoint (HOST:PORT of the first node) and agree on the ranks."""
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(nnodes), "--nproc-per-node",
            str(nproc_per_node), "--rdzv-backend", "c10d", "--rdzv-endpoint", rdzv_endpoint, "--rdzv-id", rdzv_id,
            "-m", "part.cli", *argv]
