"""The run registry: every run folder under the checkpoint root, read through part.runs.RunDir.

Folders are scanned on every request, so runs written by a job or by hand appear without a restart.
Models load lazily into a small LRU cache. CAM hooks attach to the shared module, so every use of
a cached model holds that model's lock.

A run folder that cannot be read (a damaged config, status or metrics file) is listed with state
`broken` and the reason, and every request on it answers 409 with that reason; the others work.
Run folders that are links, or lead outside the checkpoint root, are not runs of this server.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch

from backend.services import processes
from backend.api.errors import ApiError, bad_request, conflict, not_found
from backend.settings import Settings
from part.runs import method_label
from part.runs import RunDir, RunFolderError, load_model
from part.devices import resolve_device

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
RUN_ID_RULE = "1-100 characters: letters, digits, '.', '_' and '-', starting with a letter or digit"
HEAVY_REPORT_KEYS = ("indices", "labels", "correct", "energy_per_image", "road_combined_per_image")  # per-image lists of an eval.json: large, not for a listing


def check_run_id(run_id: str) -> str:
    if not RUN_ID.fullmatch(run_id or "") or ".." in run_id:
        raise bad_request(f"run id '{str(run_id)[:120]}' is not accepted; run ids are {RUN_ID_RULE}")
    return run_id


@dataclass
class LoadedModel:
    run_id: str
    epoch: int
    model: torch.nn.Module
    meta: dict[str, Any]
    config: dict[str, Any]
    stamp: int  # checkpoint mtime: a rewritten checkpoint is loaded again
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def classes(self) -> list[str]:
        return list(self.meta.get("classes") or range(self.meta["num_classes"]))


class Registry:
    def __init__(self, settings: Settings):
        self.root = settings.checkpoints
        self.device = resolve_device(settings.device)
        self.capacity = settings.model_cache
        self._models: OrderedDict[tuple[str, int], LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    # -- run folders --
    def run_ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if RUN_ID.fullmatch(p.name) and self._is_run(p))

    def run_counts(self) -> tuple[int, int]:
        """(runs with a checkpoint or stored probes, run folders with neither: a run cancelled before its
        first epoch, or one still in it): a folder with nothing to look at is not counted as a run."""
        runs = [RunDir(self.root / i) for i in self.run_ids()]
        usable = sum(1 for run in runs if _safe(run.epochs, []) or _safe(run.probe_epochs, []))
        return usable, len(runs) - usable

    def _is_run(self, path) -> bool:
        return not path.is_symlink() and path.is_dir() and path.resolve().parent == self.root.resolve() \
            and RunDir(path).exists()

    def run(self, run_id: str, *, readable: bool = True) -> RunDir:
        """The run folder; with `readable`, a broken one is refused with 409 and the reason."""
        check_run_id(run_id)
        run = RunDir(self.root / run_id)
        if not self._is_run(run.path):
            known = self.run_ids()
            raise not_found(f"no run '{run_id}'; known runs: {', '.join(known) or 'none yet'}")
        if readable:
            problem = broken(run)
            if problem:
                raise conflict(f"run '{run_id}' cannot be read: {problem}")
        return run

    def epoch(self, run_id: str, epoch: int | None) -> int:
        """The requested epoch, checked to have a checkpoint; None means the newest."""
        epochs = self.run(run_id).epochs()
        if not epochs:
            raise not_found(f"run '{run_id}' has no checkpoints yet; wait for its first epoch to finish")
        if epoch is None:
            return epochs[-1]
        if epoch not in epochs:
            raise not_found(f"run '{run_id}' has no checkpoint for epoch {epoch}; available: {_ranges(epochs)}")
        return epoch

    def summary(self, run_id: str) -> dict[str, Any]:
        run = self.run(run_id, readable=False)
        try:
            cfg, metrics, state = run.config(), run.metrics(), run_state(run)
        except (RunFolderError, OSError) as err:
            return {"id": run_id, "dataset": None, "image_size": None, "model": None, "defense": None, "part": False, "label": None, "recipe": None,
                    "cam_methods": [], "planned_epochs": None, "epochs": _safe(run.epochs, []),
                    "probe_epochs": _safe(run.probe_epochs, []), "state": "broken",
                    "latest": None, "problem": str(err)}
        return {"id": run_id, "dataset": cfg.get("dataset"), "image_size": cfg.get("image_size", 0), "model": cfg.get("model"),
                "defense": cfg.get("defense"), "part": bool(cfg.get("part")),
                "label": method_label(cfg.get("defense"), bool(cfg.get("part"))), "recipe": cfg.get("recipe"),
                "cam_methods": list(cfg.get("cam_methods") or []), "planned_epochs": cfg.get("epochs"),
                "epochs": run.epochs(), "probe_epochs": run.probe_epochs(), "state": state, "latest": metrics[-1] if metrics else None, "problem": None}

    def runs(self) -> list[dict[str, Any]]:
        out = []
        for run_id in self.run_ids():
            try:
                out.append(self.summary(run_id))
            except (ApiError, OSError):  # a folder removed right now: gone from this listing
                continue
        return out

    def detail(self, run_id: str) -> dict[str, Any]:
        run = self.run(run_id)
        problems = []
        try:
            probe_count = len(run.load_probe_inputs()["y"]) if run.has_probe_inputs() else 0
        except (RunFolderError, OSError) as err:
            probe_count = 0
            problems.append(f"probe images: {err}")
        reports = []
        for name, report, problem in run.eval_reports():
            if report is None:
                problems.append(f"evaluation {name}: {problem}")
            else:
                reports.append({"name": name, **_without_per_image(report)})
        return {**self.summary(run_id), "config": run.config(), "status": run.status(), "metrics": run.metrics(),
                "evaluations": reports, "probe_count": probe_count, "problems": problems}

    # -- models --
    def readable_model(self, run_id: str) -> LoadedModel:
        """The newest checkpoint of the run that loads (the newest one's error when none does)."""
        epochs = self.run(run_id).epochs()
        first_error = None
        for epoch in reversed(epochs):
            try:
                return self.model(run_id, epoch)
            except ApiError as err:
                first_error = first_error or err
        raise first_error or not_found(f"run '{run_id}' has no checkpoints yet; wait for its first epoch to finish")

    def model(self, run_id: str, epoch: int | None = None) -> LoadedModel:
        epoch = self.epoch(run_id, epoch)
        path = self.run(run_id).checkpoint_path(epoch)
        stamp = path.stat().st_mtime_ns
        key = (run_id, epoch)
        with self._lock:  # loads are quick for the CPU models; one at a time keeps memory bounded
            cached = self._models.get(key)
            if cached is not None and cached.stamp == stamp:
                self._models.move_to_end(key)
                return cached
            try:
                model, ckpt = load_model(self.run(run_id).file("checkpoints", path.name), self.device)
            except (RunFolderError, OSError) as err:
                raise conflict(f"checkpoint {run_id}/epoch {epoch} cannot be read: {err}") from None
            loaded = LoadedModel(run_id, epoch, model, ckpt["meta"], ckpt.get("config", {}), stamp)
            self._models[key] = loaded
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)
            return loaded


