"""Evaluate a saved checkpoint into an output folder: the job behind `part eval` (and the backend's).

Loads the model and the dataset named in the checkpoint's meta, evaluates the first N test images of
the deterministic subset (`load_dataset(name, "test", subset=N)`, the same images for every model) at
the dataset's standard eps, and writes OUT/eval.json after every finished attack, then
OUT/report.md and OUT/report.html. A rerun into the same folder keeps the attacks it already finished
for the same checkpoint, eps, images and seed, and AutoAttack resumes from OUT/autoattack_state.json,
so an interrupted evaluation continues where it stopped. The model runs in float32 unless `amp` asks
for autocast (the result records which), so reported robustness is never weakened by precision.
Protocol: Zhang et al., ICML 2024 (PART), Table 1 and Appendix H.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Sequence

import torch

from part.evaluation.accuracy import ProgressCallback
from part.data.datasets import DATASETS, load_dataset
from part.experiments import method_name
from part.devices import resolve_device
from part.evaluation.evaluate import DEFAULT_ATTACKS, INSIGHT, check_placement, evaluate, parse_attack, parse_attacks
from part.attacks import attack_view
from part.precision import AutocastForward, Precision, resolve_amp
from part.runs import EvalDir, RunDir, load_model
from part.evaluation.threat_maps import MapSource, check_map_settings

FORMAT = "part-eval/1"
def resolve_checkpoint(checkpoint: str | Path | None = None, run: str | Path | None = None,
                       epoch: int | None = None) -> tuple[Path, Path | None]:
    """(checkpoint file, its run folder or None) from a checkpoint path or a run folder (+ epoch)."""
    if (checkpoint is None) == (run is None):
        raise ValueError("give exactly one of a checkpoint file (--checkpoint) or a run folder (--run)")
    if checkpoint is not None:
        if epoch is not None:
            raise ValueError("--epoch selects a checkpoint of a run folder; use it with --run, not --checkpoint")
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        owner = RunDir.of_checkpoint(path)
        return path, owner.path if owner is not None else None
    rd = RunDir(run)
    if not rd.exists():
        raise FileNotFoundError(f"{rd.path} is not a run folder: {rd.config_path} is missing")
    return rd.existing_checkpoint(epoch), rd.path


def label_for(config: dict) -> str:
    """Table 1's method name of a training config (part.experiments.method_name)."""
    return method_name(config)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _keep_other(out: EvalDir, header: dict, n: int) -> None:
    """Refuse to write into a folder that holds another evaluation of this checkpoint: it is never replaced."""
    other = out.other_evaluation(header)
    if other is None:
        return
    def settings(r: dict) -> str:
        return f"{r.get('n')} images, seed {r.get('seed', 0)}, {'float32' if r.get('amp', 'off') == 'off' else r['amp']}"
    own = out.sibling(n=n, seed=header.get("seed", 0), amp=header.get("amp", "off"))
    raise ValueError(f"{out.path} holds another evaluation of this checkpoint ({settings(other)}); it is kept. "
                     f"Write this one ({settings(header)}) to a folder of its own, e.g. --out {own.path} "
                     "(without --out, part eval picks one)")


def _previous(out: EvalDir, header: dict) -> dict:
    """Attack results of an earlier evaluation of the same checkpoint, eps, images and seed, else {}.

    The checks are kept only if they used the same surrogate.
    """
    old = out.results()
    if old is None:
        return {}
    if not all(old.get(k) == header[k] for k in ("checkpoint_sha256", "eps", "n", "indices", "seed")):
        return {}
    if old.get("amp", "off") != header.get("amp", "off"):  # results from before the field are float32
        return {}
    if old.get("attack_path", "plain") != header.get("attack_path", "plain"):  # --fast against the model itself
        return {}
    kept = dict(old.get("attacks", {}))
    if old.get("surrogate") != header["surrogate"]:
        kept.pop("checks", None)
    if old.get("corruption_files") != header.get("corruption_files"):  # generated vs read from files
        kept.pop("corruptions", None)
    return kept


