"""Jobs on a Slurm cluster: sbatch, one batched squeue per supervisor tick, scancel; argv lists, no shell.

A job's `part` command line goes, with its resume line, into a spec file in the shared folder, and
sbatch runs slurm_program.py on it (a Python batch script: Slurm reads `#SBATCH` nowhere, every option
is an sbatch argument). The program writes the exit code beside the spec, so a finished job is known
after Slurm has forgotten it (no accounting needed); the run folder says how far it got. The Slurm job
id is stored with the job, so a restarted API finds its jobs in squeue again. Sweep cells submitted
together become one job array (--array=0-N%P), one cell per task.

The client commands find the cluster the usual way (/etc/slurm/slurm.conf or SLURM_CONF).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from backend.settings import Settings
from part import commands

CLIENTS = ("sbatch", "squeue", "scancel", "scontrol", "sinfo")
TIME_FORMS = "MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS (e.g. 04:00:00)"
TIME_LIMIT = re.compile(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?")
STOPPED_FOR_LIMIT = 75  # the trainer's exit code after it stopped at an epoch's end for the time limit
HEAD_NODE = "{head_node}"  # replaced on the job's first node by its host name (the rendezvous endpoint)
PROGRAM = Path(__file__).with_name("slurm_program.py")
PENDING = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SPECIAL_EXIT"}
RUNNING = {"RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "RESIZING"}
# Slurm's end states in the words of the job API
ENDED = {"COMPLETED": "completed", "FAILED": "failed", "CANCELLED": "cancelled", "TIMEOUT": "timeout",
         "PREEMPTED": "preempted", "NODE_FAIL": "node_failure", "BOOT_FAIL": "node_failure",
         "OUT_OF_MEMORY": "failed", "DEADLINE": "timeout"}
_partitions: dict[str, tuple[float, list[str]]] = {}


def time_limit_minutes(text: str) -> float:
    """Slurm's --time forms in minutes; anything else (e.g. "forever") is refused naming the forms."""
    m = TIME_LIMIT.fullmatch(text.strip())
    if not m:
        raise ValueError(f"time_limit '{text[:40]}' is not a Slurm time; accepted: {TIME_FORMS}")
    days, first, second, third = (int(g) if g else None for g in m.groups())
    if days is not None:  # D-HH[:MM[:SS]]
        minutes = days * 1440 + first * 60 + (second or 0) + (third or 0) / 60
    elif third is not None:  # HH:MM:SS
        minutes = first * 60 + second + third / 60
    else:  # MM[:SS]
        minutes = first + (second or 0) / 60
    if minutes <= 0:
        raise ValueError(f"time_limit '{text}' is no time at all; accepted: {TIME_FORMS}, more than zero")
    return minutes


def unavailable() -> str | None:
    """Why this server cannot submit to Slurm, or None."""
    absent = [c for c in CLIENTS if shutil.which(c) is None]
    if absent:
        return f"the Slurm client commands are not installed ({', '.join(absent)})"
    if not partitions(quiet=True):
        return "sinfo reaches no cluster (set SLURM_CONF or /etc/slurm/slurm.conf)"
    return None


def partitions(quiet: bool = False) -> list[str]:
    """The cluster's partitions, asked of sinfo at most every 30 s."""
    key = os.environ.get("SLURM_CONF", "")
    cached = _partitions.get(key)
    if cached and time.time() - cached[0] < 30:
        return cached[1]
    try:
        out = subprocess.run(["sinfo", "--noheader", "--format=%R"], capture_output=True, text=True, timeout=20)
        names = sorted(set(out.stdout.split())) if out.returncode == 0 else []
    except (OSError, subprocess.TimeoutExpired):
        names = []
    _partitions[key] = (time.time(), names)
    return names


