"""What a job is: a validated request and the `part` command line that carries it out.

The config is built here (part.training.config.preset with the typed overrides), so a bad one is refused
with the config's own message before any process starts, and nothing touches the disk until the whole
request is accepted; then the supervisor writes it into the run folder as RUN/requested_config.json
(atomically, inside the transaction that records the job): a training job is `part train --config RUN/requested_config.json --out RUN
--no-progress [--nproc N]`, so the config crosses to the job's process once, as a file. It is resumed
with `part resume` (with the run's own number of processes). With N > 1 the job's process becomes
torchrun and its workers share its process group, so cancel stops them all. An evaluation job is
`part eval --run RUN --epoch N --attacks LIST --n N --out RUN/eval/epoch_NNNN[-n<N>] [options]`, each
evaluation in a folder of its own (part.runs.EvalDir.for_settings). Every
command line comes from part.commands.
"""

from __future__ import annotations

import time
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, WithJsonSchema,
                      create_model, model_validator)

from backend.api.errors import ApiError, bad_request, conflict
from backend.services.executors import Placement
from backend.services.registry import RUN_ID, Registry, check_run_id
from backend.settings import Settings
from part.runs import EvalDir, RunDir
from part import commands
from part.commands import eval_argv, train_argv
from part.training.config import (CHOICES, EXCLUSIVE_LOW, PRESETS, RANGES, TrainConfig, check_range, parse_number,
                                  preset)
from part.training.distributed import max_nproc

PIXEL_FRACTIONS = ("eps", "eps_low", "step_size", "map_eps", "map_eps_low")
NUMBER_TEXT = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?(\s*/\s*\d+\.?\d*([eE][-+]?\d+)?)?\s*$"


def _number(name: str, low: float | None, high: float | None):
    """A JSON number or text like "8/255", parsed by the config's own parser and bounded by its range table."""
    def parse(value: Any) -> float:
        number = parse_number(value)
        if name in PIXEL_FRACTIONS and not 0 <= number <= 1:
            raise ValueError(f"{name} is a fraction of the pixel range [0,1] (e.g. 8/255), got {number:g}")
        if name in RANGES:
            check_range(name, number)
        elif low is not None and not low <= number <= high:
            raise ValueError(f"{name} must be >= {low:g} and <= {high:g}, got {number:g}")
        return number
    lower = "exclusiveMinimum" if name in EXCLUSIVE_LOW else "minimum"
    bounds = {lower: low, "maximum": high} if low is not None else {}
    schema = {"anyOf": [{"type": "number", **bounds}, {"type": "string", "pattern": NUMBER_TEXT, "maxLength": 100}]}
    return Annotated[float, BeforeValidator(parse), WithJsonSchema(schema)]


def _field_type(name: str, hint: Any) -> Any:
    """The JSON type of one TrainConfig field: numbers as JSON numbers (or text like "8/255"),
    bounded as the config bounds them; choices as enums; lists as lists or comma-separated text."""
    low, high = RANGES.get(name, (None, None))
    if hint is bool:
        return StrictBool
    if hint is int:
        return Annotated[StrictInt, Field(**(dict(ge=low, le=high) if low is not None else {}))]
    if hint is float:
        return _number(name, low, high)
    if typing.get_origin(hint) is tuple:
        if typing.get_args(hint)[0] is str:
            return Union[Annotated[list[str], Field(max_length=64)], Annotated[str, Field(max_length=1000)]]
        item = _field_type(name, typing.get_args(hint)[0])
        return Union[Annotated[list[item], Field(max_length=64)], item]
    if name in CHOICES:
        return Literal[CHOICES[name]]
    return Annotated[str, Field(max_length=4096)]


def _known_fields(cls, data: Any) -> Any:
    """Unknown keys and nproc get the config's own words, before field validation."""
    if isinstance(data, dict):
        if "nproc" in data:
            raise ValueError("set the number of processes with the job's `nproc` field, not in overrides")
        unknown = sorted(set(map(str, data)) - set(cls.model_fields))
        if unknown:
            raise ValueError(f"unknown setting {', '.join(unknown)[:200]}; accepted: {', '.join(cls.model_fields)}")
    return data


