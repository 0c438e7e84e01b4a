"""Where the CAMs that place PART's budget put their mass, and why so much of it is off the object.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/cam_on_object.py [--runs RUN ...] [--n 500] [--quick]

For each run (default: the shipped testbed pair checkpoints/fmnist-clutter-at-s0 and fmnist-clutter-part-s0)
and each CAM setting (method x target layer x target class) on the first N test images of the evaluation
subset (the images `part eval --n N` uses), with the project's own code (part.evaluation.faithfulness.run_cams
and part.explain.alignment.energy_on_object, what `part eval --attacks alignment --cam-methods M --cam-layer L
--cam-target T` reports), it prints one table row:

- energy:     the share of the map's mass on the object (mean over images whose map is not all zero; `zero`
              counts those), beside `object`, the object's share of the pixels (what an even map scores);
- distract:   the mass on the distractors (pixels brighter than 0.1 off the object: the fragments of other
              garments) against their share of the pixels;
- border:     the mass in the outer 4-pixel ring (one cell of a 10x10 CAM grid) against the ring's share of
              the pixels, and `hot@border`, how often the map's hottest pixel lies in that ring;
- full-eps:   PART's paper recipe (full eps where cam > its mean): the share of the full-eps pixels on the
              object (precision) and the share of the object they cover (recall).

Below it, three checks of the causes the rows suggest:
- resolution: the best a map of each layer's grid can do, the object mask itself pooled to the grid and
  upsampled and normalised like a CAM (part.explain.cam's _finish);
- zero padding: the models normalise pixels with mean 0.5 and std 0.5, so a conv's zero padding is a grey
  (0.5) frame around a black canvas, an edge the first layer sees on every border. The CAM of the image
  embedded in a black margin of 8 pixels (the network is fully convolutional), cropped back, moves that
  frame away from the image;
- target: label against pred, and the images the model gets right against those it gets wrong.

The script writes nothing under checkpoints/: it reads the checkpoints and, for the cross-check with
`part eval`, evaluates a copy of the run folder in a temporary directory.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from part.data.datasets import load_dataset, object_masks  # noqa: E402
from part.evaluation.evaluate import as_tensors  # noqa: E402
from part.evaluation.faithfulness import cam_settings, run_cams  # noqa: E402
from part.evaluation.reports import change_text, paired_change  # noqa: E402
from part.explain.alignment import energy_on_object, object_mask  # noqa: E402
from part.explain.cam import LIBRARY_METHODS, NATIVE_METHODS, _finish  # noqa: E402
from part.explain.eps_maps import eps_map  # noqa: E402
from part.runs import RunDir, load_model  # noqa: E402

RUNS = ("checkpoints/fmnist-clutter-at-s0", "checkpoints/fmnist-clutter-part-s0")
RING = 4  # pixels: one cell of the 10x10 grid of small-cnn-4's layers on a 40x40 canvas
MARGIN = 8


def layers_of(model) -> list[str]:
    """The conv stages of a small CNN (features.0, ...), the registered one last if it is one of them."""
    names = [n[len("net."):] for n, _ in model.named_modules() if n.count(".") == 2 and n.startswith("net.features.")]
    return names or [None]


def masked_mean(values: torch.Tensor) -> float:
    values = values[~torch.isnan(values)]
    return float(values.mean()) if len(values) else float("nan")


def share(maps: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """[N]: the share of each map's mass in `region` (NaN for an all-zero map)."""
    return energy_on_object(maps, region)


def measure(maps: torch.Tensor, x: torch.Tensor, masks: torch.Tensor, ring: torch.Tensor) -> dict:
    distract = (x[:, 0] > 0.1) & ~masks
    zero = int((maps.flatten(1).sum(1) <= 0).sum())
    hottest = maps.flatten(1).argmax(1)
    high = eps_map(maps, eps=1.0, eps_low=0.0, recipe="paper")[:, 0] > 0.5
    on = (high & masks).flatten(1).sum(1).float()
    return {"energy": masked_mean(share(maps, masks)), "zero": zero,
            "distract": masked_mean(share(maps, distract)), "distract_px": float(distract.float().mean()),
            "border": masked_mean(share(maps, ring.expand_as(masks))),
            "hot_border": float(ring.flatten()[hottest].float().mean()),
            "precision": float((on / high.flatten(1).sum(1).clamp(min=1)).mean()),
            "recall": float((on / masks.flatten(1).sum(1).clamp(min=1)).mean())}


