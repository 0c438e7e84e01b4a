"""`part bench`: PART's training overhead over AT, bf16 autocast and the fast path against float32 (AT and
PART epochs, the mask refresh included), and the native CAM path against pytorch-grad-cam.

`--model NAME` times that model on its own dataset's preset at its input size (bench_config); where
that dataset is not installed (CIFAR-10 for the 32x32 and larger models), on generated images of its
shape. The fast path is what a run gets by default: amp=auto and the attack network chosen by timing
(part/attacks/attack_view.py: plain, folded BatchNorm, folded + channels_last); float32 and bf16 attack
with the model itself.

All timings are taken in one process on the same model and data, interleaved, and reported as
ratios, because absolute seconds on a shared machine are noise. The training timings are also taken
in this process's CPU seconds (`*_cpu`), which other work on the machine does not inflate: with one
thread (OMP_NUM_THREADS=1) they are the compute the epoch needs, and on a busy machine the ratio to trust.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

import pytorch_grad_cam as gc
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from models import get_spec
from part.data.datasets import DatasetNotFound, load_dataset
from part.data.synthetic import write_cifar10
from part.explain.cam import compute_cam
from part.training.config import TrainConfig, preset
from part.training.cam_cache import CamCache
from part.precision import capability, resolve_amp
from part.runs import RunDir
from part.training.trainer import Trainer


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _timed_both(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def bench_config(model: str, n: int, data_dir: str | Path | None = None, **overrides) -> TrainConfig:
    """The PART config `part bench` times for `model`: its own dataset's preset at the model's input size
    (Fashion-MNIST at 28, the cluttered canvas at 40, CIFAR-10 otherwise, resized where the model wants
    another size), n training images, burn-in 1 and s=1, so epoch 1 is AT and epoch 2 PART."""
    spec = get_spec(model)
    size = spec.input_size
    name = {28: "fmnist-vit-part" if model == "vit-tiny" else "fmnist-part", 40: "fmnist-clutter-part"}.get(
        size, "cifar10-part")
    settings = dict(model=model, subset=n, burn_in_epochs=1, mask_every=1, eval_n=10, probe_count=1, device="cpu")
    if not name.startswith("fmnist"):
        settings.update(image_size=0 if size == 32 else size, data_dir=str(data_dir or ""))
    return preset(name, **{**settings, **overrides})


@contextlib.contextmanager
def bench_data(model: str, n: int):
    """The data folder `part bench` reads for `model`: None where the preset's dataset is installed (or
    not needed: Fashion-MNIST), else a temporary folder of n generated CIFAR-10-sized images."""
    cfg = bench_config(model, n)
    if cfg.dataset != "cifar10":
        yield None
        return
    try:
        load_dataset("cifar10", "test", subset=1)
        yield None
        return
    except DatasetNotFound:
        pass
    with tempfile.TemporaryDirectory() as tmp:
        write_cifar10(tmp, n_train=n, n_test=n)
        print(f"CIFAR-10 is not installed: timing on {n} generated images of its shape", flush=True)
        yield tmp


VARIANTS = {"off": "float32", "bf16": "bf16", "fast": "fast path"}  # prefixes: "", "bf16_", "fast_"


def _variant_config(cfg: TrainConfig, variant: str) -> TrainConfig:
    """float32 and bf16 attack with the model itself; the fast path is amp=auto with the attack path timed."""
    if variant == "fast":
        return cfg.replace(amp=resolve_amp("auto", torch.device(cfg.device)), attack_path="auto")
    return cfg.replace(amp=variant, attack_path="plain")


def _refresh(trainer: Trainer) -> None:
    trainer.mask_cache = CamCache.build(trainer.train_set, lambda x, y: trainer.cams(x, y, trainer.attack_model()),
                                        epoch=2)


def _warm_up(trainer: Trainer) -> None:
    """One AT epoch (so the CAMs mean something), then one of everything timed: first calls build kernels."""
    trainer.train_epoch(1)
    _refresh(trainer)
    trainer.train_epoch(2)


def bench_training(n: int, repeats: int = 4, amps: tuple[str, ...] = ("off",), *, model: str = "small-cnn",
                   fast: bool = False, data_dir: str | Path | None = None, **overrides) -> dict:
    """Median seconds of an AT epoch, a PART epoch (cached masks) and a mask refresh, for each precision
    in `amps` and (fast=True) for the fast path: amp=auto and the attack path chosen by timing.

    One trainer per variant, from the same seed; every repeat runs each variant's refresh, AT and PART
    epoch, in an order that alternates, so drift in machine speed favours none of them.
    """
    variants = tuple(amps) + (("fast",) if fast else ())
    base = bench_config(model, n, data_dir, **overrides)
    trainers = {}
    for v in variants:
        with tempfile.TemporaryDirectory() as tmp:
            trainers[v] = Trainer(_variant_config(base, v), RunDir(tmp))
        _warm_up(trainers[v])
    times = {(v, what): [] for v in variants for what in ("at", "part", "refresh")}
    for r in range(repeats):
        for v in variants if r % 2 == 0 else variants[::-1]:
            trainer = trainers[v]
            times[v, "refresh"].append(_timed_both(lambda: _refresh(trainer)))
            for what, epoch in [("at", 1), ("part", 2)] if r % 2 == 0 else [("part", 2), ("at", 1)]:
                times[v, what].append(_timed_both(lambda: trainer.train_epoch(epoch)))
    first = next(iter(trainers.values()))
    out = {"model": model, "dataset": base.dataset, "images": len(first.train_set), "batch_size": base.batch_size,
           "attack_steps": base.attack_steps}
    if fast:
        t = trainers["fast"]
        out.update({"fast_path": t.attack_path, "fast_amp": t.cfg.amp, "fast_attack_step_s": t.attack_timings})
    for clock, suffix in ((0, "s"), (1, "cpu_s")):
        med = {k: statistics.median(t[clock] for t in v) for k, v in times.items()}
        for v in variants:
            at_s, part_s, refresh_s = med[v, "at"], med[v, "part"], med[v, "refresh"]
            p = "" if v == "off" else f"{v}_"
            out.update({f"{p}at_epoch_{suffix}": at_s, f"{p}part_epoch_{suffix}": part_s,
                        f"{p}mask_refresh_{suffix}": refresh_s})
            if clock == 0:
                out.update({f"{p}part_s1_over_at": (part_s + refresh_s) / at_s,
                            f"{p}part_s10_over_at": (part_s + refresh_s / 10) / at_s})
        c = "" if clock == 0 else "_cpu"
        for other in ("bf16", "fast"):  # over float32; a PART epoch with s=1 is the epoch plus its refresh
            if "off" not in variants or other not in variants:
                continue
            out[f"{other}_speedup_at{c}"] = out[f"at_epoch_{suffix}"] / out[f"{other}_at_epoch_{suffix}"]
            out[f"{other}_speedup_part{c}"] = ((out[f"part_epoch_{suffix}"] + out[f"mask_refresh_{suffix}"])
                                               / (out[f"{other}_part_epoch_{suffix}"] + out[f"{other}_mask_refresh_{suffix}"]))
            out[f"{other}_speedup_refresh{c}"] = out[f"mask_refresh_{suffix}"] / out[f"{other}_mask_refresh_{suffix}"]
    return out


def bench_cam(batch: int, repeats: int = 5, *, model: str = "small-cnn", data_dir: str | Path | None = None) -> dict:
    """The native GradCAM against pytorch-grad-cam's on one batch of the bench model (untrained weights)."""
    cfg = bench_config(model, batch, data_dir, eval_n=batch, attack_path="plain")
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, RunDir(tmp))
    net = trainer.model.eval()
    x, y = trainer.eval_set.get_batch(torch.arange(min(batch, len(trainer.eval_set))))

    def library():
        with gc.GradCAM(model=net, target_layers=[net.cam_layer()]) as cam:
            cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in y])

    native, lib = [], []
    for _ in range(repeats):
        native.append(_timed(lambda: compute_cam(net, x, y, "gradcam")))
        lib.append(_timed(library))
    native_s, lib_s = statistics.median(native), statistics.median(lib)
    return {"cam_batch": len(y), "cam_native_s": native_s, "cam_library_s": lib_s,
            "cam_speedup_over_gradcam_lib": lib_s / native_s}


