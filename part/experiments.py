"""Which runs are comparable, and whose baseline is whose.

A number on screen is a claim, so two runs are compared only inside one experiment: the same data (dataset,
image size), model, training length and subset, threat model (eps, its schedule, the inner attack, its steps
and step), optimiser and schedule, and precision. What a comparison is about stays out of the key: the
defense, whether PART is on and how its maps are made (recipe, CAM methods, eps_low, burn-in, refresh) and
the seed. Runs of one experiment that differ only in the seed form an arm (what a mean over seeds pools); a
PART run's baseline is the run of the same experiment, defense and seed without reweighting.

Everything is computed from resolved configs (config.json), never from run names; the shipped manifest only
names experiments (its groups: runs -> "main", parity, testbed, vit).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from part.runs import RunDir, RunFolderError, method_label, read_manifest

# What defines an experiment, with the value a config written before the field existed stands for.
EXPERIMENT_FIELDS = {
    "dataset": "fashion-mnist", "image_size": 0, "model": "small-cnn", "epochs": 10, "subset": 0, "augment": "none",
    "batch_size": 128, "eps": 0.1, "eps_schedule": "", "attack": "pgd", "attack_steps": 10, "step_size": 0.025,
    "optimizer": "adam", "lr": 1e-3, "momentum": 0.9, "weight_decay": 0.0, "lr_milestones": [8], "lr_gamma": 0.1,
    "amp": "off",  # configs from before mixed precision trained in float32
}
# What a comparison inside an experiment is about (besides the seed); only read for PART runs.
PART_FIELDS = ("eps_low", "eps_low_schedule", "burn_in_epochs", "mask_every", "cam_methods", "cam_weights",
               "cam_target", "recipe", "threshold", "tau", "quadrant", "tau_schedule", "threshold_schedule")
DEFENSE_PARAMS = {"trades": ("beta",), "mart": ("beta",)}  # AT reads no defense parameter
DEFENSE_ORDER = ("at", "trades", "mart")
MANIFEST_GROUPS = {"runs": "main"}  # the manifest's group of the main tables is the "main" experiment
PRECISION = {"off": "float32", "bf16": "bf16 autocast", "fp16": "fp16 autocast", "auto": "auto precision"}


def experiment_key(config: Mapping[str, Any]) -> dict[str, Any]:
    """The fields that define the run's experiment (missing ones at what older runs did)."""
    return {k: _plain(config.get(k, default)) for k, default in EXPERIMENT_FIELDS.items()}


def arm_key(config: Mapping[str, Any]) -> dict[str, Any]:
    """What the run's method is inside its experiment: its defense (and the defense's parameters), and for a
    PART run how its eps-maps are made. Two runs with the same arm differ only in their seed."""
    defense = config.get("defense") or "at"
    arm: dict[str, Any] = {"defense": defense, "part": bool(config.get("part"))}
    arm |= {k: _plain(config.get(k)) for k in DEFENSE_PARAMS.get(defense, ())}
    if arm["part"]:
        arm |= {k: _plain(config.get(k)) for k in PART_FIELDS if k in config}
    return arm


def digest(value: Any) -> str:
    return hashlib.sha1(json.dumps(value, sort_keys=True).encode()).hexdigest()[:8]


def method_name(config: Mapping[str, Any]) -> str:
    """AT, TRADES, MART, PART, PART-T or PART-M (Table 1's names); a PART run with another recipe or other CAMs
    says which: 'PART (shuffled)', 'PART (layercam)'."""
    name = method_label(config.get("defense"), bool(config.get("part", False)))
    if not config.get("part"):
        return name
    variant = [config["recipe"]] if config.get("recipe", "paper") != "paper" else []
    variant += ["+".join(config["cam_methods"])] if list(config.get("cam_methods", ["gradcam"])) != ["gradcam"] else []
    return f"{name} ({', '.join(variant)})" if variant else name


