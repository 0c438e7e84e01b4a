"""The grid runs x epochs of CAM overlays and predictions for one image: the paper's Figure 2, with numbers.

When the image is one of a run's probe images (asked for as a probe, or a dataset sample or upload
equal to one), the cell is read from the run's stored per-epoch probes, provided the requested
method is the run's own; otherwise it is computed from the epoch's checkpoint. The CAM explains the
true label when it is known (as training does) and the predicted class otherwise.

Every cell carries its CAM energy on the object (part.explain.alignment; None with one response-level note
where the dataset has no known object mask). For a pair of runs A, B (default: the first two) a
difference row holds B's CAM minus A's per epoch, with the IoU of their top-k % pixels and Spearman's
rank correlation. A run without a checkpoint for some epochs gets one note in `missing`, not a
message per cell; its other epochs are shown.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch

from backend.services import figure, inputs, render
from backend.services.cam_params import parse_methods, prediction, probabilities
from backend.api.deps import Services
from backend.api.errors import ApiError, bad_request
from backend.services.registry import check_run_id
from backend.api.schemas import CompareForm
from part.explain.alignment import energy_on_object, mask_rule, spearman, top_k_iou
from part.explain.cam import compute_cam
from part.data.datasets import DATASETS
from part.runs import RunDir, RunFolderError

MAX_RUNS, MAX_CELLS = 8, 200
FIGURE_CACHE = 16  # rendered figures kept (about 0.1-0.5 MB each): the export buttons ask for both formats
_FIGURES: OrderedDict[tuple, bytes] = OrderedDict()
_FIGURES_LOCK = threading.Lock()


def parse_runs(text: str) -> list[str]:
    runs = list(dict.fromkeys(r.strip() for r in text.split(",") if r.strip()))
    if not runs:
        raise bad_request("runs is empty; give run ids, comma-separated (see GET /api/runs)")
    if len(runs) > MAX_RUNS:
        raise bad_request(f"{len(runs)} runs given; the limit is {MAX_RUNS}")
    return [check_run_id(r) for r in runs]


def parse_epochs(text: str | None) -> list[int] | None:
    if text is None or text.strip().lower() in ("", "all"):
        return None
    try:
        epochs = sorted({int(e) for e in text.split(",") if e.strip()})
    except ValueError:
        raise bad_request(f"epochs '{text}' is not accepted; accepted: all, or whole numbers, comma-separated") from None
    if not epochs or epochs[0] < 0:
        raise bad_request(f"epochs must be whole numbers >= 0, got '{text}'")
    return epochs


def parse_method(text: str | None) -> str | None:
    """One CAM method for every run, or None: each run's own."""
    if text is None:
        return None
    names = parse_methods(text)
    if len(names) != 1:
        raise bad_request(f"method takes one CAM method, got {len(names)} ({', '.join(names)}); leave it out for "
                          "each run's own method (an ensemble, for PART++ runs)")
    return names[0]


def parse_pair(text: str | None, runs: list[str]) -> tuple[str, str] | None:
    """(A, B) of the difference row B - A: the form's `pair`, else the first two runs, else None."""
    if text is None or not text.strip():
        return (runs[0], runs[1]) if len(runs) > 1 else None
    pair = [r.strip() for r in text.split(",") if r.strip()]
    if len(pair) != 2 or pair[0] == pair[1]:
        raise bad_request(f"pair '{text}' is not accepted; accepted: two different runs of the grid, 'A,B' "
                          f"(the difference row is B - A), from: {', '.join(runs)}")
    outside = [r for r in pair if r not in runs]
    if outside:
        raise bad_request(f"pair names {', '.join(outside)}, not a run of the grid; accepted: two of {', '.join(runs)}")
    return pair[0], pair[1]


def epoch_ranges(values: list[int]) -> str:
    """'1-3, 5, 7-10': consecutive epochs as ranges."""
    out, start = [], None
    for k, v in enumerate(values):
        start = v if start is None else start
        if k + 1 == len(values) or values[k + 1] != v + 1:
            out.append(str(v) if v == start else f"{start}-{v}")
            start = None
    return ", ".join(out)