def run_bench(n: int = 4000, cam_batch: int = 256, amps: tuple[str, ...] = ("off", "bf16"),
              repeats: int = 4, *, model: str = "small-cnn", fast: bool = True, **overrides) -> dict:
    torch.manual_seed(0)
    cap = capability()
    with bench_data(model, max(n, cam_batch)) as data_dir:
        result = {**bench_training(n, repeats, amps, model=model, fast=fast, data_dir=data_dir, **overrides),
                  **(bench_cam(cam_batch, model=model, data_dir=data_dir) if cam_batch > 0 else {}), **cap}
    print(f"threads: {torch.get_num_threads()}, model: {model}, {result['dataset']} ({result['images']} training "
          f"images, batch {result['batch_size']}), PGD-{result['attack_steps']}, CPU: {cap['cpu_capability']}, "
          f"native bf16: {', '.join(cap['cpu_bf16_flags']) or 'no'}")
    if fast:
        steps = ", ".join(f"{k} {v:.4f} s" for k, v in result["fast_attack_step_s"].items()) or "not timed"
        print(f"fast path: attack network {result['fast_path']}, amp {result['fast_amp']} "
              f"(one attack step: {steps})")
    for v in tuple(amps) + (("fast",) if fast else ()):
        p, name = ("" if v == "off" else f"{v}_"), VARIANTS[v]
        print(f"[{name}] AT epoch {result[p + 'at_epoch_s']:8.2f} s   PART epoch {result[p + 'part_epoch_s']:8.2f} s "
              f"(cached masks)   mask refresh {result[p + 'mask_refresh_s']:6.2f} s (whole training set)   "
              f"PART/AT s=1: {result[p + 'part_s1_over_at']:.3f}  s=10: {result[p + 'part_s10_over_at']:.3f}")
        print(f"[{name}] CPU seconds: AT epoch {result[p + 'at_epoch_cpu_s']:.2f}, PART epoch "
              f"{result[p + 'part_epoch_cpu_s']:.2f}, mask refresh {result[p + 'mask_refresh_cpu_s']:.2f}")
    for other in ("bf16", "fast"):
        if f"{other}_speedup_part" in result:
            for c, clock in (("", "wall clock"), ("_cpu", "CPU time of this process")):
                print(f"{VARIANTS[other]} over float32 ({clock}): AT epoch {result[f'{other}_speedup_at' + c]:.2f}x, "
                      f"PART epoch with its refresh {result[f'{other}_speedup_part' + c]:.2f}x, mask refresh "
                      f"{result[f'{other}_speedup_refresh' + c]:.2f}x")
    if "cam_batch" in result:
        print(f"GradCAM x{result['cam_batch']}  native {result['cam_native_s']:.3f} s, pytorch-grad-cam "
              f"{result['cam_library_s']:.3f} s, speed-up {result['cam_speedup_over_gradcam_lib']:.2f}x")
    keys = [k for k in ("part_s1_over_at", "part_s10_over_at", "bf16_part_s1_over_at", "bf16_speedup_at",
                        "bf16_speedup_part", "bf16_speedup_refresh", "bf16_speedup_at_cpu", "bf16_speedup_part_cpu",
                        "bf16_speedup_refresh_cpu", "fast_speedup_at", "fast_speedup_part", "fast_speedup_refresh",
                        "fast_speedup_at_cpu", "fast_speedup_part_cpu", "cam_speedup_over_gradcam_lib") if k in result]
    line = {k: round(result[k], 4) for k in keys}
    if fast:
        line = {"fast_path": result["fast_path"], "fast_amp": result["fast_amp"], **line}
    print(json.dumps({"model": model, "images": result["images"], **line, "threads": torch.get_num_threads(),
                      "cpu_capability": cap["cpu_capability"], "cpu_bf16_native": cap["cpu_bf16_native"],
                      "cpu_bf16_flags": cap["cpu_bf16_flags"]}))
    return result
