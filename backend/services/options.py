"""The catalogue behind GET /api/options, generated from `part` and `models`: presets with their
resolved configs, defenses and their labels, CAM methods, eps-map recipes with their options,
models, datasets, evaluation attacks and the server's limits. The dashboard reads it, so its forms
and `part` agree by construction."""

from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path
from typing import Any

import models
from backend.services import executors
from backend.settings import Settings
from part.explain.attention import ATTENTION_METHODS
from part.explain.cam import METHODS, NATIVE_METHODS
from part.training.config import CHOICES, EXCLUSIVE_LOW, PRESETS, RANGES, TrainConfig, preset
from part.data.datasets import DATASETS
from part.runs import RunDir, method_label, read_manifest
from part.training.defenses import DEFENSES
from part.evaluation.evaluate import ACCEPTED, DEFAULT_ATTACKS
from part.explain.eps_maps import RECIPES, recipe_options
from part.explain.images import colour_stops
from part.evaluation.reports import heading

# The attacks an evaluation form offers; part.evaluation.evaluate accepts more (pgd<K>, mma<K>, sweeps: ACCEPTED says how).
FORM_ATTACKS = ("clean", "fgsm", "pgd20", "mma", "aa", "corruptions", "checks", "pgd20-map", "mma-map",
                "alignment", "faithfulness")


def _first_line(obj: Any) -> str:
    return (inspect.getdoc(obj) or "").split("\n\n")[0].replace("\n", " ")


def _config(cfg: TrainConfig) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def _model(spec: models.ModelSpec) -> dict[str, Any]:
    return {"name": spec.name, "input_size": spec.input_size, "description": spec.description,
            "attention": spec.attention is not None}


def featured_pair(root: Path) -> list[str] | None:
    """The pair of runs Compare opens on: `featured` in ROOT/shipped.json, when both runs are there."""
    featured = read_manifest(root).get("featured")
    pair = featured.get("pair") if isinstance(featured, dict) else None
    if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(r, str) for r in pair)):
        return None
    return pair if all(RunDir(root / r).exists() for r in pair) else None


def catalogue(settings: Settings) -> dict[str, Any]:
    presets = {}
    for name in PRESETS:
        cfg = preset(name)
        presets[name] = {"label": method_label(cfg.defense, cfg.part), "config": _config(cfg)}
    return {
        "presets": presets,
        "defaults": _config(TrainConfig()),
        "choices": {k: list(v) for k, v in CHOICES.items()},
        "ranges": {k: list(v) for k, v in RANGES.items()},
        "exclusive_low": sorted(EXCLUSIVE_LOW),  # fields whose lower bound itself is refused (tau > 0)
        "defenses": {name: {"label": method_label(name, False), "part_label": method_label(name, True)}
                     for name in DEFENSES},
        "cam_methods": [{"name": m, "native": m in NATIVE_METHODS, "needs_attention": m in ATTENTION_METHODS}
                        for m in METHODS if m != "ensemble"],
        "recipes": {name: {"options": recipe_options(name), "help": _first_line(fn)} for name, fn in RECIPES.items()},
        "models": [_model(models.get_spec(n)) for n in models.model_names()],
        "datasets": [{"name": d.name, "classes": d.num_classes, "channels": d.in_channels, "image_size": d.image_size,
                      "default_eps": d.default_eps, "description": d.description,
                      "object_mask": d.masks_in_data or d.object_threshold is not None} for d in DATASETS.values()],
        "attacks": {"form": [{"name": a, "heading": heading(a)} for a in FORM_ATTACKS],
                    "default": list(DEFAULT_ATTACKS), "accepted": ACCEPTED},
        "cam_colours": colour_stops(),
        "featured": featured_pair(settings.checkpoints),
        "executors": executors.catalogue(settings),
        "limits": {"max_upload_bytes": settings.max_upload_bytes, "max_upload_pixels": settings.max_upload_pixels,
                   "job_concurrency": settings.job_concurrency, "model_concurrency": settings.model_concurrency},
    }