@dataclass
class Grid:
    """What a request asked for, resolved: the cells (row-major) and each available cell's CAM."""
    runs: list[str]
    epochs: list[int]
    image: inputs.ModelInput
    classes: list[str]
    dataset: str
    method: str | None
    own: dict[str, list[str]]
    cells: list[dict[str, Any]]
    cams: dict[tuple[str, int], torch.Tensor] = field(default_factory=dict)
    missing: list[dict[str, Any]] = field(default_factory=list)
    pair: tuple[str, str] | None = None
    top_k: float = 20.0
    mask: torch.Tensor | None = None
    difference: dict[str, Any] | None = None
    diffs: dict[int, torch.Tensor] = field(default_factory=dict)
    unfit: dict[str, list[int]] = field(default_factory=dict)  # run -> its input [channels, size], unlike the image's
    sizes: list[str] = field(default_factory=list)
    stamps: tuple = ()  # (run, epoch, checkpoint and probes mtimes) of every cell: a rewritten file is drawn anew

    def method_of(self, run_id: str) -> str:
        return "+".join(self.own[run_id]) if self.method is None else self.method


def build(svc: Services, form: CompareForm, data: bytes | None) -> Grid:
    runs = parse_runs(form.runs)
    wanted = parse_epochs(form.epochs)
    pair = parse_pair(form.pair, runs)
    method = parse_method(form.method)
    first = svc.registry.readable_model(runs[0])  # its meta says what input the grid takes
    image = inputs.resolve(form, data, run=svc.registry.run(runs[0]), meta=first.meta,
                           datasets=svc.datasets, settings=svc.settings)
    folders = {r: svc.registry.run(r) for r in runs}  # each checked once: a check reads the run's files
    # an epoch is there when its checkpoint is, or (for the run's own method) its stored probe CAMs are
    have = {r: sorted(set(folders[r].epochs()) | set(folders[r].probe_epochs() if method is None else []))
            for r in runs}
    configs = {r: folders[r].config() for r in runs}
    epochs = wanted or sorted({e for es in have.values() for e in es})
    if len(runs) * len(epochs) > MAX_CELLS:
        raise bad_request(f"the grid has {len(runs) * len(epochs)} cells; the limit is {MAX_CELLS} "
                          "(fewer runs or epochs)")
    own = {r: list(configs[r].get("cam_methods") or ["gradcam"]) for r in runs}
    grid = Grid(runs, epochs, image, first.classes, first.meta["dataset"], method, own, [], pair=pair,
                top_k=float(form.top_k))
    grid.mask = inputs.object_mask_of(image, grid.dataset, svc.datasets)
    grid.unfit = _unfit(svc, runs, image)
    for run_id in runs:
        if run_id in grid.unfit:  # said once in `sizes`; no cell of its row can take the image
            grid.cells += [{"run": run_id, "epoch": e, "methods": own[run_id], "energy_on_object": None,
                            "available": False, "source": "size", "input_size": grid.unfit[run_id]} for e in epochs]
            continue
        lacking = [e for e in epochs if e not in have[run_id]]
        if lacking:
            grid.missing.append({"run": run_id, "epochs": lacking, "message": _missing_text(run_id, lacking, have[run_id])})
        stored = _stored_probes(folders[run_id], image, own[run_id], method)
        weights = (configs[run_id].get("cam_weights") or None) if method is None else None
        for e in epochs:
            cell, cam = _cell(svc, folders[run_id], e, image, method, own[run_id], weights, stored, first.classes,
                              e in have[run_id])
            if cam is not None:
                grid.cams[(run_id, e)] = cam
                cell["energy_on_object"] = _energy(cam, grid.mask)
            grid.cells.append(cell)
    grid.sizes = _size_notes(grid, runs)
    if pair is not None:
        grid.difference = _difference(grid)
    grid.stamps = tuple((r, e, _mtime(folders[r].checkpoint_path(e)), _mtime(folders[r].probes_path(e)))
                        for r in runs for e in epochs)
    return grid


def _unfit(svc: Services, runs: list[str], image: inputs.ModelInput) -> dict[str, list[int]]:
    """The runs whose models take another input than the image (a 40x40 testbed beside a 28x28 probe)."""
    shape = [image.x.shape[1], image.x.shape[-1]]
    out = {}
    for run_id in runs:
        try:
            meta = svc.registry.readable_model(run_id).meta
        except ApiError:  # no loadable checkpoint: its cells say why
            continue
        if [meta["in_channels"], meta["image_size"]] != shape:
            out[run_id] = [meta["in_channels"], meta["image_size"]]
    return out


def _shape_text(channels: int, size: int) -> str:
    return f"{size}x{size}" + ("" if channels == 1 else f" {'RGB' if channels == 3 else f'{channels}-channel'}")


def _run_names(chosen: list[str], runs: list[str]) -> str:
    """'fmnist-clutter-*' when these are all the grid's runs of one prefix, else the names."""
    if len(chosen) > 2:
        prefix = os.path.commonprefix(chosen)
        prefix = prefix[:prefix.rfind("-") + 1]
        if prefix and [r for r in runs if r.startswith(prefix)] == chosen:
            return f"{prefix}*"
    return ", ".join(chosen[:-1]) + (" and " if len(chosen) > 1 else "") + chosen[-1]


