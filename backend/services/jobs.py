"""The job supervisor: a queue with a concurrency limit, one `part` process (group) per job.

Each job runs as `sh -c 'part ...; echo $? > RC'` in a new session, so cancel can stop the whole
process group and the exit code survives a server restart. A background thread starts queued jobs
and watches running ones: a child through its Popen, a job started by an earlier server through its
pid and start time. A job whose process vanished without an exit code was interrupted; it resumes
from its run folder's last complete epoch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from backend.services import executors, job_specs, processes
from backend.api.errors import conflict, not_found
from backend.services.job_store import JobStore
from backend.services.executors.slurm import SlurmExecutor
from backend.services.progress import job_view
from backend.settings import Settings

ACTIVE = ("queued", "pending", "running")  # pending: submitted to Slurm, waiting there
TERMINAL = ("completed", "failed", "interrupted", "cancelled", "timeout", "preempted", "node_failure")
RESUMABLE = ("failed", "interrupted", "cancelled", "timeout", "preempted", "node_failure")
WRAPPER = '"$@"; rc=$?; echo $rc > "$PART_JOB_RC"; exit $rc'
CANCEL_GRACE_S = 5.0


class JobSupervisor:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.dir = settings.jobs_dir
        self.store = JobStore(self.dir / "jobs.sqlite")
        self._children: dict[str, subprocess.Popen] = {}
        self._lock = threading.RLock()
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None
        self.slurm = SlurmExecutor(settings, self.store, self._dataset_env)

    # -- lifecycle --
    def start(self) -> None:
        self.tick()  # reconcile what an earlier server left before serving anything
        self._thread = threading.Thread(target=self._loop, name="job-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching; job processes keep running and the next server adopts them."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # a locked database or a full disk must not end the supervisor
                pass
            self._wake.wait(self.settings.job_poll_s)
            self._wake.clear()

    def tick(self) -> None:
        with self._lock:
            for job in self.store.all(("running",)):
                if not _on_slurm(job):
                    self._reap(job)
            # Slurm's jobs: submitted at once (Slurm queues them), then one squeue for all
            slurm = [job for job in self.store.all(ACTIVE) if _on_slurm(job)]
            self.slurm.submit([job for job in slurm if job["state"] == "queued"])
            self.slurm.tick([job for job in slurm if job["state"] != "queued"])
            running = len([job for job in self.store.all(("running",)) if not _on_slurm(job)])
            queued = [job for job in self.store.all(("queued",)) if not _on_slurm(job)]
            for job in queued[: max(0, self.settings.job_concurrency - running)]:
                self._launch(job)

    # -- files of a job --
    def log_path(self, job_id: str) -> Path:
        return self.dir / "logs" / f"{job_id}.log"

    def rc_path(self, job_id: str) -> Path:
        return self.dir / "logs" / f"{job_id}.rc"

    # -- processes --
    def _launch(self, job: dict[str, Any]) -> None:
        log_path, rc_path = self.log_path(job["id"]), self.rc_path(job["id"])
        log_path.parent.mkdir(parents=True, exist_ok=True)
        rc_path.unlink(missing_ok=True)
        env = {k: v for k, v in os.environ.items() if k != "PART_TOKEN"}
        env.update(PYTHONUNBUFFERED="1", PART_JOB_RC=str(rc_path), PART_CHECKPOINTS=str(self.settings.checkpoints))
        env.update(self._dataset_env())
        try:
            # O_NOFOLLOW: a log planted as a link must not make the job write elsewhere
            fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "ab") as log:
                log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} attempt {job['attempts']}: "
                          f"{' '.join(job['argv'])}\n".encode())
                log.flush()
                child = subprocess.Popen(["sh", "-c", WRAPPER, "sh", *job["argv"]], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                         start_new_session=True)
        except OSError as err:
            self.store.update(job["id"], state="failed", message=f"could not start the job: {err}",
                              finished_at=time.time(), updated_at=time.time())
            return
        self._children[job["id"]] = child
        self.store.update(job["id"], state="running", pid=child.pid, pid_start=processes.start_time(child.pid),
                          started_at=time.time(), updated_at=time.time(), message=None)

    def _dataset_env(self) -> dict[str, str]:
        from part.data.datasets import DATASETS

        out = {}
        for name in DATASETS:
            folder = self.settings.dataset_dir(name)
            var = "PART_" + name.upper().replace("-", "_") + "_DIR"
            if folder and var not in os.environ:
                out[var] = folder
        return out

    def _exit_code(self, job: dict[str, Any]) -> tuple[bool, int | None]:
        """(finished, exit code or None when it left none)."""
        child = self._children.get(job["id"])
        if child is not None:
            rc = child.poll()
            if rc is None:
                return False, None
            self._children.pop(job["id"], None)
            return True, rc
        if processes.alive(job["pid"], job["pid_start"]):
            return False, None
        try:
            return True, int(self.rc_path(job["id"]).read_text().strip())
        except (OSError, ValueError):
            return True, None

    def _reap(self, job: dict[str, Any]) -> None:
        finished, rc = self._exit_code(job)
        if not finished:
            return
        if job["cancel_requested"]:
            state, message = "cancelled", _cancelled_message(job)
        elif rc == 0:
            state, message = "completed", None
        elif rc is not None and 0 < rc < 128:
            state, message = "failed", _last_error(self.log_path(job["id"])) or f"exit code {rc}"
        else:
            how = "it was killed" if rc is None or rc < 0 or rc >= 128 else f"exit code {rc}"
            state, message = "interrupted", f"the job process stopped before finishing ({how}); resume it"
        self.store.update(job["id"], expect_state="running", state=state, exit_code=rc, message=message,
                          finished_at=time.time(), updated_at=time.time())
        if job["kind"] == "train" and state in ("cancelled", "interrupted"):
            _mark_run(Path(job["out_dir"]), state, message)

    # -- requests --
    def submit(self, built: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            job_specs.check_name_free(built["run_id"], self.store.all(ACTIVE))
            now = time.time()
            job = {"id": uuid.uuid4().hex[:12], "state": "queued", "attempts": 1, "cancel_requested": 0,
                   "created_at": now, "updated_at": now, **built}
            self.store.insert(job)
        self._wake.set()
        return self.view(job["id"])

    def submit_all(self, built: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Several jobs at once (a sweep's cells): no tick sees some of them without the others."""
        with self._lock:
            return [self.submit(job) for job in built]

    def get(self, job_id: str) -> dict[str, Any]:
        job = self.store.get(job_id)
        if job is None:
            raise not_found(f"no job '{job_id}'; GET /api/jobs lists the jobs")
        return job

    def view(self, job_id: str) -> dict[str, Any]:
        return job_view(self.get(job_id))

    def views(self) -> list[dict[str, Any]]:
        return [job_view(job) for job in reversed(self.store.all())]

    def cancel(self, job_id: str) -> dict[str, Any]:
        job = self.get(job_id)
        if _on_slurm(job) and job["state"] in ("pending", "running"):
            self.slurm.cancel(job)  # scancel; the next ticks see Slurm's CANCELLED
            return self._settle(job_id)
        with self._lock:
            job = self.get(job_id)
            if job["state"] == "queued":
                self.store.update(job_id, expect_state="queued", state="cancelled", message="cancelled before it started",
                                  finished_at=time.time(), updated_at=time.time())
                return self.view(job_id)
            if job["state"] != "running":
                raise conflict(f"job {job_id} is {job['state']}; only queued or running jobs can be cancelled")
            self.store.update(job_id, cancel_requested=1, updated_at=time.time())
            _signal_group(job["pid"], signal.SIGTERM)
        if not self._wait_group(job, CANCEL_GRACE_S):
            _signal_group(job["pid"], signal.SIGKILL)
            self._wait_group(job, 2.0)
        self.tick()
        return self.view(job_id)

    def _settle(self, job_id: str, seconds: float = 10.0) -> dict[str, Any]:
        """The job's view once the scheduler has ended it, or after `seconds`."""
        deadline = time.time() + seconds
        while self.get(job_id)["state"] not in TERMINAL and time.time() < deadline:
            time.sleep(0.5)
            self.tick()
        return self.view(job_id)

    def _wait_group(self, job: dict[str, Any], seconds: float) -> bool:
        """Wait until the job's whole process group has exited; False if some member outlived `seconds`."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            child = self._children.get(job["id"])
            if child is not None:
                child.poll()  # reap the leader, or it lingers as a zombie in its own group
            if not _group_alive(job["pid"]):
                return True
            time.sleep(0.05)
        return False

    def resume(self, job_id: str, slurm: dict[str, Any] | None = None) -> dict[str, Any]:
        """Queue the job again; `slurm` (a Slurm job's options, e.g. a longer time_limit) replaces the old ones."""
        with self._lock:
            job = self.get(job_id)
            if job["state"] not in RESUMABLE:
                raise conflict(f"job {job_id} is {job['state']}; only {', '.join(RESUMABLE)} jobs can be resumed")
            job_specs.check_name_free(job["run_id"], self.store.all(ACTIVE))
            argv = job_specs.resume_argv(job)
            spec = executors.respec(job["spec"], slurm)
            self.store.update(job_id, expect_state=job["state"], state="queued", argv=argv, spec=spec,
                              attempts=job["attempts"] + 1, cancel_requested=0, exit_code=None, pid=None,
                              pid_start=None, scheduler_id=None, finished_at=None, message=f"queued to resume (attempt {job['attempts'] + 1})",
                              updated_at=time.time())
        self._wake.set()
        return self.view(job_id)

    def delete(self, job_id: str) -> None:
        with self._lock:
            job = self.get(job_id)
            if job["state"] in ACTIVE:
                raise conflict(f"job {job_id} is {job['state']}; cancel it first (POST /api/jobs/{job_id}/cancel)")
            self.store.delete(job_id)
            self.log_path(job_id).unlink(missing_ok=True)
            self.rc_path(job_id).unlink(missing_ok=True)
            self.slurm.forget(job)

    def log(self, job_id: str, tail: int) -> str:
        path = self.slurm.log_path(self.get(job_id)) or self.log_path(job_id)  # a Slurm job's output file
        if not path.exists():
            return ""
        if path.is_symlink() or path.resolve().parent != self.dir.resolve() / "logs":
            raise conflict(f"the log of job {job_id} is a link out of the jobs folder; it is not served")
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - tail))
            return f.read().decode(errors="replace")


