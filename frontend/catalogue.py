"""What the forms offer, as the backend lists it (GET /api/options, generated from `part`): presets with
their resolved configs, defenses and their labels, CAM methods, eps-map recipes, models and attacks.
Nothing here is a copy of a core constant; budgets are formatted for people in /255 steps."""

from __future__ import annotations

from typing import Any

import streamlit as st

from frontend import ui


@st.cache_data(ttl=300, show_spinner=False)
def _options(url: str) -> dict[str, Any]:
    return ui.api().options()


def options() -> dict[str, Any]:
    """The backend's catalogue (cached for five minutes per API address)."""
    return _options(ui.api().base_url)


def presets() -> dict[str, dict[str, Any]]:
    """name -> {'label', 'config'} (the resolved TrainConfig)."""
    return options()["presets"]


def cam_methods(*models: str | None) -> list[str]:
    """The CAM methods that work on every one of `models` (the attention-based ones need attention blocks);
    none given: all of them."""
    has = {m["name"]: m["attention"] for m in options()["models"]}
    attention = all(has.get(m, True) for m in models if m)
    return [m["name"] for m in options()["cam_methods"] if attention or not m["needs_attention"]]


def recipes() -> dict[str, dict[str, Any]]:
    """name -> {'options': {option: default}, 'help'}."""
    return options()["recipes"]


def executors() -> dict[str, Any]:
    """Where jobs may run: {"default": ..., "local": {...}, "slurm": {"available", "partitions", "defaults"}}."""
    return options().get("executors") or {"default": "local", "local": {"available": True}}


def models() -> list[str]:
    return [m["name"] for m in options()["models"]]


def defenses() -> dict[str, str]:
    """defense -> its label (AT, TRADES, MART)."""
    return {name: d["label"] for name, d in options()["defenses"].items()}


def eval_attacks() -> list[str]:
    return [a["name"] for a in options()["attacks"]["form"]]


def cam_colours() -> list[str]:
    """The CAM colormap's stops (#rrggbb, 0 to 1): the one matplotlib jet the backend's overlays are drawn with."""
    return options()["cam_colours"]


def cam_scale() -> list[list]:
    """The CAM colormap as a plotly colorscale."""
    stops = cam_colours()
    return [[i / (len(stops) - 1), c] for i, c in enumerate(stops)]


def cam_gradient() -> str:
    """The CAM colormap as a CSS gradient, 0 on the left."""
    return f"linear-gradient(90deg,{','.join(cam_colours())})"


def as_255(value: float) -> str:
    """A budget in /255 units: 0.0314 -> '8/255', 0.1 -> '25.5/255'."""
    steps = value * 255
    return f"{round(steps)}/255" if abs(steps - round(steps)) < 1e-3 else f"{steps:.1f}/255"


def eps_text(value: float) -> str:
    """A budget as a form shows it: '8/255' when it is a whole /255 step, else the decimal ('0.1')."""
    steps = value * 255
    return f"{round(steps)}/255" if abs(steps - round(steps)) < 1e-3 and round(steps) > 0 else f"{value:g}"