def nan_free(values: torch.Tensor) -> list[float | None]:
    return [None if v != v else float(v) for v in values.tolist()]


def padded_cams(model, x, y, cam: dict) -> torch.Tensor:
    """CAMs of the images inside a black margin, cropped back to the images (zero padding moved away)."""
    big = F.pad(x, (MARGIN,) * 4, value=0.0)
    maps = run_cams(model, big, y, cam).cpu()[:, MARGIN:-MARGIN, MARGIN:-MARGIN]
    flat = maps.flatten(1)
    flat = (flat - flat.min(1, keepdim=True).values) / (flat.max(1, keepdim=True).values - flat.min(1, keepdim=True).values + 1e-7)
    return flat.view_as(maps)


def resolution_bound(masks: torch.Tensor, grid: int) -> float:
    """The energy of the object mask pooled to a grid x grid layer and finished like a CAM: the best at that grid."""
    pooled = F.adaptive_avg_pool2d(masks[:, None].float(), grid)[:, 0]
    return masked_mean(energy_on_object(_finish(pooled, masks.shape[-2:]), masks))


def batched(fn, *tensors, batch: int = 100) -> torch.Tensor:
    return torch.cat([fn(*(t[s:s + batch] for t in tensors)) for s in range(0, len(tensors[0]), batch)])


def row(label: str, m: dict, seconds: float) -> str:
    return (f"| {label} | {m['energy']:.3f} | {m['zero']} | {m['distract']:.3f} | {m['border']:.3f} | "
            f"{100 * m['hot_border']:.0f} % | {100 * m['precision']:.1f} % | {100 * m['recall']:.1f} % | {seconds:.0f} |")


