"""PART: pixel-reweighted adversarial training (Zhang et al., ICML 2024).

The library is in wings, each a sub-package named after what it holds: `part.data`, `part.explain`,
`part.attacks`, `part.training` and `part.evaluation`; `part.runs` is the run-folder contract and `part.cli`
the `part` command. The names most users need are here too, loaded on first use:

    from part import compute_cam, eps_map, pgd, train, evaluate
"""

from __future__ import annotations

import importlib

_PUBLIC = {
    "load_dataset": "part.data", "DATASETS": "part.data",
    "compute_cam": "part.explain", "eps_map": "part.explain", "METHODS": "part.explain", "RECIPES": "part.explain",
    "pgd": "part.attacks", "mma": "part.attacks",
    "TrainConfig": "part.training", "preset": "part.training", "PRESETS": "part.training", "train": "part.training",
    "evaluate": "part.evaluation", "evaluate_checkpoint": "part.evaluation",
    "RunDir": "part.runs", "load_model": "part.runs",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:  # lazily, so `import part.runs` stays light (the backend's listing needs no torch models)
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'part' has no attribute {name!r}")
