"""The experiments among the runs on disk (part.experiments over every readable run's config.json), for the
pages that compare runs: which runs are comparable, each PART run's baseline, which experiment is featured.

A run whose config cannot be read is in no experiment; it is listed with its reason so a page can say why
it is missing, and never breaks the listing of the others."""

from __future__ import annotations

from typing import Any

from backend.services.registry import Registry
from part.experiments import Experiment, experiment_of, find_experiments
from part.runs import RunDir, RunFolderError, read_manifest


def configs(registry: Registry) -> tuple[dict[str, dict], dict[str, str]]:
    """run id -> its config, and run id -> why it could not be read."""
    found, problems = {}, {}
    for rid in registry.run_ids():
        try:
            found[rid] = RunDir(registry.root / rid).config()
        except (RunFolderError, OSError, ValueError) as err:
            problems[rid] = str(err)
    return found, problems


def zoo(registry: Registry) -> tuple[list[Experiment], dict[str, dict], dict[str, str]]:
    """Every experiment on disk, the configs they were found from and the runs that could not be read."""
    found, problems = configs(registry)
    return find_experiments(found, read_manifest(registry.root)), found, problems


def listing(registry: Registry) -> dict[str, Any]:
    """GET /api/experiments: each experiment with its runs, arms, baselines and which runs are evaluated."""
    exps, _, problems = zoo(registry)
    out = []
    for e in exps:
        item = e.to_dict()
        item["evaluated"] = [r for r in e.runs if RunDir(registry.root / r).has_evaluations()]
        out.append(item)
    return {"experiments": out, "problems": [{"run": r, "problem": p} for r, p in sorted(problems.items())]}


def same_test_images(registry: Registry, run_a: str, run_b: str) -> str | None:
    """Why two runs' evaluations cannot be compared image by image (another dataset or input size), or None."""
    (exps, found, problems) = zoo(registry)
    for rid in (run_a, run_b):
        if rid in problems:
            return f"run '{rid}' cannot be read: {problems[rid]}"
    a, b = found.get(run_a), found.get(run_b)
    if a is None or b is None:
        return None  # the registry answers 404 for a run that is not there
    why = [f"{k} {a.get(k, d)} vs {b.get(k, d)}" for k, d in (("dataset", ""), ("image_size", 0))
           if a.get(k, d) != b.get(k, d)]
    if why:
        return (f"'{run_a}' and '{run_b}' were tested on different images ({'; '.join(why)}): an image index means "
                "another picture in each, so who wins image by image is not defined; pick two runs of the same "
                "dataset and input size")
    return None


__all__ = ["configs", "experiment_of", "listing", "same_test_images", "zoo"]