def evaluate_checkpoint(checkpoint: str | Path | None = None, *, run: str | Path | None = None,
                        epoch: int | None = None, attacks: str | Sequence[str] = DEFAULT_ATTACKS, n: int = 1000,
                        out: str | Path | None = None, data_dir: str | None = None,
                        surrogate: str | Path | None = None, batch_size: int = 128, device: str = "auto",
                        seed: int = 0, label: str | None = None, recompute: bool = False, progress: bool = False,
                        corruption_files: str | Path | None = None, map_run: str | Path | None = None,
                        map_epoch: int | None = None, map_recipe: str | None = None, map_eps: float | None = None,
                        map_eps_low: float | None = None,
                        callback: ProgressCallback | None = None, amp: str = "off",
                        cam_methods: Sequence[str] | None = None, cam_layer: str | None = None,
                        cam_target: str | None = None, fast: bool = False,
                        attack_path: str = "auto") -> tuple[dict, dict[str, Path]]:
    """Evaluate one checkpoint; returns the result dict and the paths of the files written.

    OUT (default: RUN/eval/epoch_NNNN, or a sibling such as epoch_NNNN-n10 when that holds an evaluation with
    other settings) holding another evaluation of the same checkpoint is refused (ValueError), never replaced.
    Results in OUT/eval.json for the same checkpoint, eps, images and seed are kept; the attacks asked
    for that are among them are not rerun (the evaluation is deterministic) unless `recompute`, and
    result["reused"] names them. `corruption_files`: a folder of CIFAR-10-C / CIFAR-100-C / Tiny-ImageNet-C
    files that "corruptions" reads (part.evaluation.corruption_files) instead of corrupting the test images.
    pgd<K>-map and mma<K>-map take each image's eps-map from the CAM of `map_run` (default: the evaluated
    run) at `map_epoch` (default: its newest), with its recipe, eps and eps_low unless `map_recipe`,
    `map_eps`, `map_eps_low` say otherwise; they are stored as '<attack>@<map run>' (e.g.
    'pgd20-map@fmnist-part-s0'), so one model evaluated with several runs' maps keeps every result.
    alignment and faithfulness use the run's own CAMs (its cam_methods, cam_weights, cam_target, and the model's
    registered layer) unless `cam_methods`, `cam_layer` (a module path, e.g. features.2) or `cam_target`
    (label, pred) say otherwise; a kept result made with other CAM settings is rerun.
    `amp`: off (float32, the default for reported numbers), bf16, fp16, or auto (bf16 where native). `fast`:
    evaluate the attack-time network (part/attacks/attack_view.py: folded BatchNorm, channels_last where
    timing says so, or the `attack_path` given) instead of the model itself; the result records the path
    and its timings.
    """
    names = [s.name for s in parse_attacks(attacks)]  # fail on a bad name before any loading
    if attack_path not in attack_view.CHOICES or (attack_path != "auto" and not fast):
        raise ValueError(f"attack path '{attack_path}': accepted {', '.join(attack_view.CHOICES)}, and only with "
                         "--fast (without it the model itself is evaluated)")
    if n < 0:
        raise ValueError(f"n must be >= 0 (0: the whole test set), got {n}")
    ckpt_path, run_path = resolve_checkpoint(checkpoint, run, epoch)
    if surrogate is not None and not Path(surrogate).is_file():
        raise FileNotFoundError(f"surrogate checkpoint not found: {surrogate}")
    if corruption_files is not None:
        from part.evaluation.corruption_files import detect_layout

        detect_layout(corruption_files)  # a wrong folder fails before any loading
    dev = resolve_device(device)
    model, ckpt = load_model(ckpt_path, dev)
    meta, config = ckpt["meta"], ckpt.get("config", {})
    cam = _cam_overrides(config, model, cam_methods, cam_layer, cam_target)
    if any(parse_attack(a).kind == "placement" for a in names):
        check_placement(meta["dataset"])  # before any data is loaded or any attack runs
    surrogate_model = load_model(surrogate, dev)[0] if surrogate is not None else None
    map_source = _map_source(names, run_path, ckpt["meta"], map_run, map_epoch, dev, recipe=map_recipe, eps=map_eps,
                             eps_low=map_eps_low)
    dataset = meta["dataset"]
    ds = load_dataset(dataset, "test", data_dir=data_dir or config.get("data_dir") or None, subset=n,
                      image_size=int(config.get("image_size", 0) or 0))
    amp = resolve_amp(amp, dev)  # the folder is named by the precision the evaluation runs in
    out_dir = EvalDir(out) if out is not None else EvalDir.default_for(ckpt_path, n=n, seed=seed, amp=amp, fast=fast)
    result = _header(ckpt_path, run_path, ckpt, ds, label or label_for(config), surrogate, seed)
    if corruption_files is not None:
        result["corruption_files"] = str(Path(corruption_files).resolve())
    if fast:  # timed on this model at this batch size, under the precision it will run in
        x0 = ds.get_batch(torch.arange(1))[0]
        path, timings = attack_view.choose(model, (batch_size, *x0.shape[1:]), meta["num_classes"], attack_path,
                                           autocast=Precision(amp, False, dev, notify=False).autocast)
        model = attack_view.build(model, path)
        result.update(attack_path=attack_view.path_of(model), attack_timings_s=timings)
    if amp != "off":
        result["amp"] = amp
    _keep_other(out_dir, result, n)
    if amp != "off":
        model = AutocastForward(model, amp, dev)
        surrogate_model = AutocastForward(surrogate_model, amp, dev) if surrogate_model is not None else None
    result["attacks"] = _previous(out_dir, result)
    for k in [k for k in INSIGHT if k in result["attacks"] and not _same_cams(result["attacks"][k], cam)]:
        result["attacks"].pop(k)  # made with other CAMs: rerun
    key = {a: f"{a}@{map_source.describe['map_run']}" if map_source and parse_attack(a).per_pixel else a for a in names}
    if map_source is not None:  # results with maps of the same run but other settings are not reused
        for k in [k for k, r in result["attacks"].items() if "map" in r and not map_source.same(r["map"])
                  and k.endswith("@" + map_source.describe["map_run"])]:
            result["attacks"].pop(k)
    result["reused"] = [] if recompute else [key[a] for a in names if key[a] in result["attacks"]]
    todo = [a for a in names if key[a] not in result["reused"]]
    started = time.time()

    def on_result(name: str, record: dict) -> None:
        result["attacks"][key.get(name, name)] = record
        result["seconds"] = round(time.time() - started, 3)
        out_dir.write_results(result)
        if not progress:  # no bars (a job's log file): a line per attack as it lands
            print(f"{key.get(name, name)}: done in {record.get('seconds', 0):.1f} s", flush=True)

    if todo and not progress:
        print(f"evaluating epoch {ckpt.get('epoch')} on {len(ds)} test images: {', '.join(todo)}", flush=True)
    if todo:
        evaluate(model, ds, todo, eps=DATASETS[dataset].default_eps, batch_size=batch_size,
                 surrogate=surrogate_model, state_dir=out_dir.state_dir(), seed=seed, progress=progress, callback=callback,
                 on_result=on_result, corruption_files=corruption_files, map_source=map_source, cam=cam)
    else:
        out_dir.write_results(result)
    from part.evaluation.report_html import write_reports

    paths = {"json": out_dir.results_path, **write_reports(out_dir.path, [result])}
    return result, paths