# The overrides a job may set: every TrainConfig field but nproc (the job's own field), typed.
TrainOverrides = create_model(
    "TrainOverrides", __config__=ConfigDict(extra="forbid"),
    __validators__={"known": model_validator(mode="before")(_known_fields)},
    **{name: (_field_type(name, hint) | None, None)
       for name, hint in typing.get_type_hints(TrainConfig).items() if name != "nproc"})


def _known_preset(name: str) -> str:
    preset(name)  # the config's own message names every preset
    return name


Preset = Annotated[str, AfterValidator(_known_preset), WithJsonSchema({"type": "string", "enum": list(PRESETS)})]


class TrainJobRequest(Placement):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["train"]
    preset: Preset = Field(description="a training preset (see `part presets`), e.g. fmnist-part")
    overrides: TrainOverrides = Field(default_factory=TrainOverrides,
                                      description="TrainConfig fields, e.g. {\"epochs\": 2}; checked as the "
                                                  "config checks them (cross-field rules such as eps_low <= eps "
                                                  "answer 422)")
    name: str | None = Field(None, pattern=RUN_ID.pattern + "$", description="run id of the new run folder "
                                                                            "(default: <preset>-<time>)")
    nproc: int = Field(1, ge=1, description="training processes (DDP via torchrun): at most the GPUs of the "
                                            "server, or its CPU cores without CUDA")




class EvalJobRequest(Placement):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["eval"]
    run: str = Field(description="run id to evaluate")
    epoch: int | None = Field(None, ge=0, description="checkpoint epoch (default: the newest)")
    attacks: str = Field("clean,pgd20,mma", max_length=2000, description="comma-separated: clean, fgsm, pgd<K>, mma, mma<K>, aa, "
                                                        "corruptions, checks")
    n: int = Field(1000, ge=0, le=100_000, description="test images (0: the whole test set)")
    corruption_files: str | None = Field(None, max_length=4096, description="corruptions: read the published "
                                         "CIFAR-10-C / CIFAR-100-C / Tiny-ImageNet-C files from this folder (under "
                                         "the server's data folders) instead of generating them")
    map_run: str | None = Field(None, description="pgd<K>-map / mma-map: the run whose CAMs make each test image's "
                                                  "eps-map (default: the evaluated run)")
    map_epoch: int | None = Field(None, ge=0, description="the map run's epoch (default: its newest)")
    map_recipe: str | None = Field(None, max_length=40, description="mask recipe of the maps (default: the map run's)")
    map_eps: _number("map_eps", 0, 1) | None = Field(None, description="largest budget of the maps (default: the map run's eps)")
    map_eps_low: _number("map_eps_low", 0, 1) | None = Field(None, description="budget of unimportant pixels (default: the map run's)")
    amp: Literal["off", "bf16"] = Field("off", description="precision of the evaluation's forward passes; float32 "
                                                          "(off) unless asked, so robustness is never weakened")


JobRequest = Annotated[Union[TrainJobRequest, EvalJobRequest], Field(discriminator="kind")]


def data_dir_inside_roots(data_dir: str, settings: Settings, what: str = "data_dir") -> str:
    """The resolved `data_dir`, which must lie under one of the server's data roots."""
    real = Path(data_dir).expanduser().resolve()
    roots = settings.data_roots()
    if not any(real == root or root in real.parents for root in roots):
        raise bad_request(f"{what} '{data_dir[:200]}' is outside this server's data folders; accepted: folders "
                          f"under {', '.join(map(str, roots)) or 'none'} (the server's PART_DATA_DIR adds one)")
    return str(real)


def train_job(req: TrainJobRequest, settings: Settings, registry: Registry) -> dict[str, Any]:
    overrides = req.overrides.model_dump(exclude_none=True)
    if settings.device != "auto" and "device" not in overrides:
        overrides["device"] = settings.device
    if overrides.get("data_dir"):
        overrides["data_dir"] = data_dir_inside_roots(overrides["data_dir"], settings)
    cfg = preset(req.preset, **overrides)  # ValueError -> 422 with the config's message
    most = max_nproc(cfg.device)
    if req.nproc > most:
        raise bad_request(f"nproc {req.nproc} exceeds the {most} processes this server offers "
                          "(its GPUs, or its CPU cores without CUDA)")
    run_id = check_run_id(req.name or f"{req.preset}-s{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}")
    run = RunDir(registry.root / run_id)
    check_run_folder_free(run)
    argv = train_argv(run.path, config_file=run.requested_config_path, nproc=req.nproc)
    spec = {**req.model_dump(exclude={"overrides"}), "overrides": overrides, "epochs": cfg.epochs}
    # Nothing is written yet: the supervisor writes the requested config (the one file the job's process
    # reads) only once the submission is accepted, inside the transaction that records the job.
    return {"kind": "train", "run_id": run_id, "spec": spec, "argv": argv, "out_dir": str(run.path),
            "requested_config": cfg.to_dict()}


