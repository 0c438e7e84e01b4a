"""Robustness evaluation in one call: clean, FGSM, PGD-K, MMA-K, AutoAttack, corruptions, checks, and the
placement of the budget on and off the object (part.evaluation.placement).

The protocol of Table 1 of Zhang et al., "Improving Accuracy-robustness Trade-off via Pixel
Reweighted Adversarial Training", ICML 2024: natural accuracy, PGD-20 (Madry et al., ICLR 2018;
step eps/4, random start), MMA (Gao et al., ICML 2022; top-3 targets, 20 steps) and standard
AutoAttack (Croce and Hein, ICML 2020), at the dataset's scalar eps whatever eps-map a model was
trained with; plus the corruption benchmark (Hendrycks and Dietterich, ICLR 2019) and the
gradient-masking checks (Athalye et al., ICML 2018) of its Appendix H.

    evaluate(model, dataset, attacks=["clean", "pgd20", "mma", "aa"]) -> {"eps", "n", "attacks": {...}}
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
from torch import nn

from part.attacks.registry import ATTACKS
from part.evaluation.accuracy import (Progress, ProgressCallback, accuracy_record, correct_under, model_device,
                                      seeded)
from part.data.batching import batches
from part.data.datasets import DATASETS
from part.evaluation.threat_maps import MapSource, correct_under_maps
from part.explain.eps_maps import MASK_RECIPES
from part.runs import EvalDir

ACCEPTED = ("clean, fgsm, pgd<K> (e.g. pgd20), mma, mma<K> (e.g. mma100), aa, corruptions, checks, and the "
            "per-pixel threat model pgd<K>-map, mma-map, mma<K>-map (eps-maps from a run's CAM), and the CAM numbers "
            "alignment (energy on the object) and faithfulness (ROAD); robustness vs eps: fgsm@, pgd<K>@ or mma<K>@ "
            "with eps values (e.g. pgd20@0.05,0.1,8/255); placement (PGD-20 with eps on the object, off it, everywhere, "
            "PART-like and inverted, for datasets with object masks; placement@EPS_LOW sets PART's eps_low, e.g. "
            "placement@0.05,0)")
DEFAULT_ATTACKS = ("clean", "pgd20", "mma", "aa")
MAX_STEPS = 10_000


@dataclass(frozen=True)
class AttackSpec:
    name: str  # canonical: clean, fgsm, pgd20, mma (= 20 steps), mma100, aa, corruptions, checks
    kind: str  # clean | fgsm | pgd | mma | aa | corruptions | checks
    steps: int = 0
    per_pixel: bool = False  # pgd<K>-map, mma<K>-map: each image's own eps-map (part.evaluation.threat_maps)
    eps_low: float | None = None  # placement@EPS_LOW: PART's eps_low there (None: the run's ratio, part.evaluation.placement)


def parse_attack(name: str) -> AttackSpec:
    key = name.strip().lower()
    if key == "placement" or key.startswith("placement@"):
        specs = parse_placement(key)
        if len(specs) != 1:
            raise ValueError(f"'{name.strip()}' names {len(specs)} attacks; parse_attacks splits it into one per eps_low")
        return specs[0]
    if "@" in key:  # robustness vs eps: pgd20@0.05,0.1,0.15 (part.evaluation.eps_sweep)
        from part.evaluation.eps_sweep import canonical, parse_sweep

        kind, steps, values = parse_sweep(key)
        return AttackSpec(canonical(kind, steps, values), "sweep", steps)
    if key.endswith(("-map", "_map")):
        spec = parse_attack(key[:-4])
        if spec.kind not in ("pgd", "mma"):
            raise ValueError(f"'{name.strip()}': only pgd<K> and mma<K> have a per-pixel variant; accepted: {ACCEPTED}")
        return AttackSpec(f"{spec.name}-map", spec.kind, spec.steps, per_pixel=True)
    key = key.replace("-", "")
    aliases = {"natural": "clean", "autoattack": "aa", "pgd": "pgd20", "mma20": "mma", "corruption": "corruptions"}
    key = aliases.get(key, key)
    if key in ("clean", "fgsm", "aa", "corruptions", "checks", "alignment", "faithfulness"):
        return AttackSpec(key, key)
    if key == "mma":
        return AttackSpec("mma", "mma", 20)
    m = re.fullmatch(r"(pgd|mma)(\d+)", key)
    if m and 1 <= int(m.group(2)) <= MAX_STEPS:
        return AttackSpec(key, m.group(1), int(m.group(2)))
    raise ValueError(f"unknown attack '{name.strip()}'; accepted: {ACCEPTED}")


def parse_attacks(names: str | Iterable[str]) -> list[AttackSpec]:
    """'clean,pgd20,mma' or a list of names -> specs, in order, without duplicates."""
    items = names.split(",") if isinstance(names, str) else list(names)
    items = _sweeps_joined([str(item) for item in items])
    specs: dict[str, AttackSpec] = {}
    for item in items:
        key = str(item).strip().lower()
        for spec in parse_placement(key) if key.startswith("placement@") else [parse_attack(key)] if key else []:
            specs.setdefault(spec.name, spec)
    if not specs:
        raise ValueError(f"no attack given; accepted: {ACCEPTED}")
    return list(specs.values())


def parse_placement(key: str) -> list[AttackSpec]:
    """'placement' -> one spec (eps_low from the run's ratio); 'placement@0.05,0' -> one per eps_low (0.05 or 7/255)."""
    from fractions import Fraction

    from part.evaluation.eps_sweep import is_eps_token
    from part.evaluation.placement import DEFAULT_STEPS

    base, at, values = key.strip().lower().partition("@")
    if base != "placement":
        raise ValueError(f"'{key}' is not a placement attack; accepted: {ACCEPTED}")
    if not at:
        return [AttackSpec("placement", "placement", DEFAULT_STEPS)]
    specs = []
    for item in re.split(r"[,:;]", values):
        if not is_eps_token(item):
            raise ValueError(f"placement@{values}: eps_low '{item.strip()}' is not a number (e.g. 0.05 or 7/255)")
        value = float(Fraction(item.replace(" ", ""))) if "/" in item else float(item)
        if not 0 <= value <= 1:
            raise ValueError(f"placement@{values}: eps_low {item.strip()} is outside [0, 1] (a fraction of the pixel range)")
        specs.append(AttackSpec(f"placement@{value:.6g}", "placement", DEFAULT_STEPS, eps_low=value))
    return specs


def _sweeps_joined(items: list[str]) -> list[str]:
    """'pgd20@0.05', '0.1', 'mma' -> 'pgd20@0.05,0.1', 'mma': bare eps values continue the sweep before them."""
    from part.evaluation.eps_sweep import is_eps_token

    out: list[str] = []
    for item in items:
        if out and "@" in out[-1] and is_eps_token(item):
            out[-1] += "," + item
        else:
            out.append(item)
    return out


def as_tensors(data, n: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images [N,C,H,W] in [0,1] and labels [N] from a (x, y) pair, a part.data.datasets dataset or a loader.

    A loader is anything yielding (x, y, ...) batches. `n > 0` keeps the first n examples.
    """
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        x, y = data
    else:
        source = batches(data, 256, shuffle=False) if hasattr(data, "get_batch") else data
        xs, ys, count = [], [], 0
        for batch in source:
            xs.append(batch[0])
            ys.append(torch.as_tensor(batch[1]))
            count += len(batch[0])
            if 0 < n <= count:
                break
        if not xs:
            raise ValueError("the data to evaluate on is empty")
        x, y = torch.cat(xs), torch.cat(ys)
    x, y = (x[:n], y[:n]) if n > 0 else (x, y)
    if x.dim() != 4 or len(x) != len(y):
        raise ValueError(f"expected images [N,C,H,W] and N labels, got {tuple(x.shape)} and {tuple(y.shape)}")
    return x.detach().float().cpu(), y.detach().long().cpu()


def default_eps(data) -> float:
    name = getattr(data, "name", "")
    if name not in DATASETS:
        raise ValueError("eps is required: the data does not name one of the datasets "
                         f"({', '.join(DATASETS)}) whose standard eps could be used")
    return DATASETS[name].default_eps


def evaluate(model: nn.Module, data, attacks: str | Sequence[str] = DEFAULT_ATTACKS, *, eps: float | None = None,
             n: int = 0, batch_size: int = 128, surrogate: nn.Module | None = None,
             state_dir: str | Path | None = None, seed: int = 0, progress: bool = False,
             callback: ProgressCallback | None = None,
             on_result: Callable[[str, dict], None] | None = None,
             corruption_files: str | Path | None = None, map_source: MapSource | None = None,
             cam: dict | None = None) -> dict:
    """Evaluate `model` on `data` under each attack; returns a JSON-ready dict.

    data: a part.data.datasets dataset, a loader of (x, y, ...) batches, or an (x, y) pair of tensors.
    eps: a scalar (default: the dataset's standard, DATASETS[name].default_eps).
    state_dir: where AutoAttack keeps its resumable state (none: no resume).
    surrogate: a model for the transfer check of "checks".
    callback(event) gets per-batch progress; on_result(name, record) each finished attack.
    corruption_files: a folder of CIFAR-10-C / CIFAR-100-C / Tiny-ImageNet-C files for "corruptions"
    (part.evaluation.corruption_files), read instead of corrupting the test images.
    map_source: where pgd<K>-map and mma<K>-map take each image's eps-map from (part.evaluation.threat_maps).
    cam: the run's CAM settings for alignment and faithfulness (its training config will do; default gradcam
    of the true label, part.evaluation.faithfulness.cam_settings); its eps_low / eps also sets placement's eps_low
    (default 7/8 of eps). placement and the oracle maps take the object masks the dataset gives, or its record's rule.
    Result: {"eps", "n", "seconds", "attacks": {name: {"accuracy", "n", "seconds", "correct", "params", ...}}}.
    """
    specs = parse_attacks(attacks)
    mapped = [s.name for s in specs if s.per_pixel]
    if mapped and map_source is None:
        raise ValueError(f"{', '.join(mapped)} attack with eps-maps: name the run whose CAMs make them (--map-run)")
    eps = default_eps(data) if eps is None else float(eps)
    if not 0 < eps <= 1:
        raise ValueError(f"eps must be in (0, 1] (a fraction of the pixel range), got {eps:g}")
    placed = [s for s in specs if s.kind == "placement"]
    if placed:  # refused before any attack runs
        check_placement(getattr(data, "name", ""))
    x, y = as_tensors(data, n)
    wanted = placed or (map_source is not None and map_source.recipe in MASK_RECIPES)
    masks = object_masks_of(data, x) if wanted else None
    if mapped and map_source.recipe in MASK_RECIPES and masks is None:
        check_placement(getattr(data, "name", ""), f"{', '.join(mapped)} with {map_source.recipe} eps-maps (full eps "
                        "on the object)")  # raises naming the datasets with masks
        raise ValueError(f"the {map_source.recipe} maps need the images' object masks, and none were found")
    tracker = Progress(progress, callback)
    t0, results = time.time(), {}
    for spec in specs:
        with seeded(seed, model_device(model)):
            record = run_attack(spec, model, x, y, eps=eps, batch_size=batch_size, surrogate=surrogate,
                                state_dir=state_dir, seed=seed, progress=tracker, corruption_files=corruption_files,
                                map_source=map_source, cam=_insight(data, cam, len(x)) if spec.kind in INSIGHT else None,
                                masks=masks, config=cam)
        results[spec.name] = {"kind": spec.kind, **record}
        if on_result is not None:
            on_result(spec.name, results[spec.name])
    return {"eps": eps, "n": len(x), "seconds": round(time.time() - t0, 3), "attacks": results}


def run_attack(spec: AttackSpec, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float,
               batch_size: int, surrogate: nn.Module | None, state_dir: str | Path | None, seed: int,
               progress: Progress, corruption_files: str | Path | None = None,
               map_source: MapSource | None = None, cam: dict | None = None,
               masks: tuple[torch.Tensor, str] | None = None, config: dict | None = None) -> dict:
    """One attack's record. masks: the images' object masks [N,H,W] and how they were made (placement, the
    oracle recipe's maps); config: the run's training config (placement's default eps_low)."""
    if spec.per_pixel:
        return _mapped_attack(spec, model, x, y, map_source, batch_size, progress, None if masks is None else masks[0])
    if spec.kind == "placement":
        from part.evaluation.placement import placement

        if masks is None:
            raise ValueError(f"{spec.name} needs the images' object masks, and none were found; accepted datasets: "
                             f"{', '.join(placement_datasets())}")
        eps_low = spec.eps_low if spec.eps_low is not None else eps * low_ratio(config)
        with progress.task(spec.name, 5 * len(x)) as task:
            return placement(model, x, y, masks[0], eps=eps, eps_low=eps_low, steps=spec.steps,
                             batch_size=batch_size, seed=seed, task=task, object_mask=masks[1])
    if spec.kind == "aa":
        from part.evaluation.autoattack import autoattack

        state = Path(state_dir) / EvalDir.AUTOATTACK_STATE if state_dir is not None else None
        return autoattack(model, x, y, eps=eps, batch_size=batch_size, state_path=state, seed=seed,
                          progress=progress)
    if spec.kind == "corruptions" and corruption_files is not None:
        from part.evaluation.corruption_files import evaluate_corruption_files

        with torch.no_grad():
            num_classes = model(x[:1].to(model_device(model))).shape[1]
        return evaluate_corruption_files(model, corruption_files, n=len(x), channels=x.shape[1],
                                         size=tuple(x.shape[2:]), num_classes=num_classes, batch_size=batch_size,
                                         progress=progress)
    if spec.kind == "corruptions":
        from part.evaluation.corruptions import evaluate_corruptions

        return evaluate_corruptions(model, x, y, batch_size=batch_size, seed=seed, progress=progress)
    if spec.kind in INSIGHT:
        return _insight_attack(spec, model, x, y, cam or _insight(None, None), batch_size, progress)
    if spec.kind == "sweep":
        from part.evaluation.eps_sweep import sweep_record

        return sweep_record(model, x, y, spec.name, batch_size=batch_size, progress=progress)
    if spec.kind == "checks":
        from part.evaluation.checks import gradient_masking_checks

        return gradient_masking_checks(model, x, y, eps=eps, surrogate=surrogate, batch_size=batch_size,
                                       progress=progress)
    record = ATTACKS.get(spec.kind)  # clean: no attack
    attack = None if record is None else record.make(eps, spec.steps)
    params = {} if record is None else record.params(eps, spec.steps)
    t0 = time.time()
    with progress.task(spec.name, len(x)) as task:
        correct = correct_under(model, x, y, attack, batch_size=batch_size, task=task)
    return accuracy_record(correct, time.time() - t0, **params)


def _mapped_attack(spec: AttackSpec, model: nn.Module, x: torch.Tensor, y: torch.Tensor, source: MapSource,
                   batch_size: int, progress: Progress, masks: torch.Tensor | None = None) -> dict:
    """PGD-K or MMA-K bounded by each image's eps-map; step size a quarter of the map's largest budget."""
    from part import attacks

    step = source.eps / 4
    t_map = time.time()
    emap = source.maps(x, y, object_mask=masks)
    if spec.kind == "pgd":
        attack = lambda m, xb, yb, eb: attacks.pgd(m, xb, yb, eps=eb, step_size=step, steps=spec.steps)
        params = {"eps": source.eps, "steps": spec.steps, "step_size": step, "random_start": True}
    else:
        attack = lambda m, xb, yb, eb: attacks.mma(m, xb, yb, eps=eb, step_size=step, steps=spec.steps, k=3)
        params = {"eps": source.eps, "steps": spec.steps, "step_size": step, "k": 3, "kappa": 50.0}
    t0 = time.time()
    with progress.task(spec.name, len(x)) as task:
        correct = correct_under_maps(model, x, y, emap, attack, batch_size=batch_size, task=task)
    return {**accuracy_record(correct, time.time() - t0, **params), "map": source.record(emap),
            "map_seconds": round(t0 - t_map, 3)}


def placement_datasets() -> list[str]:
    """The datasets whose test images have object masks: given by the dataset, or by its record's rule."""
    return [name for name, info in DATASETS.items() if info.masks_in_data or info.object_threshold is not None]


def check_placement(dataset: str, why: str = "placement attacks the object and the rest of the image separately, "
                                             "so it") -> None:
    """Refuse the placement attack (or another user of object masks, `why`), before any work, for a dataset
    without object masks."""
    if dataset not in placement_datasets():
        raise ValueError(f"{why} needs each test image's object mask, and "
                         f"{f'dataset {dataset!r}' if dataset else 'unnamed data'} has none; "
                         f"accepted datasets: {', '.join(placement_datasets())}")


def low_ratio(config: dict | None) -> float:
    """eps_low / eps of a run's training config (PART's placement at its own ratio), else the paper's 7/8."""
    from part.evaluation.placement import DEFAULT_LOW_RATIO

    eps, low = (config or {}).get("eps"), (config or {}).get("eps_low")
    ok = isinstance(eps, (int, float)) and isinstance(low, (int, float)) and 0 < eps and 0 <= low <= eps
    return low / eps if ok else DEFAULT_LOW_RATIO


def object_masks_of(data, x: torch.Tensor) -> tuple[torch.Tensor, str] | None:
    """The object masks [N,H,W] of the images x (the first N of dataset `data`) and how they were made: the
    dataset's own (fashion-mnist-clutter), its record's rule applied to the clean images, or None."""
    from part.data.datasets import object_masks
    from part.explain.alignment import mask_rule, object_mask

    name = getattr(data, "name", "")
    given = object_masks(data, torch.arange(len(x))) if hasattr(data, "get_batch") else None
    masks = given if given is not None else object_mask(x, name)
    return None if masks is None else (masks.bool(), mask_rule(name))


INSIGHT = ("alignment", "faithfulness")  # numbers of the run's CAMs, not accuracies (part.evaluation.faithfulness)


def _insight(data, cam: dict | None, n: int = 0) -> dict:
    """The CAM settings, the dataset's name and classes, and the object masks of the first n images
    where the dataset gives them (as_tensors takes a dataset's images in order)."""
    from part.data.datasets import object_masks
    from part.evaluation.faithfulness import cam_settings

    masks = object_masks(data, torch.arange(n)) if n and hasattr(data, "get_batch") else None
    return {**cam_settings(cam), "dataset": getattr(data, "name", ""), "classes": getattr(data, "classes", None),
            "masks": masks}


def _insight_attack(spec: AttackSpec, model: nn.Module, x: torch.Tensor, y: torch.Tensor, cam: dict,
                    batch_size: int, progress: Progress) -> dict:
    from part.evaluation import faithfulness
    settings = {k: cam[k] for k in faithfulness.CAM_KEYS}
    with progress.task(spec.name, len(x)) as task:
        if spec.kind == "alignment":
            return faithfulness.alignment(model, x, y, cam["dataset"], settings, batch_size=batch_size, task=task,
                                          classes=cam.get("classes"), masks=cam.get("masks"))
        return faithfulness.faithfulness(model, x, y, settings, batch_size=batch_size, task=task)