def cross_check(run: Path, n: int, got: float) -> str:
    """`part eval --attacks alignment` on a copy of the run in a temporary folder: the same number?"""
    from part.evaluation.job import evaluate_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / run.name
        shutil.copytree(run, copy, ignore=shutil.ignore_patterns("eval", "probes"))
        result, _ = evaluate_checkpoint(run=copy, attacks="alignment", n=n, device="cpu")
    theirs = result["attacks"]["alignment"]["energy"]
    return f"`part eval --attacks alignment --n {n}` on a copy: energy {theirs:.4f} (this script: {got:.4f})"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", nargs="+", default=[str(ROOT / r) for r in RUNS])
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--quick", action="store_true", help="the native methods only (skips Score-CAM, Ablation-CAM, ...)")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    for run_path in map(Path, args.runs):
        run = RunDir(run_path)
        model, ckpt = load_model(run.existing_checkpoint(None), "cpu")
        meta, config = ckpt["meta"], ckpt.get("config", {})
        ds = load_dataset(meta["dataset"], "test", subset=args.n, image_size=int(config.get("image_size", 0) or 0))
        x, y = as_tensors(ds)
        given = object_masks(ds, torch.arange(len(x)))
        masks = (given if given is not None else object_mask(x, meta["dataset"])).bool()
        side = x.shape[-1]
        ring = torch.ones(side, side, dtype=torch.bool)
        ring[RING:-RING, RING:-RING] = False
        with torch.no_grad():
            correct = model(x).argmax(1) == y
        own = cam_settings(config)
        registered = model.cam_layer_name[len("net."):]
        print(f"\n## {run_path.name} (epoch {ckpt.get('epoch')}, {meta['dataset']}, n = {len(x)}; natural accuracy "
              f"{100 * float(correct.float().mean()):.1f} %)\n")
        print(f"Object: {100 * float(masks.float().mean()):.1f} % of the pixels; distractors "
              f"{100 * float(((x[:, 0] > 0.1) & ~masks).float().mean()):.1f} %; the {RING}-pixel border ring "
              f"{100 * float(ring.float().mean()):.1f} % (holding {100 * float((masks & ring).sum() / masks.sum()):.1f} % "
              f"of the object's pixels). Run's own CAM: {'+'.join(own['cam_methods'])} ({own['cam_target']}) at "
              f"{registered}.\n")
        print("| CAM (target) at layer | energy on object | zero maps | on distractors | in border ring | "
              "hottest pixel in ring | full-eps on object | object at full eps | s |")
        print("|---|---|---|---|---|---|---|---|---|")
        settings = [(m, registered, "label") for m in LIBRARY_METHODS if not args.quick or m in NATIVE_METHODS]
        settings += [(m, layer, "label") for m in NATIVE_METHODS for layer in layers_of(model) if layer != registered]
        settings += [("gradcam", registered, "pred")]
        results = {}
        for method, layer, target in settings:
            cam = {**own, "cam_methods": [method], "cam_weights": [], "cam_target": target, "cam_layer": layer}
            t0 = time.time()
            maps = batched(lambda a, b: run_cams(model, a, b, cam).cpu(), x, y)
            results[(method, layer, target)] = m = measure(maps, x, masks, ring)
            m["maps"], m["per_image"] = maps, energy_on_object(maps, masks)
            print(row(f"{method} ({target}) at {layer}", m, time.time() - t0), flush=True)
        default = results[("gradcam", registered, "label")]
        print(f"\nEven map: energy {float(masks.float().mean()):.3f}; distractors "
              f"{float(((x[:, 0] > 0.1) & ~masks).float().mean()):.3f}; border ring {float(ring.float().mean()):.3f}.")
        print(cross_check(run_path, args.n, default["energy"]))
        for key, what in (("energy", "energy on the object"), ("precision", "share of the full-eps pixels on the object")):
            best = max(results, key=lambda k: results[k][key])
            change = paired_change(*(nan_free(results[k]["per_image"]) for k in (best, ("gradcam", registered, "label"))))
            print(f"Highest {what}: {best[0]} ({best[2]}) at {best[1]}, {results[best][key]:.3f} against the run's own "
                  f"{default[key]:.3f}; its energy on the object minus the own's, image by image: {change_text(change)}.")

        print("\nResolution: the object mask itself pooled to the layer's grid and upsampled like a CAM (the best "
              "a map of that grid can score):\n")
        grids = {}
        for layer in layers_of(model):
            store = {}
            h = model.get_submodule("net." + layer).register_forward_hook(lambda mod, i, o: store.__setitem__("s", o.shape[-1]))
            with torch.no_grad():
                model(x[:1])
            h.remove()
            grids[layer] = store["s"]
        for layer, grid in grids.items():
            print(f"- {layer}: {grid}x{grid} grid, bound {resolution_bound(masks, grid):.3f}; gradcam there "
                  f"{results[('gradcam', layer, 'label')]['energy']:.3f}")

        print(f"\nZero padding: the same CAMs of each image inside a black {MARGIN}-pixel margin, cropped back:\n")
        print("| CAM (target) at layer | energy on object | zero maps | on distractors | in border ring | "
              "hottest pixel in ring | full-eps on object | object at full eps | s |")
        print("|---|---|---|---|---|---|---|---|---|")
        for method, layer in [("gradcam", registered), ("layercam", registered), ("gradcam", layers_of(model)[0])]:
            cam = {**own, "cam_methods": [method], "cam_weights": [], "cam_target": "label", "cam_layer": layer}
            t0 = time.time()
            maps = batched(lambda a, b: padded_cams(model, a, b, cam), x, y)
            print(row(f"{method} (label) at {layer}, margin {MARGIN}", measure(maps, x, masks, ring), time.time() - t0))

        e = energy_on_object(default["maps"], masks)
        print(f"\nTarget: gradcam at {registered}, label {default['energy']:.3f} against pred "
              f"{results[('gradcam', registered, 'pred')]['energy']:.3f}; on the {int(correct.sum())} images the model gets "
              f"right {masked_mean(e[correct]):.3f}, on the {int((~correct).sum())} it gets wrong {masked_mean(e[~correct]):.3f}.")
        near = masks[:, :RING].any((1, 2)) | masks[:, -RING:].any((1, 2)) | masks[:, :, :RING].any((1, 2)) | masks[:, :, -RING:].any((1, 2))
        print(f"Objects touching the border ring: {int(near.sum())} of {len(x)}, energy {masked_mean(e[near]):.3f}; "
              f"the others {masked_mean(e[~near]):.3f}.")


if __name__ == "__main__":
    main()