def _cam_overrides(config: dict, model, methods, layer, target) -> dict:
    """The run's config with the CAM settings of alignment and faithfulness overridden, each checked now."""
    from part.evaluation.faithfulness import cam_layer
    from part.explain.cam import METHODS

    cam = dict(config)
    if methods is not None:
        items = methods.split(",") if isinstance(methods, str) else list(methods)
        methods = [m.strip() for m in items if m.strip()]
        bad = [m for m in methods if m not in METHODS or m == "ensemble"]
        if bad or not methods:
            raise ValueError(f"cam_methods {', '.join(bad) or '(none)'} not accepted; accepted: "
                             f"{', '.join(m for m in METHODS if m != 'ensemble')} (several, comma-separated: an ensemble)")
        cam["cam_methods"], cam["cam_weights"] = methods, []
    if target is not None:
        if target not in ("label", "pred"):
            raise ValueError(f"cam_target '{target}' is not accepted; accepted: label, pred")
        cam["cam_target"] = target
    if layer is not None:
        cam_layer(model, layer)  # a bad name fails now, listing the layers
        cam["cam_layer"] = layer
    return cam


def _same_cams(record: dict, cam: dict) -> bool:
    """Whether a kept alignment/faithfulness record was made with these CAM settings."""
    from part.evaluation.faithfulness import CAM_KEYS, cam_settings

    mine = cam_settings(cam)
    return all(record.get(k) == mine[k] for k in CAM_KEYS)  # records from before cam_layer: None, the registered one