def check_run_folder_free(run: RunDir) -> None:
    """A new training job's run folder must be free: absent, or holding only a requested config that no
    job owns any more (check_submission looks at the jobs)."""
    name = run.path.name
    if run.path.is_symlink():
        raise conflict(f"'{name}' in the checkpoints folder is a link; choose another name for the run")
    if run.path.exists() and not run.path.is_dir():
        raise conflict(f"'{name}' is a file in the checkpoints folder, not a run folder; choose another name for "
                       "the run")
    try:
        others = run.path.exists() and any(p != run.requested_config_path for p in run.path.iterdir())
    except OSError as err:
        raise conflict(f"the run folder '{name}' cannot be read ({err.strerror}); choose another name") from None
    if others:
        raise conflict(f"a run folder '{name}' already exists; choose another name (or resume its job)")


def check_submission(built: dict[str, Any], jobs_on_run: list[dict[str, Any]]) -> None:
    """Checked again inside the transaction that records the job (other requests, or another server on
    the same folder, may have taken the name meanwhile): no job is active on the run, no earlier training
    job still owns its folder, and the folder is free."""
    if built["kind"] != "train":
        check_eval_folder_free(built, jobs_on_run)
        return
    check_name_free(built["run_id"], jobs_on_run)
    run = RunDir(built["out_dir"])
    for job in jobs_on_run:
        if Path(job["out_dir"]) == run.path and run.requested_config_path.exists():
            raise conflict(f"job {job['id']} ({job['state']}) owns the run folder '{built['run_id']}'; resume it "
                           f"(POST /api/jobs/{job['id']}/resume), delete it (DELETE /api/jobs/{job['id']}) or "
                           "choose another name")
    check_run_folder_free(run)


def _eval_settings(job: dict[str, Any]) -> tuple:
    return job["spec"].get("n", 1000), job["spec"].get("amp", "off")


