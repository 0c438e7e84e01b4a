"""Sweeps: one request for a grid over config fields, each cell an ordinary run folder named after its cell.

    part sweep --preset fmnist-part --grid eps_low=0.0875,0.05 --grid recipe=paper,shuffled --grid seed=0,1

A cell's run id is the sweep's name and its values, `NAME.eps_low-0.0875.recipe-paper.seed-0`; the sweep's
own record (ROOT/.sweeps/NAME.json, through part.runs) lists its grid and cells. Grouping is never by name:
part.experiments keys runs by their resolved configs, so cells that differ only in what a comparison is about
(PART's fields, the defense, the seed) form one experiment, and a grid over a field of the experiment key
(eps, epochs, ...) spans several; the record names those fields.
"""

from __future__ import annotations

import itertools
import re
from typing import Any, Iterable

from part.experiments import EXPERIMENT_FIELDS
from part.training.config import TrainConfig, preset

MAX_CELLS = 256
UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def parse_grid(texts: Iterable[str]) -> dict[str, list[Any]]:
    """`field=v1,v2,...` texts into {field: [values as text]}; the config parses them as it parses --set."""
    grid: dict[str, list[Any]] = {}
    for text in texts:
        key, sep, values = text.partition("=")
        if not sep or not values.strip():
            raise ValueError(f"--grid '{text}' is not FIELD=V1,V2,...; e.g. recipe=paper,shuffled")
        grid[key.strip().replace("-", "_")] = [v.strip() for v in values.split(",")]
    return grid


def cells(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, the last field varying fastest."""
    if not grid:
        raise ValueError("a sweep needs at least one field with values (e.g. seed=0,1)")
    unknown = sorted(set(grid) - set(TrainConfig.__dataclass_fields__) | ({"nproc"} & set(grid)))
    if unknown:
        raise ValueError(f"cannot sweep {', '.join(unknown)}; accepted: the TrainConfig fields but nproc")
    empty = [k for k, v in grid.items() if not v]
    if empty:
        raise ValueError(f"the grid gives {', '.join(empty)} no values")
    out = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]
    if len(out) > MAX_CELLS:
        raise ValueError(f"the grid has {len(out)} cells; the limit is {MAX_CELLS}")
    return out


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "_".join(map(_text, value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def cell_run_id(name: str, values: dict[str, Any]) -> str:
    return ".".join([name, *(UNSAFE.sub("_", f"{k}-{_text(v)}") for k, v in values.items())])[:100]


def plan(name: str, preset_name: str, overrides: dict[str, Any], grid: dict[str, list[Any]]) -> dict[str, Any]:
    """The sweep's record: every cell's run id, values and resolved config, each checked by the config itself."""
    planned = []
    for values in cells(grid):
        config = preset(preset_name, **{**overrides, **values}).to_dict()  # ValueError names what is accepted
        resolved = {k: config[k] for k in values}
        planned.append({"run_id": cell_run_id(name, resolved), "values": resolved, "config": config})
    ids = [c["run_id"] for c in planned]
    if len(set(ids)) != len(ids):
        raise ValueError("two cells of the grid get the same run id; give the values distinct names")
    return {"name": name, "preset": preset_name, "overrides": overrides, "grid": grid, "cells": planned,
            "experiment_fields": [k for k in grid if k in EXPERIMENT_FIELDS]}
