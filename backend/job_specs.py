"""What a job is: a validated request and the `part` command line that carries it out.

A training job is `part train --preset P --set k=v ... --out CHECKPOINTS/<run> --no-progress
[--nproc N]`, and is resumed with `part resume` (with the run's own number of processes). With N > 1
the job's process becomes torchrun and its workers share its process group, so cancel stops them all.
An evaluation job is `part eval --run RUN --epoch N --attacks LIST --n N --out RUN/eval/epoch_NNNN`.
The config is built here first (part.config.preset), so a bad override is refused with the config's
own message before any process starts.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from backend.errors import ApiError, bad_request, conflict
from backend.registry import Registry, check_run_id
from backend.settings import Settings
from part.config import preset
from part.distributed import max_nproc

Value = Union[bool, int, float, str, list[Union[int, float, str]]]
PART = [sys.executable, "-m", "part.cli"]  # the same interpreter and install as the server


class TrainJobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["train"]
    preset: str = Field(description="a training preset (see `part presets`), e.g. fmnist-part")
    overrides: dict[str, Value] = Field(default_factory=dict, description="TrainConfig fields, e.g. {\"epochs\": 2}")
    name: str | None = Field(None, description="run id of the new run folder (default: <preset>-<time>)")
    nproc: int = Field(1, ge=1, description="training processes (DDP via torchrun): at most the GPUs of the "
                                            "server, or its CPU cores without CUDA")


class EvalJobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["eval"]
    run: str = Field(description="run id to evaluate")
    epoch: int | None = Field(None, ge=0, description="checkpoint epoch (default: the newest)")
    attacks: str = Field("clean,pgd20,mma", description="comma-separated: clean, fgsm, pgd<K>, mma, mma<K>, aa, "
                                                        "corruptions, checks")
    n: int = Field(1000, ge=0, le=100_000, description="test images (0: the whole test set)")


JobRequest = Annotated[Union[TrainJobRequest, EvalJobRequest], Field(discriminator="kind")]


def _text(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_text(v) for v in value)
    return str(value)


def train_job(req: TrainJobRequest, settings: Settings, registry: Registry) -> dict[str, Any]:
    overrides = {k: (list(v) if isinstance(v, list) else v) for k, v in req.overrides.items()}
    if settings.device != "auto" and "device" not in overrides:
        overrides["device"] = settings.device
    if "nproc" in overrides:
        raise bad_request("set the number of processes with the job's `nproc` field, not in overrides")
    cfg = preset(req.preset, **overrides)  # ValueError -> 422 with the config's message
    most = max_nproc(cfg.device)
    if req.nproc > most:
        raise bad_request(f"nproc {req.nproc} exceeds the {most} processes this server offers "
                          "(its GPUs, or its CPU cores without CUDA)")
    run_id = check_run_id(req.name or f"{req.preset}-s{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}")
    out = registry.root / run_id
    if out.exists():
        raise conflict(f"a run folder '{run_id}' already exists; choose another name (or resume its job)")
    argv = [*PART, "train", "--preset", req.preset]
    for key, value in overrides.items():
        argv += ["--set", f"{key}={_text(value)}"]
    argv += ["--out", str(out), "--no-progress"] + (["--nproc", str(req.nproc)] if req.nproc > 1 else [])
    spec = {**req.model_dump(), "overrides": overrides, "epochs": cfg.epochs}
    return {"kind": "train", "run_id": run_id, "spec": spec, "argv": argv, "out_dir": str(out)}


def resume_argv(job: dict[str, Any]) -> list[str]:
    if job["kind"] != "train":
        return job["argv"]  # an evaluation rerun into its folder keeps the attacks already done
    out = Path(job["out_dir"])
    if not (out / "config.json").exists():
        raise conflict(f"job {job['id']} never wrote its run folder {out.name} (see its log); "
                       "there is nothing to resume: start a new job")
    return [*PART, "resume", str(out), "--no-progress"]


def eval_job(req: EvalJobRequest, settings: Settings, registry: Registry) -> dict[str, Any]:
    try:
        from part.cli import COMMANDS
        from part.evaluate import parse_attacks
    except ImportError:
        raise ApiError(501, "this installation has no evaluation suite (`part eval`)") from None
    if "eval" not in COMMANDS:
        raise ApiError(501, "this installation has no evaluation suite (`part eval`)")
    run_id = check_run_id(req.run)
    epoch = registry.epoch(run_id, req.epoch)
    attacks = [spec.name for spec in parse_attacks(req.attacks)]  # ValueError -> 422 naming the accepted ones
    run_dir = registry.root / run_id
    out = run_dir / "eval" / f"epoch_{epoch:04d}"
    argv = [*PART, "eval", "--run", str(run_dir), "--epoch", str(epoch), "--attacks", ",".join(attacks),
            "--n", str(req.n), "--out", str(out), "--no-progress"]
    if settings.device != "auto":
        argv += ["--device", settings.device]
    spec = {**req.model_dump(), "epoch": epoch, "attacks": attacks}
    return {"kind": "eval", "run_id": run_id, "spec": spec, "argv": argv, "out_dir": str(out)}


def check_name_free(run_id: str, active: list[dict[str, Any]]) -> None:
    for job in active:
        if job["run_id"] == run_id and job["kind"] == "train":
            raise conflict(f"job {job['id']} is already {job['state']} on run '{run_id}'")