def _active_into(folder: Path, job: dict[str, Any], jobs_on_run: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((o for o in jobs_on_run if o.get("id") != job.get("id") and o["kind"] == "eval"
                 and o["state"] in ("queued", "running") and Path(o["out_dir"]) == folder), None)


def check_eval_folder_free(job: dict[str, Any], jobs_on_run: list[dict[str, Any]]) -> None:
    """Two evaluations at once into one folder would each rewrite its eval.json without the other's
    attacks: the second waits for the first (409)."""
    if job["kind"] != "eval":
        return
    other = _active_into(Path(job["out_dir"]), job, jobs_on_run)
    if other is not None:
        raise conflict(f"job {other['id']} is already {other['state']} into {Path(job['out_dir']).name} of run "
                       f"'{job['run_id']}'; wait for it (its attacks are kept and reused) or cancel it")


def own_eval_folder(built: dict[str, Any], jobs_on_run: list[dict[str, Any]]) -> dict[str, Any]:
    """`built`, moved to the folder of its settings (EvalDir.sibling) when an active evaluation with other
    settings is bound for the same folder (it has not written there yet, so for_settings found it free)."""
    if built["kind"] != "eval":
        return built
    other = _active_into(Path(built["out_dir"]), built, jobs_on_run)
    if other is None or _eval_settings(other) == _eval_settings(built):
        return built
    n, amp = _eval_settings(built)
    out = EvalDir(built["out_dir"]).sibling(n=n, amp=amp).path
    argv = list(built["argv"])
    argv[argv.index("--out") + 1] = str(out)
    return {**built, "out_dir": str(out), "argv": argv}


def resume_plan(job: dict[str, Any]) -> tuple[list[str] | None, str]:
    """(argv, how) of resuming a job, or (None, why it cannot be resumed); the cancel message and the
    resume route both ask here, so they agree."""
    if job["kind"] != "train":
        return job["argv"], "an evaluation rerun into its folder keeps the attacks already done"
    run = RunDir(job["out_dir"])
    if run.exists():  # the trainer wrote config.json: part resume continues from the newest complete epoch
        epochs = run.epochs()
        how = f"resume continues after epoch {epochs[-1]}" if epochs else "resume starts it again from the beginning"
        return commands.resume_argv(run.path), how
    if run.requested_config_path.exists():  # no epoch started: train again from the config the job asked for
        nproc = int(job.get("spec", {}).get("nproc") or 1)
        return (train_argv(run.path, config_file=run.requested_config_path, nproc=nproc),
                "resume starts it again from the beginning, with the config it asked for")
    return None, (f"job {job.get('id', '')} never wrote its run folder {run.path.name} (see its log); there is nothing "
                  "to resume: start a new job")


def resume_argv(job: dict[str, Any]) -> list[str]:
    argv, how = resume_plan(job)
    if argv is None:
        raise conflict(how)
    return argv


def eval_job(req: EvalJobRequest, settings: Settings, registry: Registry) -> dict[str, Any]:
    try:
        from part.cli import COMMANDS
        from part.evaluation.evaluate import parse_attack, parse_attacks
    except ImportError:
        raise ApiError(501, "this installation has no evaluation suite (`part eval`)") from None
    if "eval" not in COMMANDS:
        raise ApiError(501, "this installation has no evaluation suite (`part eval`)")
    run_id = check_run_id(req.run)
    epoch = registry.epoch(run_id, req.epoch)
    attacks = [spec.name for spec in parse_attacks(req.attacks)]  # ValueError -> 422 naming the accepted ones
    run = registry.run(run_id)
    run_dir = run.path
    # The evaluation's own folder: epoch_NNNN, or epoch_NNNN-n<N> when that holds one with other settings
    # (part.runs.EvalDir.for_settings), so that no job replaces another's results. RunFolderError (409) when a
    # link leads out.
    out = run.eval_dir_for(run.checkpoint_path(epoch).stem, n=req.n, amp=req.amp).path
    if req.map_recipe is not None:
        from part.explain.eps_maps import RECIPES

        if req.map_recipe not in RECIPES:
            raise bad_request(f"map_recipe '{req.map_recipe}' is not accepted; accepted: {', '.join(RECIPES)}")
    if req.map_run is not None:
        registry.epoch(req.map_run, req.map_epoch)  # 404/409 unless that run and epoch can be read
    else:
        registry.epoch(run_id, req.map_epoch)  # the evaluated run's own maps, at map_epoch
    from part.evaluation.threat_maps import check_map_settings

    given = {k: getattr(req, k) for k in ("map_run", "map_epoch", "map_recipe", "map_eps", "map_eps_low")}
    map_config = registry.run(req.map_run).config() if req.map_run is not None else run.config()
    try:  # the rules `part eval` applies when it runs, applied before the job is accepted
        check_map_settings(any(parse_attack(a).per_pixel for a in attacks), given, run.config(), map_config)
    except ValueError as err:
        raise bad_request(str(err)) from None
    argv = eval_argv(
        run_dir, epoch=epoch, attacks=attacks, n=req.n, out=out,
        device=settings.device if settings.device != "auto" else None,
        corruption_files=req.corruption_files and data_dir_inside_roots(req.corruption_files, settings,
                                                                        "corruption_files"),
        map_run=req.map_run and registry.run(req.map_run).path, map_epoch=req.map_epoch,
        map_recipe=req.map_recipe, map_eps=req.map_eps, map_eps_low=req.map_eps_low,
        amp=req.amp if req.amp != "off" else None)
    spec = {**req.model_dump(exclude_none=True), "epoch": epoch, "attacks": attacks}
    return {"kind": "eval", "run_id": run_id, "spec": spec, "argv": argv, "out_dir": str(out)}


def check_name_free(run_id: str, jobs: list[dict[str, Any]]) -> None:
    for job in jobs:
        if job["run_id"] == run_id and job["kind"] == "train" and job["state"] in ("queued", "running"):
            raise conflict(f"job {job['id']} is already {job['state']} on run '{run_id}'")
