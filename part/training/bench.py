"""`part bench`: PART's training overhead over AT, bf16 autocast against float32 (AT and PART epochs, the
mask refresh included), and the native CAM path against pytorch-grad-cam.

All timings are taken in one process on the same model and data, interleaved, and reported as
ratios, because absolute seconds on a shared machine are noise. The training timings are also taken
in this process's CPU seconds (`*_cpu`), which other work on the machine does not inflate: with one
thread (OMP_NUM_THREADS=1) they are the compute the epoch needs, and on a busy machine the ratio to trust.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time

import torch

import pytorch_grad_cam as gc
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from part.explain.cam import compute_cam
from part.training.config import preset
from part.training.cam_cache import CamCache
from part.precision import capability
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


def bench_training(n: int, repeats: int = 4, amps: tuple[str, ...] = ("off",)) -> dict:
    """Median seconds of an AT epoch, a PART epoch (cached masks) and a mask refresh, for each precision.

    One trainer per precision, from the same seed; every repeat runs each precision's refresh, AT and PART
    epoch, in an order that alternates, so drift in machine speed favours none of them.
    """
    trainers = {}
    for amp in amps:
        cfg = preset("fmnist-part", subset=n, burn_in_epochs=1, mask_every=1, eval_n=10, device="cpu", amp=amp)
        with tempfile.TemporaryDirectory() as tmp:
            trainers[amp] = Trainer(cfg, RunDir(tmp))
        trainers[amp].train_epoch(1)  # warm-up: one AT epoch so the CAMs mean something
    times = {(amp, what): [] for amp in amps for what in ("at", "part", "refresh")}
    for r in range(repeats):
        for amp in amps if r % 2 == 0 else amps[::-1]:
            trainer = trainers[amp]
            times[amp, "refresh"].append(_timed_both(lambda: setattr(
                trainer, "mask_cache", CamCache.build(trainer.train_set, trainer.cams, epoch=2))))
            for what, epoch in [("at", 1), ("part", 2)] if r % 2 == 0 else [("part", 2), ("at", 1)]:
                times[amp, what].append(_timed_both(lambda: trainer.train_epoch(epoch)))
    out = {"images": len(next(iter(trainers.values())).train_set)}
    for clock, suffix in ((0, "s"), (1, "cpu_s")):
        med = {k: statistics.median(t[clock] for t in v) for k, v in times.items()}
        for amp in amps:
            at_s, part_s, refresh_s = med[amp, "at"], med[amp, "part"], med[amp, "refresh"]
            p = "" if amp == "off" else f"{amp}_"
            out.update({f"{p}at_epoch_{suffix}": at_s, f"{p}part_epoch_{suffix}": part_s,
                        f"{p}mask_refresh_{suffix}": refresh_s})
            if clock == 0:
                out.update({f"{p}part_s1_over_at": (part_s + refresh_s) / at_s,
                            f"{p}part_s10_over_at": (part_s + refresh_s / 10) / at_s})
        if "off" in amps and "bf16" in amps:  # a PART epoch with s=1 is the epoch plus its refresh
            c = "" if clock == 0 else "_cpu"
            out[f"bf16_speedup_at{c}"] = out[f"at_epoch_{suffix}"] / out[f"bf16_at_epoch_{suffix}"]
            out[f"bf16_speedup_part{c}"] = ((out[f"part_epoch_{suffix}"] + out[f"mask_refresh_{suffix}"])
                                           / (out[f"bf16_part_epoch_{suffix}"] + out[f"bf16_mask_refresh_{suffix}"]))
            out[f"bf16_speedup_refresh{c}"] = out[f"mask_refresh_{suffix}"] / out[f"bf16_mask_refresh_{suffix}"]
    return out


def bench_cam(batch: int, repeats: int = 5) -> dict:
    cfg = preset("fmnist-part", device="cpu", eval_n=batch)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, RunDir(tmp))
    model = trainer.model.eval()
    x, y = trainer.eval_set.get_batch(torch.arange(min(batch, len(trainer.eval_set))))

    def library():
        with gc.GradCAM(model=model, target_layers=[model.cam_layer()]) as cam:
            cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in y])

    native, lib = [], []
    for _ in range(repeats):
        native.append(_timed(lambda: compute_cam(model, x, y, "gradcam")))
        lib.append(_timed(library))
    native_s, lib_s = statistics.median(native), statistics.median(lib)
    return {"cam_batch": len(y), "cam_native_s": native_s, "cam_library_s": lib_s,
            "cam_speedup_over_gradcam_lib": lib_s / native_s}


def run_bench(n: int = 4000, cam_batch: int = 256, amps: tuple[str, ...] = ("off", "bf16"),
              repeats: int = 4) -> dict:
    torch.manual_seed(0)
    cap = capability()
    result = {**bench_training(n, repeats, amps), **bench_cam(cam_batch), **cap}
    print(f"threads: {torch.get_num_threads()}, training images: {result['images']}, PGD-10, "
          f"CPU: {cap['cpu_capability']}, native bf16: {', '.join(cap['cpu_bf16_flags']) or 'no'}")
    for amp in amps:
        p, name = ("" if amp == "off" else f"{amp}_"), ("float32" if amp == "off" else amp)
        print(f"[{name}] AT epoch {result[p + 'at_epoch_s']:8.2f} s   PART epoch {result[p + 'part_epoch_s']:8.2f} s "
              f"(cached masks)   mask refresh {result[p + 'mask_refresh_s']:6.2f} s (whole training set)   "
              f"PART/AT s=1: {result[p + 'part_s1_over_at']:.3f}  s=10: {result[p + 'part_s10_over_at']:.3f}")
        print(f"[{name}] CPU seconds: AT epoch {result[p + 'at_epoch_cpu_s']:.2f}, PART epoch "
              f"{result[p + 'part_epoch_cpu_s']:.2f}, mask refresh {result[p + 'mask_refresh_cpu_s']:.2f}")
    if "bf16_speedup_part" in result:
        for c, clock in (("", "wall clock"), ("_cpu", "CPU time of this process")):
            print(f"bf16 over float32 ({clock}): AT epoch {result['bf16_speedup_at' + c]:.2f}x, PART epoch with its "
                  f"refresh {result['bf16_speedup_part' + c]:.2f}x, mask refresh {result['bf16_speedup_refresh' + c]:.2f}x")
    print(f"GradCAM x{result['cam_batch']}  native {result['cam_native_s']:.3f} s, pytorch-grad-cam "
          f"{result['cam_library_s']:.3f} s, speed-up {result['cam_speedup_over_gradcam_lib']:.2f}x")
    keys = [k for k in ("part_s1_over_at", "part_s10_over_at", "bf16_part_s1_over_at", "bf16_speedup_at",
                        "bf16_speedup_part", "bf16_speedup_refresh", "bf16_speedup_at_cpu", "bf16_speedup_part_cpu",
                        "bf16_speedup_refresh_cpu", "cam_speedup_over_gradcam_lib") if k in result]
    line = {k: round(result[k], 4) for k in keys}
    print(json.dumps({**line, "threads": torch.get_num_threads(), "cpu_capability": cap["cpu_capability"],
                      "cpu_bf16_native": cap["cpu_bf16_native"], "cpu_bf16_flags": cap["cpu_bf16_flags"]}))
    return result