def broken(run: RunDir) -> str | None:
    """Why the run's own files (config, status, metrics) cannot be read, or None."""
    try:
        run.config()
        run.status()
        run.metrics()
    except (RunFolderError, OSError) as err:
        return str(err)
    return None


def run_state(run: RunDir) -> str:
    """The status file's state, except that a 'running' run whose writer is gone was interrupted.

    The writer is gone when its pid is free, or taken by a process that started after the status
    was last written (a pid reused since)."""
    status = run.status()
    state = status.get("state") or ("completed" if run.epochs() else "queued")
    if state == "running" and status.get("pid") and not processes.is_writer(status["pid"], status.get("updated_at")):
        return "interrupted"
    return state


def _without_per_image(value: Any) -> Any:
    """The report without its per-image lists (`correct`, `indices`, `labels`): summaries stay, checks too."""
    if isinstance(value, dict):
        return {k: _without_per_image(v) for k, v in value.items() if k not in HEAVY_REPORT_KEYS}
    if isinstance(value, list):
        return [_without_per_image(v) for v in value]
    return value


def _safe(read, default):
    try:
        return read()
    except (OSError, ValueError):
        return default


def _ranges(values: list[int]) -> str:
    return f"{values[0]}..{values[-1]}" if values == list(range(values[0], values[-1] + 1)) and len(values) > 2 \
        else ", ".join(map(str, values))