MAP_ONLY = ("map_run", "map_epoch", "map_recipe", "map_eps", "map_eps_low")


def _map_source(names: list[str], run_path: Path | None, meta: dict, map_run, map_epoch, dev, **settings) -> MapSource | None:
    """The eps-map source of the -map attacks: a run's checkpoint and its config (None when none is asked for)."""
    given = dict(zip(MAP_ONLY, (map_run, map_epoch, *settings.values())))
    check_map_settings(any(parse_attack(a).per_pixel for a in names), given, {}, None)
    if not any(parse_attack(a).per_pixel for a in names):
        return None
    source = map_run if map_run is not None else run_path
    if source is None:
        raise ValueError("the -map attacks need eps-maps from a run's CAMs: name the run (--map-run); the evaluated "
                         "checkpoint is not inside a run folder")
    ckpt_path, _ = resolve_checkpoint(run=source, epoch=map_epoch)
    model, ckpt = load_model(ckpt_path, dev)
    for field in ("dataset", "in_channels", "image_size"):
        if ckpt["meta"].get(field) != meta.get(field):
            raise ValueError(f"the map run {source} was trained on {field} {ckpt['meta'].get(field)}, the evaluated "
                             f"model on {meta.get(field)}; the maps must fit the evaluated images")
    describe = {"map_run": Path(source).resolve().name, "map_epoch": ckpt.get("epoch"),
                "map_checkpoint": str(ckpt_path.resolve()), "map_checkpoint_sha256": _sha256(ckpt_path)}
    return MapSource.from_checkpoint(model, ckpt.get("config", {}), describe=describe, **settings)


def _header(ckpt_path: Path, run_path: Path | None, ckpt: dict, ds, label: str, surrogate, seed: int) -> dict:
    meta, config = ckpt["meta"], ckpt.get("config", {})
    indices = ds.indices.tolist() if hasattr(ds, "indices") else list(range(len(ds)))
    eps = DATASETS[meta["dataset"]].default_eps
    return {"format": FORMAT, "label": label, "model": meta["model"], "dataset": meta["dataset"],
            "checkpoint": str(ckpt_path.resolve()), "checkpoint_sha256": _sha256(ckpt_path),
            "run": str(run_path.resolve()) if run_path is not None else None, "epoch": ckpt.get("epoch"),
            "train_seed": config.get("seed"), "train_eps": config.get("eps"), "defense": config.get("defense"),
            "part": config.get("part"), "eps": eps, "eps_text": _eps_text(eps), "n": len(ds),
            "indices": indices, "labels": ds.labels.tolist(), "classes": meta.get("classes"),
            "surrogate": str(Path(surrogate).resolve()) if surrogate is not None else None, "seed": seed,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "seconds": 0.0, "attacks": {}}


def _eps_text(eps: float) -> str:
    k = round(eps * 255)
    return f"{k}/255" if k and abs(eps - k / 255) < 1e-9 else f"{eps:g}"