def _on_slurm(job: dict[str, Any]) -> bool:
    return job["spec"].get("executor") == "slurm"


def _signal_group(pid: int | None, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # the job's session leader is its process group leader
    except (ProcessLookupError, PermissionError, TypeError):
        pass


def _group_alive(pgid: int | None) -> bool:
    """Some process of the group still exists (zombies waiting for their parent count, briefly)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, TypeError):
        return False
    except PermissionError:
        return True
    return True


def _last_error(log: Path) -> str | None:
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return None
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or [None])[-1]


def _cancelled_message(job: dict[str, Any]) -> str:
    """What a cancel left behind, from the run folder itself."""
    from part.runs import RunDir, RunFolderError

    if job["kind"] != "train":
        return "cancelled; the attacks finished before the cancel are kept in the evaluation's results"
    try:
        epochs = RunDir(job["out_dir"]).epochs()
    except (OSError, RunFolderError):
        epochs = []
    if not epochs:
        return "cancelled before its first epoch finished; there is no checkpoint (resume starts from the beginning)"
    return f"cancelled; the run keeps its last complete epoch ({epochs[-1]})"


def _mark_run(out: Path, state: str, message: str) -> None:
    """The trainer cannot record its own SIGKILL: say so in the run's status, if it still claims to run."""
    from part.runs import RunDir

    run = RunDir(out)
    try:
        running = run.status().get("state") == "running"
    except (OSError, ValueError):
        running = True  # a damaged status of a stopped trainer: replace it with the truth
    if running:
        run.write_status(state=state, message=message)