def _size_notes(grid: Grid, runs: list[str]) -> list[str]:
    """Once per input size: which runs take it and what the image is, in plain words."""
    channels, size = grid.image.x.shape[1], grid.image.x.shape[-1]
    kind = {"probe": "probe image", "dataset": "test image"}.get(grid.image.info.get("kind"), "upload")
    notes = []
    for shape in sorted({tuple(v) for v in grid.unfit.values()}, key=lambda s: (s[1], s[0])):
        chosen = [r for r in runs if tuple(grid.unfit.get(r, ())) == shape]
        many = len(chosen) > 1 or _run_names(chosen, runs).endswith("*")
        notes.append(f"{_run_names(chosen, runs)} take{'' if many else 's'} {_shape_text(*shape)} images; this "
                     f"{kind} is {_shape_text(channels, size)} (as {runs[0]} takes it), so {'their rows stay' if many else 'its row stays'} "
                     f"empty: compare runs of one input size, or put a {_shape_text(*shape)} run first")
    return notes


def _mtime(path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def compare(svc: Services, form: CompareForm, data: bytes | None) -> dict[str, Any]:
    t0 = time.perf_counter()
    grid = build(svc, form, data)
    known = grid.mask is not None
    return {"input": grid.image.describe(grid.classes), "runs": grid.runs, "epochs": grid.epochs,
            "target": "label" if grid.image.label is not None else "pred", "cells": grid.cells,
            "object_mask": {"dataset": grid.dataset, "known": known,
                            "fraction": round(float(grid.mask.float().mean()), 4) if known else None,
                            "outline_png": render.outline_url(grid.mask) if known else None,
                            "message": _mask_text(grid)},
            "missing": grid.missing, "sizes": grid.sizes, "difference": grid.difference,
            "seconds": round(time.perf_counter() - t0, 4)}


def export(svc: Services, form: CompareForm, data: bytes | None, fmt: str) -> tuple[bytes, str, str]:
    """(the figure's bytes, its media type, a file name) of the grid as a publication-ready Figure 2."""
    grid = build(svc, form, data)
    if not grid.cams:
        raise ApiError(404, "no cell of the grid has a CAM (no run has a checkpoint for the epochs asked); "
                            "nothing to draw")
    key = (form.model_dump_json(exclude={"file", "format"}), hashlib.sha256(data or b"").hexdigest(), grid.stamps, fmt)
    with _FIGURES_LOCK:
        content = _FIGURES.get(key)
        if content is not None:
            _FIGURES.move_to_end(key)
    if content is None:
        content = figure.draw(grid, fmt)
        with _FIGURES_LOCK:
            _FIGURES[key] = content
            while len(_FIGURES) > FIGURE_CACHE:
                _FIGURES.popitem(last=False)
    media = {"png": "image/png", "pdf": "application/pdf"}[fmt]
    name = "figure2-" + ("-vs-".join(grid.pair) if grid.pair else grid.runs[0]) + f".{fmt}"
    return content, media, name


def _missing_text(run_id: str, lacking: list[int], have: list[int]) -> str:
    held = f"checkpoints for epoch{'s' if len(have) > 1 else ''} {epoch_ranges(have)} only" if have else "no checkpoint yet"
    return (f"run '{run_id}' has {held}; epoch{'s' if len(lacking) > 1 else ''} {epoch_ranges(lacking)} "
            "left empty in its row")


def _mask_text(grid: Grid) -> str:
    if grid.mask is None and DATASETS[grid.dataset].masks_in_data:
        return (f"{grid.dataset} knows the object mask of its own samples only (a probe or a sample by index); "
                "this image is not one, so the CAM energy on the object is not computed for it")
    if grid.mask is None:
        return (f"no object mask is known for dataset {grid.dataset}; the CAM energy on the object is not "
                "computed for it")
    return (f"object = {mask_rule(grid.dataset)} ({grid.dataset}: {int(grid.mask.sum())} of "
            f"{grid.mask.numel()} pixels); energy on the object = sum(cam * object) / sum(cam)")


def _energy(cam: torch.Tensor, mask: torch.Tensor | None) -> float | None:
    if mask is None:
        return None
    value = float(energy_on_object(cam[None], mask[None])[0])
    return None if value != value else round(value, 4)


def _stored_probes(run: RunDir, image: inputs.ModelInput, own: list[str], method: str | None) -> dict[str, Any] | None:
    """{'position', 'x', 'count'} when the image is one of the run's probes and the method is its own."""
    if method is not None and [method] != own:
        return None
    position = inputs.probe_position(run, image.x)
    if position is None:
        return None
    probes = run.load_probe_inputs()
    return {"position": position, "x": probes["x"][position].float(), "count": len(probes["y"])}


def _cell(svc: Services, run: RunDir, epoch: int, image: inputs.ModelInput, method: str | None, own: list[str],
          weights: list[float] | None, stored: dict[str, Any] | None, classes: list[str],
          present: bool) -> tuple[dict[str, Any], torch.Tensor | None]:
    run_id = run.path.name
    methods = own if method is None else [method]
    base = {"run": run_id, "epoch": epoch, "methods": methods, "energy_on_object": None}
    if not present:  # said once per run in `missing`
        return {**base, "available": False, "source": "missing"}, None
    if stored is not None and run.probes_path(epoch).exists():
        try:
            probes = run.load_probes(epoch, count=stored["count"])
        except RunFolderError as err:  # computed from the checkpoint instead, below
            probes = None
            base["message"] = f"stored probes unreadable ({err}); computed from the checkpoint"
        if probes is not None:
            k = stored["position"]
            cam = probes["cam"][k].float()
            return {**base, "available": True, "source": "stored", "overlay_png": render.overlay_url(stored["x"], cam),
                    "heatmap": render.values(cam), "prediction": prediction(probes["probs"][k].float(), classes)}, cam
    try:
        loaded = svc.registry.model(run_id, epoch)
    except ApiError as err:
        return {**base, "available": False, "source": "missing", "message": err.message}, None
    if (loaded.meta["in_channels"], loaded.meta["image_size"]) != (image.x.shape[1], image.x.shape[-1]):
        return {**base, "available": False, "source": "missing",
                "message": f"run '{run_id}' takes {loaded.meta['in_channels']}x{loaded.meta['image_size']}px images; "
                           f"the image is {image.x.shape[1]}x{image.x.shape[-1]}px"}, None
    x = image.x.to(svc.registry.device)
    with loaded.lock:
        probs = probabilities(loaded.model, x)
        target = image.label if image.label is not None else int(probs.argmax())
        arg = methods if len(methods) > 1 else methods[0]
        cam = compute_cam(loaded.model, x, torch.tensor([target], device=x.device), arg, weights=weights)[0]
    cam = cam.detach().float().cpu()
    return {**base, "available": True, "source": "computed", "overlay_png": render.overlay_url(x[0], cam),
            "heatmap": render.values(cam), "prediction": prediction(probs, loaded.classes)}, cam


def _difference(grid: Grid) -> dict[str, Any]:
    """B's CAM minus A's per epoch, on one diverging scale (the row's largest |difference|), with numbers."""
    a, b = grid.pair
    for e in grid.epochs:
        if (a, e) in grid.cams and (b, e) in grid.cams:
            grid.diffs[e] = grid.cams[(b, e)] - grid.cams[(a, e)]
    scale = max([float(d.abs().max()) for d in grid.diffs.values()] + [1e-3])
    cells = []
    for e in grid.epochs:
        d = grid.diffs.get(e)
        if d is None:
            lacking = [r for r in (a, b) if (r, e) not in grid.cams]
            cells.append({"epoch": e, "available": False, "message": f"no CAM of {' and '.join(lacking)} at epoch {e}"})
            continue
        ca, cb = grid.cams[(a, e)][None], grid.cams[(b, e)][None]
        rho = float(spearman(ca, cb)[0])
        cells.append({"epoch": e, "available": True, "heatmap": render.values(d),
                      "difference_png": figure.difference_url(grid.image.x[0], d, scale),
                      "iou": round(float(top_k_iou(ca, cb, grid.top_k)[0]), 4),
                      "spearman": None if rho != rho else round(rho, 4),
                      "mean_abs": round(float(d.abs().mean()), 4), "max_abs": round(float(d.abs().max()), 4),
                      "energy_change": _energy_change(grid, a, b, e)})
    methods = {grid.method_of(a), grid.method_of(b)}
    note = None if len(methods) == 1 else (
        f"the runs' own CAM methods differ ({grid.method_of(a)} vs {grid.method_of(b)}); choose one method to "
        "compare like with like")
    return {"run_a": a, "run_b": b, "method": grid.method_of(b) if len(methods) == 1 else None,
            "top_k": grid.top_k, "scale": round(scale, 4), "note": note, "cells": cells}


def _energy_change(grid: Grid, a: str, b: str, epoch: int) -> float | None:
    if grid.mask is None:
        return None
    ea, eb = _energy(grid.cams[(a, epoch)], grid.mask), _energy(grid.cams[(b, epoch)], grid.mask)
    return None if ea is None or eb is None else round(eb - ea, 4)
