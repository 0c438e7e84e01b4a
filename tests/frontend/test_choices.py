"""The dashboard's copies of the presets, CAM methods, recipes and models match the core library."""

from __future__ import annotations

import dataclasses

import models
from frontend import choices
from part.cam import METHODS
from part.config import PRESETS, TrainConfig
from part.masks import RECIPES, recipe_options


def test_presets_match_part_config():
    assert list(choices.PRESETS) == list(PRESETS)
    defaults = dataclasses.asdict(TrainConfig())
    for name, values in PRESETS.items():
        resolved = {**defaults, **values}
        shown = {k: list(v) if isinstance(v, tuple) else v for k, v in resolved.items() if k in choices.FORM_DEFAULTS}
        assert choices.PRESETS[name] == shown, name


def test_methods_recipes_and_models_match():
    assert sorted(choices.CAM_METHODS) == sorted(m for m in METHODS if m != "ensemble")
    assert choices.RECIPES == {r: recipe_options(r) for r in RECIPES}
    assert set(choices.RECIPE_HELP) == set(RECIPES)
    assert choices.MODELS == models.model_names()


def test_budgets_are_shown_in_255_units():
    assert choices.as_255(8 / 255) == "8/255" and choices.as_255(0.1) == "25.5/255"
    assert choices.eps_text(8 / 255) == "8/255" and choices.eps_text(0.1) == "0.1" and choices.eps_text(0) == "0"
    assert choices.method_label("trades", True) == "PART-T" and choices.method_label("mart", False) == "MART"
