"""The `part` command: train, resume, sweep, cam, bench, eval, report, serve, presets."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from part.commands import resume_argv, train_argv
from part.runs import EvalDir
from part.training.config import PRESETS, parse_overrides


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def checkpoints_root() -> Path:
    return Path(os.environ.get("PART_CHECKPOINTS", "checkpoints"))


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="part", description="Pixel-reweighted adversarial training (PART) and its tools.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a model into a run folder")
    start = t.add_mutually_exclusive_group(required=True)
    start.add_argument("--preset", choices=list(PRESETS), metavar="NAME", help="one of: " + ", ".join(PRESETS))
    start.add_argument("--config", metavar="FILE", help="a resolved TrainConfig as JSON (what a job hands over)")
    t.add_argument("--epochs", type=int)
    t.add_argument("--burn-in", type=int, dest="burn_in_epochs")
    t.add_argument("--mask-every", type=int, dest="mask_every", help="refresh masks every S epochs (0: per batch)")
    t.add_argument("--subset", type=int, help="train on a deterministic subset of N images")
    t.add_argument("--seed", type=int)
    t.add_argument("--out", help="run folder (default: $PART_CHECKPOINTS or checkpoints/, then preset-seed-time)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any config field, e.g. eps=8/255")
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--nproc", type=int, help="train in N processes with DDP (torchrun on this machine)")

    r = sub.add_parser("resume", help="continue a run from its newest complete epoch")
    r.add_argument("run_dir")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument("--nproc", type=int, help="processes (default: as the run was trained)")

    w = sub.add_parser("sweep", help="train a grid over config fields, one run folder per cell (again: resumes it)")
    w.add_argument("--preset", required=True, choices=list(PRESETS), metavar="NAME", help="one of: " + ", ".join(PRESETS))
    w.add_argument("--grid", action="append", required=True, metavar="FIELD=V1,V2,...",
                   help="a swept field and its values, e.g. recipe=paper,shuffled (repeat for a grid)")
    w.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a field every cell shares")
    w.add_argument("--name", required=True, help="the sweep's name; its cells are NAME.FIELD-VALUE...")
    w.add_argument("--no-progress", action="store_true")

    c = sub.add_parser("cam", help="write a jet CAM overlay of an image")
    c.add_argument("--checkpoint", required=True)
    c.add_argument("--image", required=True)
    c.add_argument("--method", default="gradcam", help="a CAM method, or several joined by commas (ensemble)")
    c.add_argument("--target", type=int, help="class to explain (default: the predicted class)")
    c.add_argument("--out", required=True)

    b = sub.add_parser("bench", help="time AT vs PART epochs, float32 vs bf16 vs the fast path, and native vs library CAM")
    b.add_argument("--model", default="small-cnn", help="a registered model, on its dataset's preset at its input size "
                                                        "(generated CIFAR-10-sized images where CIFAR-10 is missing)")
    b.add_argument("--amp", default="off,bf16", help="precisions to time, comma-separated (off = float32, bf16)")
    b.add_argument("--no-fast", action="store_true", help="skip the fast path (amp=auto, attack network chosen by timing)")
    b.add_argument("--repeats", type=int, default=4, help="timed epochs of each kind per precision (median)")
    b.add_argument("--n", type=int, default=4000, help="training images (a subset of the dataset)")
    b.add_argument("--batch-size", type=int, help="training batch (default: the preset's)")
    b.add_argument("--attack-steps", type=int, help="PGD steps of the inner maximisation (default: the preset's, 10)")
    b.add_argument("--cam-batch", type=int, default=256, help="images of the CAM timing (0: skip it)")

    e = sub.add_parser("eval", help="robustness evaluation: clean, PGD-K, MMA, AutoAttack, corruptions, checks")
    source = e.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a checkpoint file (.pt)")
    source.add_argument("--run", help="a run folder (its newest checkpoint, or --epoch N)")
    e.add_argument("--epoch", type=int, help="with --run: the epoch to evaluate")
    e.add_argument("--attacks", default="clean,pgd20,mma,aa",
                   help="comma-separated: clean, fgsm, pgd<K>, mma, mma<K>, aa, corruptions, checks, pgd<K>-map, mma-map, "
                        "pgd20@EPS,... (an eps sweep), alignment (CAM energy on the object), faithfulness (ROAD)")
    e.add_argument("--n", type=int, default=1000, help="test images (a fixed subset; 0: all)")
    e.add_argument("--out", help="output folder (default: RUN/eval/epoch_NNNN, or epoch_NNNN-n<N> when that holds "
                                 "an evaluation with other settings; one holding another evaluation is refused)")
    e.add_argument("--data-dir", help="dataset folder (default: as the run was trained)")
    e.add_argument("--surrogate", help="checkpoint of a surrogate model for the transfer check")
    e.add_argument("--corruption-files", metavar="DIR",
                   help="with --attacks corruptions: read CIFAR-10-C / CIFAR-100-C (DIR/<corruption>.npy + labels.npy) "
                        "or Tiny-ImageNet-C (DIR/<corruption>/<severity>/<wnid>/*.JPEG) instead of generating them")
    e.add_argument("--map-run", metavar="RUN", help="pgd<K>-map / mma-map: the run whose CAMs make each test image's "
                                                    "eps-map (default: the evaluated run)")
    e.add_argument("--map-epoch", type=int, help="the map run's epoch (default: its newest)")
    e.add_argument("--map-recipe", help="mask recipe of the maps (default: the map run's)")
    e.add_argument("--map-eps", help="largest budget of the maps, e.g. 0.1 or 8/255 (default: the map run's eps)")
    e.add_argument("--map-eps-low", help="budget of unimportant pixels (default: the map run's eps_low)")
    e.add_argument("--cam-methods", help="alignment / faithfulness: CAM method(s), comma-separated for an ensemble "
                                         "(default: the run's cam_methods)")
    e.add_argument("--cam-layer", help="alignment / faithfulness: the CAM's target layer, a module path such as "
                                       "features.2 (default: the model's registered layer)")
    e.add_argument("--cam-target", choices=("label", "pred"),
                   help="alignment / faithfulness: explain the true label or the prediction (default: the run's)")
    e.add_argument("--batch-size", type=int, default=128)
    e.add_argument("--label", help="method name in the tables (default: AT, PART, TRADES, ... from the config)")
    e.add_argument("--device", default="auto", help="auto, cpu or cuda")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--amp", choices=("off", "bf16", "fp16", "auto"),
                   help="autocast the model's forward passes (default off: float32, as reported results are; "
                        "with --fast: auto, bf16 where the hardware computes it natively)")
    e.add_argument("--fast", action="store_true",
                   help="attack the attack-time network (folded BatchNorm, channels_last where timing says so) "
                        "in the machine's fast precision; the default evaluates the model itself in float32")
    e.add_argument("--attack-path", default="auto", choices=("auto", "plain", "folded", "folded-cl"),
                   help="with --fast: the attack network (default auto: the fastest, timed on this checkpoint)")
    e.add_argument("--recompute", action="store_true", help=f"rerun attacks already in OUT/{EvalDir.RESULTS}")
    e.add_argument("--no-progress", action="store_true")

    rp = sub.add_parser("report", help="Table 1 / Table 4 reports (Markdown, HTML) of several evaluated runs")
    rp.add_argument("paths", nargs="+", help=f"run folders, eval folders or {EvalDir.RESULTS} files")
    rp.add_argument("--baseline", help="method label to show differences to (AT), or pairs (PART=AT,PART-T=TRADES)")
    rp.add_argument("--out", default=".", help=f"folder for {' and '.join(EvalDir.REPORTS.values())}")

    s = sub.add_parser("serve", help="serve the HTTP API (backend/) with uvicorn; docs at /docs")
    s.add_argument("--host", help="bind address (default $PART_HOST or 127.0.0.1; others need $PART_TOKEN)")
    s.add_argument("--port", type=int, help="port (default $PART_PORT or 8000)")
    s.add_argument("--checkpoints", help="run folder root (default $PART_CHECKPOINTS or checkpoints/)")
    s.add_argument("--data-dir", help="folder with one sub-folder per dataset ($PART_DATA_DIR)")
    s.add_argument("--device", help="auto, cpu or cuda for the API's models ($PART_DEVICE)")
    s.add_argument("--jobs", type=int, help="training/evaluation processes at once ($PART_JOB_CONCURRENCY)")

    sub.add_parser("presets", help="list the training presets")
    return p


TRAIN_FLAGS = {"epochs": "--epochs", "burn_in_epochs": "--burn-in", "mask_every": "--mask-every",
               "subset": "--subset", "seed": "--seed"}


def _train(args) -> None:
    from part.training import distributed as dist
    from part.training.config import preset
    from part.runs import RunDir
    from part.training.trainer import train

    flags = {k: getattr(args, k) for k in TRAIN_FLAGS}
    overrides = {**parse_overrides(args.set), **{k: v for k, v in flags.items() if v is not None}}
    if args.nproc is not None:
        overrides["nproc"] = args.nproc
    cfg = preset(args.preset, **overrides) if args.preset else _config_file(Path(args.config)).replace(**overrides)
    if dist.under_torchrun() and not args.out and int(os.environ["WORLD_SIZE"]) > 1:
        raise ValueError("--out is required under torchrun: every rank must name the same run folder")
    name = args.preset or Path(args.config).stem
    out = Path(args.out) if args.out else checkpoints_root() / f"{name}-s{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    if os.environ.get("RANK", "0") == "0":
        print(f"run folder: {out}", flush=True)
    if cfg.nproc > 1 and not dist.under_torchrun():
        run = RunDir(out)
        if run.exists():
            raise FileExistsError(f"{out} already holds a run; continue it with `part resume {out}` "
                                  "or choose another --out")
        run.write_requested_config(cfg.to_dict())  # every worker reads this one file
        _relaunch(cfg.nproc, cfg.device, train_argv(out, config_file=run.requested_config_path,
                                                    progress=not args.no_progress, part=()))
    train(cfg, out, progress=not args.no_progress)


def _config_file(path: Path):
    from part.training.config import TrainConfig

    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"--config {path}: not a readable JSON file ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"--config {path}: expected a JSON object of TrainConfig fields")
    return TrainConfig.from_dict(data)


def _resume(args) -> None:
    from part.training import distributed as dist
    from part.runs import RunDir
    from part.training.trainer import train

    config = RunDir(args.run_dir).config()
    nproc = args.nproc or int(config.get("nproc", 1))
    if nproc > 1 and not dist.under_torchrun():
        _relaunch(nproc, config.get("device", "auto"), resume_argv(args.run_dir, progress=not args.no_progress, part=()))
    train(None, args.run_dir, resume=True, progress=not args.no_progress)


def _relaunch(nproc: int, device: str, argv: list[str]) -> None:
    """Become `torchrun --standalone --nproc_per_node N -m part.cli ARGV` (does not return)."""
    from part.training import distributed as dist
    most = dist.max_nproc(device)
    if nproc > most:
        raise ValueError(f"nproc {nproc} exceeds the {most} processes this machine offers (its GPUs, or CPU "
                         "cores without CUDA); for several nodes start torchrun yourself (see README)")
    dist.exec_torchrun(nproc, argv)


def _sweep(args) -> None:
    """The cells one after another in this process; a cell already completed is kept, a stopped one resumed."""
    from part.runs import RunDir, read_sweep, write_sweep
    from part.training.sweeps import parse_grid, plan
    from part.training.config import TrainConfig
    from part.training.trainer import train

    root = checkpoints_root()
    record = plan(args.name, args.preset, parse_overrides(args.set), parse_grid(args.grid))
    old = read_sweep(root, args.name)
    if old is not None and [c["run_id"] for c in old["cells"]] != [c["run_id"] for c in record["cells"]]:
        raise FileExistsError(f"sweep '{args.name}' exists with other cells ({root / '.sweeps'}); choose another --name")
    write_sweep(root, record)
    for i, cell in enumerate(record["cells"], 1):
        run = RunDir(root / cell["run_id"])
        state = run.status().get("state") if run.exists() else None
        print(f"cell {i}/{len(record['cells'])} {cell['run_id']}: {state or 'new'}", flush=True)
        if state == "completed":
            continue
        if run.exists():
            train(None, run.path, resume=True, progress=not args.no_progress)
        else:
            train(TrainConfig.from_dict(cell["config"]), run.path, progress=not args.no_progress)
    if record["experiment_fields"]:
        print(f"note: {', '.join(record['experiment_fields'])} define the experiment; the cells are compared "
              "only inside each of its values", flush=True)


def _cam(args) -> None:
    import torch

    from part.explain.cam import compute_cam
    from part.explain.images import jet_overlay, open_image, save_png, to_tensor
    from part.runs import load_model

    model, ckpt = load_model(args.checkpoint)
    meta = ckpt["meta"]
    x = to_tensor(open_image(args.image), meta["in_channels"], meta["image_size"])
    targets = None if args.target is None else torch.tensor([args.target])
    if targets is not None and not 0 <= args.target < meta["num_classes"]:
        raise ValueError(f"--target {args.target} is out of range; accepted: 0..{meta['num_classes'] - 1}")
    methods = [m.strip() for m in args.method.split(",") if m.strip()]
    cam = compute_cam(model, x, targets, methods)
    save_png(jet_overlay(x[0], cam[0], scale=max(1, 224 // meta["image_size"])), args.out)
    with torch.no_grad():
        pred = int(model(x).argmax(1))
    print(f"wrote {args.out} (predicted: {meta['classes'][pred]})")


def _bench(args) -> None:
    from part.training.bench import run_bench

    from models import model_names

    amps = tuple(a.strip() for a in args.amp.split(",") if a.strip())
    bad = [a for a in amps if a not in ("off", "bf16")]
    if bad or not amps or args.repeats < 1:
        raise ValueError(f"--amp {args.amp!r} / --repeats {args.repeats}: accepted precisions are off and bf16 "
                         "(comma-separated), repeats >= 1")
    if args.model not in model_names():
        raise ValueError(f"--model {args.model!r} is not a registered model; accepted: {', '.join(model_names())}")
    if args.n < 1 or args.cam_batch < 0:
        raise ValueError(f"--n {args.n} / --cam-batch {args.cam_batch}: accepted n >= 1, cam-batch >= 0")
    overrides = {k: v for k, v in (("batch_size", args.batch_size), ("attack_steps", args.attack_steps)) if v is not None}
    run_bench(n=args.n, cam_batch=args.cam_batch, amps=amps, repeats=args.repeats, model=args.model,
              fast=not args.no_fast, **overrides)


def _eval(args) -> None:
    from part.training.config import parse_number
    from part.evaluation.job import evaluate_checkpoint
    from part.evaluation.evaluate import parse_attacks

    result, paths = evaluate_checkpoint(
        args.checkpoint, run=args.run, epoch=args.epoch, attacks=args.attacks, n=args.n, out=args.out,
        data_dir=args.data_dir, surrogate=args.surrogate, batch_size=args.batch_size, device=args.device,
        corruption_files=args.corruption_files, map_run=args.map_run, map_epoch=args.map_epoch,
        map_recipe=args.map_recipe, map_eps=None if args.map_eps is None else parse_number(args.map_eps),
        map_eps_low=None if args.map_eps_low is None else parse_number(args.map_eps_low),
        seed=args.seed, label=args.label, recompute=args.recompute, progress=not args.no_progress,
        amp=eval_amp(args), cam_methods=args.cam_methods, cam_layer=args.cam_layer, cam_target=args.cam_target,
        fast=args.fast, attack_path=args.attack_path)
    if args.fast:
        timed = ", ".join(f"{k} {v:.4f} s" for k, v in result.get("attack_timings_s", {}).items())
        print(f"attack network: {result['attack_path']}, amp {result.get('amp', 'off')}"
              + (f" (one attack step: {timed})" if timed else ""))
    for name, rec in result["attacks"].items():
        verdict = rec["accuracy"] if rec.get("accuracy") is not None else rec.get("passed")
        shown = f"{verdict:.2%}" if isinstance(verdict, float) else ("all passed" if verdict else "FAILED")
        if rec.get("kind") in ("alignment", "faithfulness"):  # CAM numbers, not accuracies (part.evaluation.faithfulness)
            value = rec.get("energy") if rec["kind"] == "alignment" else rec.get("road_combined")
            shown = "no mask" if value is None else f"{value:.4f}"
        if rec.get("sweep"):  # robustness vs eps (part.evaluation.eps_sweep): an accuracy per eps
            shown = " ".join(f"{100 * a:.1f}%" for a in rec["accuracies"])
        if rec.get("kind") == "placement":  # five budgets, one accuracy each (part.evaluation.placement)
            shown = f"{100 * rec['cases']['part_like']['accuracy']:.2f}%"
        mapped = not rec.get("sweep") and rec.get("kind") != "placement"  # placement@0.05: an eps_low, not a map run
        base, _, map_run = name.partition("@") if mapped else (name, "", "")  # pgd20-map@RUN: RUN's maps; this call made the current map run's
        ran_now = (base in {a.name for a in parse_attacks(args.attacks)} and name not in result["reused"]
                   and map_run in ("", _map_run_name(args)))
        kept = "" if ran_now else ", kept from an earlier run"
        print(f"{name:12s} {shown:>10s}  ({rec['seconds']:.1f} s{kept})")
        if rec.get("params", {}).get("source") == "files":
            p = rec["params"]
            print(f"{'':12s} read from {p['root']} ({p['layout']}): found {len(p['found'])} of "
                  f"{len(p['found']) + len(p['missing'])} corruptions" + (f"; missing: {', '.join(p['missing'])}"
                                                                          if p["missing"] else ""))
        if rec.get("kind") == "placement":
            for case, c in rec["cases"].items():
                vs = "" if "p" not in c else f"  {c['delta_points']:+.2f} points vs part_like, McNemar p = {c['p']:.2g}"
                print(f"{'':12s} {case:16s} {100 * c['accuracy']:6.2f}%  (eps {c['on_object']:.4g} on the object, "
                      f"{c['off_object']:.4g} off it){vs}")
        if "map" in rec:
            m = rec["map"]
            print(f"{'':12s} eps-maps of {m['map_run']} epoch {m['map_epoch']} ({m['recipe']}, eps_low "
                  f"{255 * m['eps_low']:.2f}/255): mean budget {m['mean_budget_255']:.2f}/255, full eps on "
                  f"{100 * m['full_eps_fraction']:.1f}% of pixel values")
    print("wrote " + ", ".join(str(p) for p in paths.values()))


def eval_amp(args) -> str:
    """The precision `part eval` runs in: --amp, else float32, or with --fast auto (bf16 where native)."""
    return args.amp or ("auto" if args.fast else "off")


def _map_run_name(args) -> str:
    """The run whose maps this `part eval` uses: --map-run, else the evaluated run."""
    source = Path(args.map_run or args.run or Path(args.checkpoint).parent.parent)
    return source.resolve().name


def _report(args) -> None:
    from part.evaluation.report_html import write_reports
    from part.evaluation.reports import load_results

    paths = write_reports(args.out, load_results(args.paths), args.baseline)
    print("\n".join(f"wrote {path}" for path in paths.values()))


def _serve(args) -> None:
    import importlib.util

    # The service is its own program (python -m backend): the core library never imports the web stack.
    if importlib.util.find_spec("backend") is None:
        raise FileNotFoundError("the backend package is not installed; run `make setup` (pip install -e .)")
    flags = {"--host": args.host, "--port": args.port, "--checkpoints": args.checkpoints,
             "--data-dir": args.data_dir, "--device": args.device, "--jobs": args.jobs}
    argv = [sys.executable, "-m", "backend"] + [str(x) for k, v in flags.items() if v is not None for x in (k, v)]
    os.execv(sys.executable, argv)


def _presets(args) -> None:
    for name, values in PRESETS.items():
        print(f"{name:24s} " + " ".join(f"{k}={v}" for k, v in values.items()))


COMMANDS = {"train": _train, "resume": _resume, "sweep": _sweep, "cam": _cam, "bench": _bench, "eval": _eval, "report": _report, "serve": _serve, "presets": _presets}


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"part {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("part: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        code = getattr(err, "exit_code", None)  # a trainer stopped at an epoch's end for a time limit: resumable
        if code is None:
            raise
        print(f"part {args.command}: {err}", file=sys.stderr)
        return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