def describe(key: Mapping[str, Any]) -> str:
    """'fashion-mnist 28px (native) · small-cnn · 10 epochs on 10000 images · eps 0.1, PGD-10 step 0.025 · adam
    lr 0.001 · float32': one line a person can check two experiments by."""
    size = f"{key['image_size']}px" if key.get("image_size") not in (0, None, "unknown") else (
        "native size" if key.get("image_size") != "unknown" else "size unknown")
    data = "the whole training set" if not key.get("subset") else f"{key['subset']} images"
    eps = f"eps {_text(key['eps'])}" + (f" ({key['eps_schedule']})" if key.get("eps_schedule") else "")
    attack = f"{str(key['attack']).upper()}-{key['attack_steps']} step {_text(key['step_size'])}"
    return (f"{key['dataset']} ({size}) · {key['model']} · {key['epochs']} epochs on {data} · {eps}, {attack} · "
            f"{key['optimizer']} lr {_text(key['lr'])} · {PRECISION.get(key['amp'], key['amp'])}")


def differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """How the experiments of two configs differ: ['model small-cnn vs vit-tiny', 'subset 10000 vs 20000']."""
    ka, kb = experiment_key(a), experiment_key(b)
    return [f"{k} {_text(ka[k])} vs {_text(kb[k])}" for k in EXPERIMENT_FIELDS if ka[k] != kb[k]]


@dataclass(frozen=True)
class Baseline:
    """A PART run's baseline: the run, or None with the reason (none fits, or several fit and none is picked)."""
    run: str | None
    candidates: tuple[str, ...] = ()
    note: str = ""


@dataclass
class Experiment:
    id: str  # a manifest group ("main", "testbed", ...) or "exp-<digest of the key>"
    key: dict[str, Any]
    runs: list[str] = field(default_factory=list)
    arms: dict[str, list[str]] = field(default_factory=dict)  # arm label -> its runs (seeds)
    arm_of: dict[str, str] = field(default_factory=dict)  # run -> arm label
    baselines: dict[str, Baseline] = field(default_factory=dict)  # PART run -> its baseline
    featured: bool = False

    @property
    def description(self) -> str:
        return describe(self.key)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "description": self.description, "key": self.key, "featured": self.featured,
                "runs": self.runs, "arms": self.arms, "arm_of": self.arm_of,
                "baselines": {r: {"run": b.run, "candidates": list(b.candidates), "note": b.note}
                              for r, b in self.baselines.items()}}


def find_experiments(configs: Mapping[str, Mapping[str, Any]], manifest: Mapping[str, Any] | None = None
                     ) -> list[Experiment]:
    """The experiments among the runs (run id -> resolved config), named after the manifest's groups where
    their runs are listed there, the featured one (the manifest's featured pair) first, then by name."""
    by_key: dict[str, Experiment] = {}
    for rid in sorted(configs):
        key = experiment_key(configs[rid])
        exp = by_key.setdefault(digest(key), Experiment(id="", key=key))
        exp.runs.append(rid)
    names = _group_names(manifest or {})
    order = list(dict.fromkeys(names.values()))
    featured = set(((manifest or {}).get("featured") or {}).get("pair") or [])
    taken: set[str] = set()
    for code, exp in sorted(by_key.items()):
        listed = [names[r] for r in exp.runs if r in names]
        name = min(listed, key=order.index) if listed else f"exp-{code}"
        exp.id = name if name not in taken else f"{name}-{code}"
        taken.add(exp.id)
        exp.featured = bool(featured) and featured <= set(exp.runs)
        _arms(exp, configs)
        exp.baselines = {r: _baseline(r, exp, configs) for r in exp.runs if configs[r].get("part")}
    return sorted(by_key.values(), key=lambda e: (not e.featured, e.id.startswith("exp-"), e.id))


def experiment_of(run: str, experiments: Iterable[Experiment]) -> Experiment | None:
    return next((e for e in experiments if run in e.runs), None)