def resolve(options: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """A job's allocation: its own options, else the PART_SLURM_* defaults (None: the cluster's)."""
    def given(name: str, default: Any) -> Any:
        return options[name] if options.get(name) is not None else (default or None)
    return {"partition": given("partition", settings.slurm_partition), "nodes": options.get("nodes") or 1,
            "gpus_per_node": given("gpus_per_node", settings.slurm_gpus_per_node) or 0,
            "time_limit": given("time_limit", settings.slurm_time_limit),
            "requeue": bool(given("requeue", settings.slurm_requeue))}


def sbatch_argv(settings: Settings, chosen: dict[str, Any], *, name: str, output: Path, spec: Path,
                array: str | None = None) -> list[str]:
    """The sbatch command line of one submission (a job or a job array)."""
    flags = {"--job-name": name, "--output": output, "--partition": chosen["partition"],
             "--account": settings.slurm_account or None, "--qos": settings.slurm_qos or None,
             "--time": chosen["time_limit"], "--nodes": chosen["nodes"], "--ntasks-per-node": 1,
             "--gpus-per-node": chosen["gpus_per_node"] or None,
             "--cpus-per-task": settings.slurm_cpus_per_task or None, "--mem": settings.slurm_mem or None,
             "--array": array, "--signal": f"B:USR1@{settings.slurm_signal_s}" if settings.slurm_signal_s else None}
    argv = ["sbatch", "--parsable", "--open-mode=append"]
    argv += [f"{k}={v}" for k, v in flags.items() if v is not None]
    argv += ["--requeue" if chosen["requeue"] else "--no-requeue", *shlex.split(settings.slurm_extra)]
    return argv + [str(_program(spec.parent)), str(spec)]


def _program(folder: Path) -> Path:
    """slurm_program.py with this interpreter in its #! line: the batch script every job runs."""
    path = folder / "slurm_program.py"
    text = f"#!{sys.executable}\n" + PROGRAM.read_text()
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
        path.chmod(0o755)
    return path


def cell_argv(job: dict[str, Any], chosen: dict[str, Any]) -> dict[str, Any]:
    """What one array task (or a lone job) runs: its argv, the resume argv after a requeue, as torchrun
    across nodes when it has more than one process."""
    def spread(argv: list[str]) -> list[str]:
        procs = max(1, chosen["gpus_per_node"])
        if chosen["nodes"] * procs == 1:
            return argv
        rest = argv[len(commands.PART):] if tuple(argv[:len(commands.PART)]) == commands.PART else argv
        return ["srun", f"--nodes={chosen['nodes']}", "--ntasks-per-node=1", "--kill-on-bad-exit=1",
                *commands.torchrun_argv(rest, nnodes=chosen["nodes"], nproc_per_node=procs,
                                        rdzv_endpoint=f"{HEAD_NODE}:29400", rdzv_id=job["id"])]
    resume = commands.resume_argv(job["out_dir"]) if job["kind"] == "train" else job["argv"]
    return {"job": job["id"], "argv": spread(job["argv"]), "resume_argv": spread(resume),
            "run_dir": job["out_dir"] if job["kind"] == "train" else None}


class SlurmExecutor:
    """Submits the store's queued Slurm jobs and moves their states from one squeue call per tick."""

    def __init__(self, settings: Settings, store, env: Callable[[], dict[str, str]]):
        self.settings, self.store, self.env = settings, store, env
        self.dir = settings.slurm_dir or settings.jobs_dir / "slurm"
        self.logs = settings.jobs_dir / "logs"

    def rc_path(self, job_id: str) -> Path:
        return self.dir / f"{job_id}.rc"

    def log_path(self, job: dict[str, Any]) -> Path | None:
        return self.logs / f"slurm-{job['scheduler_id']}.log" if job.get("scheduler_id") else None

    # -- submit --
    def submit(self, jobs: list[dict[str, Any]]) -> None:
        """sbatch each queued job; the cells of one sweep go together as one job array."""
        groups: dict[str, list[dict[str, Any]]] = {}
        for job in jobs:
            groups.setdefault(job["spec"].get("sweep") or job["id"], []).append(job)
        for key, group in groups.items():
            self._submit(key, group)

    def _submit(self, key: str, jobs: list[dict[str, Any]]) -> None:
        chosen = jobs[0]["spec"]["slurm"]
        self.dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        spec = self.dir / f"{key}-{jobs[0]['attempts']}.json"
        cells = [{**cell_argv(job, chosen), "rc": str(self.rc_path(job["id"]))} for job in jobs]
        for job in jobs:
            self.rc_path(job["id"]).unlink(missing_ok=True)
        spec.write_text(json.dumps({"cells": cells, "requeue": chosen["requeue"]}, indent=1))
        # a sweep's cells as one array, at most `parallel` of them running at once
        array = f"0-{len(jobs) - 1}%{jobs[0]['spec'].get('parallel') or len(jobs)}" if len(jobs) > 1 else None
        name = f"part-{jobs[0]['run_id']}" if len(jobs) == 1 else f"part-sweep-{key}"
        output = self.logs / ("slurm-%A_%a.log" if array else "slurm-%j.log")
        env = {k: v for k, v in os.environ.items() if k != "PART_TOKEN"}
        env.update(PYTHONUNBUFFERED="1", PART_CHECKPOINTS=str(self.settings.checkpoints), **self.env())
        now = time.time()
        try:
            out = subprocess.run(sbatch_argv(self.settings, chosen, name=name[:100], output=output, spec=spec,
                                             array=array), capture_output=True, text=True, env=env, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as err:
            out = subprocess.CompletedProcess([], 1, "", str(err))
        slurm_id = out.stdout.strip().split(";")[0]
        if out.returncode != 0 or not slurm_id.isdigit():
            why = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no job id"]
            for job in jobs:
                self.store.update(job["id"], expect_state="queued", state="failed", finished_at=now, updated_at=now,
                                  message=f"sbatch refused the job: {why[0][:300]}")
            return
        for i, job in enumerate(jobs):
            self.store.update(job["id"], expect_state="queued", state="pending", updated_at=now,
                              scheduler_id=f"{slurm_id}_{i}" if array else slurm_id,
                              message="submitted to Slurm")

    # -- watch --
    def poll(self, ids: list[str]) -> dict[str, tuple[str, str]] | None:
        """{slurm id: (state, reason)} for the ids Slurm still knows; None when squeue cannot answer."""
        if not ids:
            return {}
        try:
            out = subprocess.run(["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T|%r",
                                  f"--jobs={','.join(ids)}"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if out.returncode != 0:
            return {} if "Invalid job id" in out.stderr else None  # every id forgotten, or no controller
        states = {}
        for line in out.stdout.splitlines():
            slurm_id, _, rest = line.partition("|")
            state, _, reason = rest.partition("|")
            states[slurm_id.strip()] = (state.split()[0] if state else "", reason.strip())
        return states

    def tick(self, jobs: list[dict[str, Any]]) -> None:
        """Move each pending or running Slurm job to what Slurm (or, once it forgot, the rc file) says."""
        watched = [j for j in jobs if j.get("scheduler_id")]
        states = self.poll([j["scheduler_id"] for j in watched])
        if states is None:
            return  # the controller is unreachable: keep the last known states
        for job in watched:
            state, reason = states.get(job["scheduler_id"], ("", ""))
            self._follow(job, state, reason)

    def _follow(self, job: dict[str, Any], state: str, reason: str) -> None:
        now = time.time()
        if state in PENDING:
            message = f"waiting in Slurm: {reason}" if reason and reason != "None" else "waiting in Slurm"
            if state.startswith("REQUEUE") or (job["state"] == "running"):
                message = f"requeued by Slurm; {message}"
            if job["state"] != "pending" or job["message"] != message:
                self.store.update(job["id"], state="pending", message=message, updated_at=now)
        elif state in RUNNING:
            if job["state"] != "running":
                self.store.update(job["id"], state="running", message=None, updated_at=now,
                                  started_at=job["started_at"] or now)
        else:
            self._finish(job, state)

    def _finish(self, job: dict[str, Any], slurm_state: str) -> None:
        from backend.services.jobs import _cancelled_message, _last_error, _mark_run

        try:
            rc: int | None = int(self.rc_path(job["id"]).read_text().strip())
        except (OSError, ValueError):
            rc = None
        state = ENDED.get(slurm_state)
        if rc == STOPPED_FOR_LIMIT and state in (None, "failed", "completed"):
            state = "timeout"
        if state is None:  # Slurm forgot the job (no accounting): its exit code, else its run folder
            state = "completed" if rc == 0 else "failed" if rc is not None else "interrupted"
        if job["cancel_requested"] and state != "completed":
            state = "cancelled"
        log = self.log_path(job)
        message = {"completed": None, "cancelled": _cancelled_message(job) if state == "cancelled" else None,
                   "timeout": "stopped by its time limit; resume it from its last complete epoch",
                   "preempted": "preempted by Slurm; resume it from its last complete epoch",
                   "node_failure": "its node failed; resume it from its last complete epoch",
                   "interrupted": "the Slurm job ended without an exit code; resume it"}.get(state)
        if state == "failed":
            message = ("out of memory (Slurm); " if slurm_state == "OUT_OF_MEMORY" else "") + (
                (log and _last_error(log)) or f"exit code {rc}")
        now = time.time()
        self.store.update(job["id"], expect_state=job["state"], state=state, exit_code=rc, message=message,
                          finished_at=now, updated_at=now)
        if job["kind"] == "train" and state not in ("completed", "failed"):
            _mark_run(Path(job["out_dir"]), "cancelled" if state == "cancelled" else "interrupted", message)

    def forget(self, job: dict[str, Any]) -> None:
        """A deleted job's files: its latest Slurm log and its exit code."""
        log = self.log_path(job)
        if log is not None:
            log.unlink(missing_ok=True)
        self.rc_path(job["id"]).unlink(missing_ok=True)

    def cancel(self, job: dict[str, Any]) -> None:
        self.store.update(job["id"], cancel_requested=1, updated_at=time.time())
        if job.get("scheduler_id"):
            subprocess.run(["scancel", job["scheduler_id"]], capture_output=True, timeout=30)
