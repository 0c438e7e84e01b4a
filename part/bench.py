"""`part bench`: PART's training overhead over AT, and the native CAM path against pytorch-grad-cam.

All timings are taken in one process on the same model and data, interleaved, and reported as
ratios, because absolute seconds on a shared machine are noise.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time

import torch

import pytorch_grad_cam as gc
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from part.cam import compute_cam
from part.config import preset
from part.mask_cache import MaskCache
from part.runs import RunDir
from part.train import Trainer


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_training(n: int, repeats: int = 4) -> dict:
    cfg = preset("fmnist-part", subset=n, burn_in_epochs=1, mask_every=1, eval_n=10, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, RunDir(tmp))
    trainer.train_epoch(1)  # warm-up: one AT epoch so the CAMs mean something
    at, part, refresh = [], [], []
    for r in range(repeats):  # alternate the order so drift in machine speed favours neither
        refresh.append(_timed(lambda: setattr(trainer, "mask_cache", MaskCache.build(trainer.train_set, trainer.cams, epoch=2))))
        pair = [(at, 1), (part, 2)] if r % 2 == 0 else [(part, 2), (at, 1)]
        for times, epoch in pair:
            times.append(_timed(lambda: trainer.train_epoch(epoch)))
    at_s, part_s, refresh_s = (statistics.median(v) for v in (at, part, refresh))
    return {"images": len(trainer.train_set), "at_epoch_s": at_s, "part_epoch_s": part_s, "mask_refresh_s": refresh_s,
            "part_s1_over_at": (part_s + refresh_s) / at_s, "part_s10_over_at": (part_s + refresh_s / 10) / at_s}


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


def run_bench(n: int = 4000, cam_batch: int = 256) -> dict:
    torch.manual_seed(0)
    result = {**bench_training(n), **bench_cam(cam_batch)}
    print(f"threads: {torch.get_num_threads()}, training images: {result['images']}, PGD-10")
    print(f"AT epoch       {result['at_epoch_s']:8.2f} s")
    print(f"PART epoch     {result['part_epoch_s']:8.2f} s  (cached masks)")
    print(f"mask refresh   {result['mask_refresh_s']:8.2f} s  (whole training set)")
    print(f"PART/AT        s=1: {result['part_s1_over_at']:.3f}   s=10: {result['part_s10_over_at']:.3f}")
    print(f"GradCAM x{result['cam_batch']}  native {result['cam_native_s']:.3f} s, pytorch-grad-cam "
          f"{result['cam_library_s']:.3f} s, speed-up {result['cam_speedup_over_gradcam_lib']:.2f}x")
    keys = ("part_s1_over_at", "part_s10_over_at", "cam_speedup_over_gradcam_lib")
    print(json.dumps({k: round(result[k], 4) for k in keys}))
    return result