def results_by_experiment(results: Sequence[dict]) -> list[tuple[Experiment, list[dict]]]:
    """Evaluation results (eval.json dicts) grouped by the experiment of the run each came from, each result's
    label set to its arm's, so a table pools only seeds of one arm. Results without their run folder are
    grouped by what eval.json tells (dataset, model, training eps; their other fields read 'unknown') and keep
    their stored labels."""
    configs, by_id, roots, unknown = {}, {}, set(), set()
    for i, r in enumerate(results):
        folder = r.get("run_dir") or r.get("run")  # where load_results found it, else where it was evaluated
        rid = f"{i:05d}:{Path(str(folder or r.get('checkpoint') or i)).name}"
        by_id[rid] = r
        configs[rid] = None
        if folder:
            try:
                configs[rid] = RunDir(folder).config()
                roots.add(str(Path(folder).parent))
            except (OSError, RunFolderError, ValueError):
                pass
        if configs[rid] is None:  # no run folder: only what eval.json says of the training is known
            unknown.add(rid)
            configs[rid] = {"dataset": r.get("dataset"), "model": r.get("model"), "eps": r.get("train_eps"),
                            "defense": r.get("defense"), "part": r.get("part"), "seed": r.get("train_seed"),
                            **{k: "unknown" for k in EXPERIMENT_FIELDS if k not in ("dataset", "model", "eps")}}
    manifest = read_manifest(next(iter(roots))) if len(roots) == 1 else {}
    names = {rid: rid.split(":", 1)[1] for rid in by_id}
    manifest = {g: [dict(item, run=k) for k, v in names.items() for item in items
                    if isinstance(item, dict) and item.get("run") == v]
                for g, items in manifest.items() if isinstance(items, list)}
    return [(e, [{**by_id[r], "label": by_id[r].get("label") if r in unknown else e.arm_of[r]} for r in e.runs])
            for e in find_experiments(configs, manifest)]


def _group_names(manifest: Mapping[str, Any]) -> dict[str, str]:
    """run -> the name of the first manifest group that lists it."""
    out: dict[str, str] = {}
    for group, items in manifest.items():
        if isinstance(items, list):
            for item in items:
                if isinstance(item, dict) and isinstance(item.get("run"), str):
                    out.setdefault(item["run"], MANIFEST_GROUPS.get(group, group))
    return out


def _arms(exp: Experiment, configs: Mapping[str, Mapping[str, Any]]) -> None:
    """Group the runs by arm; arms that would share a method name get the fields that tell them apart."""
    groups: dict[str, list[str]] = {}
    for r in exp.runs:
        groups.setdefault(digest(arm_key(configs[r])), []).append(r)
    named: dict[str, list[list[str]]] = {}
    for runs in sorted(groups.values(), key=lambda runs: _arm_order(configs[runs[0]])):
        named.setdefault(method_name(configs[runs[0]]), []).append(runs)
    for name, same in named.items():
        for runs in same:
            label = name if len(same) == 1 else f"{name} [{_distinct(runs[0], [o[0] for o in same], configs)}]"
            exp.arms[label] = runs
            exp.arm_of |= {r: label for r in runs}


def _arm_order(config: Mapping[str, Any]) -> tuple:
    """Table 1's order: each defense (AT, TRADES, MART) and its PART variants, the paper's recipe first."""
    defense = config.get("defense") or "at"
    known = list(DEFENSE_ORDER)
    return (known.index(defense) if defense in known else len(known), defense, bool(config.get("part")),
            config.get("recipe", "paper") != "paper", method_name(config))


def _distinct(run: str, others: list[str], configs: Mapping[str, Mapping[str, Any]]) -> str:
    """'eps_low=0.05, tau=5': the arm fields in which `run` differs from some other arm of the same name."""
    mine = arm_key(configs[run])
    keys = [k for k in mine if any(arm_key(configs[o]).get(k) != mine[k] for o in others if o != run)]
    return ", ".join(f"{k}={_text(mine[k])}" for k in keys) or "same settings"


def _baseline(run: str, exp: Experiment, configs: Mapping[str, Mapping[str, Any]]) -> Baseline:
    cfg = configs[run]
    defense = cfg.get("defense") or "at"
    wanted = {"defense": defense, "part": False} | {k: _plain(cfg.get(k)) for k in DEFENSE_PARAMS.get(defense, ())}
    fits = tuple(o for o in exp.runs if arm_key(configs[o]) == wanted and configs[o].get("seed") == cfg.get("seed"))
    base = method_label(defense, False)
    if len(fits) == 1:
        return Baseline(fits[0], fits)
    if not fits:
        return Baseline(None, (), f"no baseline in this experiment: no {base} run with seed {cfg.get('seed')} "
                                  f"({exp.id}: {exp.description})")
    return Baseline(None, fits, f"{len(fits)} {base} runs with seed {cfg.get('seed')} fit ({', '.join(fits)}); "
                                "none is picked")


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value)) or "[]"
    return f"{value:g}" if isinstance(value, float) else str(value) if value != "" else "none"
