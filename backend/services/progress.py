"""A job as the API shows it: its record plus progress read from what its process writes.

Training progress comes from the run folder (status.json, metrics.jsonl); evaluation progress
from the attacks already recorded in OUT/eval.json. ViewCache keeps each job's view until its record
or one of those files changes (a stat per file, not a read), so listing many jobs reads few files.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from part.runs import EvalDir, RunDir

SHOWN = ("id", "kind", "state", "run_id", "spec", "attempts", "exit_code", "message", "created_at",
         "started_at", "finished_at", "updated_at", "pid", "scheduler_id")


def job_view(job: dict[str, Any]) -> dict[str, Any]:
    view = {k: job.get(k) for k in SHOWN}
    view["executor"] = job["spec"].get("executor") or "local"
    view.update(phase=None, epoch=None, epochs=None, progress=None, eta_s=None, latest_metrics=None, attack_seconds=None)
    try:
        view.update(_train_progress(job) if job["kind"] == "train" else _eval_progress(job))
    except (OSError, ValueError, KeyError):
        pass  # a file caught mid-replace on some filesystems: the next poll reads it
    if job["state"] == "completed":
        view.update(progress=1.0, eta_s=0.0)
    elif job["state"] != "running":
        view["eta_s"] = None
    return view


def _train_progress(job: dict[str, Any]) -> dict[str, Any]:
    run = RunDir(job["out_dir"])
    status, metrics = run.status(), run.metrics() if run.exists() else []
    done = metrics[-1]["epoch"] if metrics else 0
    epochs = status.get("epochs") or job["spec"].get("epochs")
    out = {"epochs": epochs, "latest_metrics": metrics[-1] if metrics else None, "epoch": done or None,
           "progress": round(done / epochs, 4) if epochs else None}
    if job["state"] == "running" and status:
        out.update(phase=status.get("phase"), epoch=status.get("epoch"),
                   progress=status.get("progress"), eta_s=status.get("eta_s"))
    elif status:
        out["phase"] = status.get("phase")
    if job["state"] == "running" and not status:
        out["phase"] = "starting"
    return out


def _eval_progress(job: dict[str, Any]) -> dict[str, Any]:
    wanted = list(job["spec"].get("attacks") or [])
    report = EvalDir(job["out_dir"]).results() or {}
    stored = report.get("attacks", {})
    keys = {a: next((k for k in stored if k == a or k.startswith(a + "@")), None) for a in wanted}  # -map: a@MAP_RUN
    done = [a for a in wanted if keys[a] is not None]
    results = {a: stored[keys[a]].get("accuracy") for a in done}
    seconds = {a: stored[keys[a]]["seconds"] for a in done if isinstance(stored[keys[a]].get("seconds"), (int, float))}
    pending = [a for a in wanted if a not in done]
    return {"phase": pending[0] if pending and job["state"] == "running" else None,
            "progress": round(len(done) / len(wanted), 4) if wanted else None,
            "epoch": job["spec"].get("epoch"), "latest_metrics": results or None, "attack_seconds": seconds or None}


def _stamp(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def _sources(job: dict[str, Any]) -> list[Path]:
    """The files a job's progress is read from."""
    out = Path(job["out_dir"]) if job.get("out_dir") else None
    if out is None:
        return []
    return RunDir(out).progress_files() if job["kind"] == "train" else [EvalDir(out).results_path]


class ViewCache:
    """job_view, computed again only when the job's record or its progress files changed."""

    def __init__(self, capacity: int = 4096):
        self.capacity = capacity
        self._views: OrderedDict[str, tuple[tuple, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def view(self, job: dict[str, Any]) -> dict[str, Any]:
        key = (job.get("updated_at"), job.get("state"), job.get("attempts"), job.get("pid"),
               tuple(_stamp(p) for p in _sources(job)))
        with self._lock:
            hit = self._views.get(job["id"])
            if hit is not None and hit[0] == key:
                self._views.move_to_end(job["id"])
                return dict(hit[1])
        view = job_view(job)
        with self._lock:
            self._views[job["id"]] = (key, view)
            while len(self._views) > self.capacity:
                self._views.popitem(last=False)
        return dict(view)

    def forget(self, job_id: str) -> None:
        with self._lock:
            self._views.pop(job_id, None)
