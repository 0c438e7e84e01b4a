"""The job supervisor: a queue with a concurrency limit, one `part` process (group) per job.

Each job runs as `sh -c 'part ...; echo $? > RC'` in a new session, so cancel can stop the whole
process group and the exit code survives a server restart. A background thread starts queued jobs
and watches running ones: a child through its Popen, a job started by an earlier server through its
pid and start time. A job whose process vanished without an exit code was interrupted; it resumes
from its run folder's last complete epoch.

One supervisor per checkpoints folder: it holds an OS lock (flock) on CHECKPOINTS/.jobs/supervisor.lock
for as long as it runs. A second server on the same folder serves reads and accepts submissions (they
wait in the queue) but launches and reaps nothing; /api/health says `supervising: false`, and it takes
over when the lock comes free. Every state change is a compare-and-set in SQLite, so no job launches
twice even if two processes race.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from backend.services import executors, job_specs, processes
from backend.api.errors import bad_request, conflict, not_found
from backend.services.job_store import JobStore
from backend.services.executors.slurm import SlurmExecutor
from backend.services.progress import ViewCache
from backend.settings import Settings

ACTIVE = ("queued", "pending", "running")  # pending: submitted to Slurm, waiting there
TERMINAL = ("completed", "failed", "interrupted", "cancelled", "timeout", "preempted", "node_failure")
RESUMABLE = ("failed", "interrupted", "cancelled", "timeout", "preempted", "node_failure")
# The exit code is written whole or not at all (a temporary file renamed over RC), like every record.
WRAPPER = '"$@"; rc=$?; echo $rc > "$PART_JOB_RC.tmp" && mv -f "$PART_JOB_RC.tmp" "$PART_JOB_RC"; exit $rc'
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
        self._lock_fd: int | None = None
        self._views = ViewCache()
        self.slurm = SlurmExecutor(settings, self.store, self._dataset_env)

    # -- the one supervisor of the folder --
    @property
    def lock_path(self) -> Path:
        return self.dir / "supervisor.lock"

    @property
    def supervising(self) -> bool:
        """Does this process hold the folder's supervisor lock (launch, watch and reap its jobs)?"""
        return self._lock_fd is not None

    def _acquire(self) -> bool:
        """Take the supervisor lock if it is free; True while this process holds it."""
        if self._lock_fd is not None:
            return True
        try:  # O_NOFOLLOW: a lock planted as a link is no lock (nobody supervises; health says so)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        return True

    def _release(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock

    def supervisor_pid(self) -> int | None:
        """The pid of the process that holds the lock (this one, or another server on the folder)."""
        if self.supervising:
            return os.getpid()
        try:
            return int(self.lock_path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    # -- lifecycle --
    def start(self) -> None:
        self.tick()  # take the lock and reconcile what an earlier server left before serving anything
        self._thread = threading.Thread(target=self._loop, name="job-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching and give up the lock; job processes keep running and the next server adopts them."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            self._release()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # a locked database or a full disk must not end the supervisor
                pass
            self._wake.wait(self.settings.job_poll_s)
            self._wake.clear()

    def tick(self) -> None:
        """Reap finished jobs and launch queued ones up to the limit; only the folder's supervisor does."""
        with self._lock:
            if not self._acquire():
                return  # another server supervises this folder
            for job in self.store.all(("running",)):
                if not _on_slurm(job):
                    self._reap(job)
            # Slurm's jobs: submitted at once (Slurm queues them), then one squeue for all
            slurm = [job for job in self.store.all(ACTIVE) if _on_slurm(job)]
            self.slurm.submit([job for job in slurm if job["state"] == "queued"])
            self.slurm.tick([job for job in slurm if job["state"] != "queued"])
            running = [job for job in self.store.all(("running",)) if not _on_slurm(job)]
            for job in running:
                if job["cancel_requested"]:  # asked through another server on the folder
                    _signal_group(job["pid"], signal.SIGTERM)
            queued = [job for job in self.store.all(("queued",)) if not _on_slurm(job)]
            for job in queued[: max(0, self.settings.job_concurrency - len(running))]:
                self._launch(job)

    # -- files of a job --
    def log_path(self, job_id: str) -> Path:
        return self.dir / "logs" / f"{job_id}.log"

    def rc_path(self, job_id: str) -> Path:
        return self.dir / "logs" / f"{job_id}.rc"

    # -- processes --
    def _launch(self, job: dict[str, Any]) -> None:
        now = time.time()
        # Claim it first: only the one process whose UPDATE ... WHERE state = 'queued' changed the row starts it.
        if not self.store.update(job["id"], expect_state="queued", state="running", pid=None, pid_start=None,
                                 started_at=now, updated_at=now, message=None):
            return
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
            self.store.update(job["id"], expect_state="running", state="failed",
                              message=f"could not start the job: {err}", finished_at=time.time(),
                              updated_at=time.time())
            return
        self._children[job["id"]] = child
        self.store.update(job["id"], expect_state="running", pid=child.pid, pid_start=processes.start_time(child.pid),
                          updated_at=time.time())

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
        """Record a validated job. The checks that depend on other jobs run again inside one SQLite
        transaction (serialised with every other server on the folder), and the job's files are written
        only then: a refused submission leaves the disk as it was."""
        built = dict(built)
        config = built.pop("requested_config", None)
        now = time.time()
        job = {"id": uuid.uuid4().hex[:12], "state": "queued", "attempts": 1, "cancel_requested": 0,
               "created_at": now, "updated_at": now, **built}
        with self.store.transaction() as db:
            on_run = self.store.on_run(built["run_id"], built["kind"], db)
            built = job_specs.own_eval_folder(built, on_run)
            job.update(out_dir=built["out_dir"], argv=built["argv"])
            job_specs.check_submission(built, on_run)
            written = _write_requested_config(Path(built["out_dir"]), config) if config is not None else None
            try:
                self.store.insert(job, db)
            except BaseException:
                if written is not None:
                    written()
                raise
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
        return self._views.view(self.get(job_id))

    def views(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """A page of job views, newest first; progress read from the run folders only when they changed."""
        return [self._views.view(job) for job in self.store.page(limit, offset)]

    def counts(self) -> dict[str, int]:
        return self.store.counts()

    def cancel(self, job_id: str) -> dict[str, Any]:
        job = self.get(job_id)
        if _on_slurm(job) and job["state"] in ("pending", "running"):
            self.slurm.cancel(job)  # scancel; the next ticks see Slurm's CANCELLED
            return self._settle(job_id)
        with self._lock:
            job = self.get(job_id)
            if job["state"] == "queued" and self.store.update(
                    job_id, expect_state="queued", state="cancelled", message=_cancelled_queued(job),
                    finished_at=time.time(), updated_at=time.time()):
                return self.view(job_id)
            job = self.get(job_id)  # it may have started meanwhile
            if job["state"] != "running":
                raise conflict(f"job {job_id} is {job['state']}; only queued or running jobs can be cancelled")
            self.store.update(job_id, expect_state="running", cancel_requested=1, updated_at=time.time())
            _signal_group(job["pid"], signal.SIGTERM)
        if not self._wait_group(job, CANCEL_GRACE_S):
            _signal_group(job["pid"], signal.SIGKILL)
            self._wait_group(job, 2.0)
        self.tick()
        if not self.supervising:  # the folder's supervisor reaps it: wait for it to record the cancel
            deadline = time.time() + 5 * self.settings.job_poll_s + 1
            while self.get(job_id)["state"] == "running" and time.time() < deadline:
                time.sleep(0.05)
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
        with self.store.transaction() as db:  # serialised with submissions, here and on other servers
            job = self.get(job_id)
            if job["state"] not in RESUMABLE:
                raise conflict(f"job {job_id} is {job['state']}; only {', '.join(RESUMABLE)} jobs can be resumed")
            job_specs.check_name_free(job["run_id"], self.store.on_run(job["run_id"], "train", db))
            job_specs.check_eval_folder_free(job, self.store.on_run(job["run_id"], "eval", db))
            argv = job_specs.resume_argv(job)
            spec = executors.respec(job["spec"], slurm)
            if not self.store.update(job_id, expect_state=job["state"], db=db, state="queued", argv=argv, spec=spec,
                                     attempts=job["attempts"] + 1, cancel_requested=0, exit_code=None, pid=None,
                                     pid_start=None, scheduler_id=None, finished_at=None, updated_at=time.time(),
                                     message=f"queued to resume (attempt {job['attempts'] + 1})"):
                raise conflict(f"job {job_id} changed while it was resumed; look at it again (GET /api/jobs/{job_id})")
        self._wake.set()
        return self.view(job_id)

    def delete(self, job_id: str) -> None:
        with self._lock:
            job = self.get(job_id)
            if job["state"] in ACTIVE or not self.store.delete(job_id, unless_states=ACTIVE):
                state = self.get(job_id)["state"] if job["state"] not in ACTIVE else job["state"]
                raise conflict(f"job {job_id} is {state}; cancel it first (POST /api/jobs/{job_id}/cancel)")
            self._forget_files(job_id)
            self.slurm.forget(job)

    def prune(self, states: tuple[str, ...], older_than_s: float) -> list[str]:
        """Forget the finished jobs in `states` that finished more than `older_than_s` seconds ago (their
        runs stay); returns their ids."""
        unknown = [s for s in states if s not in TERMINAL]
        if unknown or not states:
            raise bad_request(f"state {', '.join(unknown) or '(none)'} cannot be pruned; accepted: finished "
                              f"states {', '.join(TERMINAL)} (comma-separated)")
        with self._lock:
            ids = self.store.prune(tuple(states), time.time() - older_than_s)
            for job_id in ids:
                self._forget_files(job_id)
        return ids

    def _forget_files(self, job_id: str) -> None:
        self.log_path(job_id).unlink(missing_ok=True)
        self.rc_path(job_id).unlink(missing_ok=True)
        self.rc_path(job_id).with_name(f"{job_id}.rc.tmp").unlink(missing_ok=True)
        self._views.forget(job_id)

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
    """What a cancel left behind, from the run folder itself; what resume would do, as resume does it."""
    from part.runs import RunDir, RunFolderError

    if job["kind"] != "train":
        return "cancelled; the attacks finished before the cancel are kept in the evaluation's results"
    try:
        epochs = RunDir(job["out_dir"]).epochs()
    except (OSError, RunFolderError):
        epochs = []
    if not epochs:
        argv, how = job_specs.resume_plan(job)
        what = how if argv is not None else "it cannot be resumed: start a new job"
        return f"cancelled before its first epoch finished; there is no checkpoint ({what})"
    return f"cancelled; the run keeps its last complete epoch ({epochs[-1]})"


def _cancelled_queued(job: dict[str, Any]) -> str:
    argv, _ = job_specs.resume_plan(job)
    return ("cancelled before it started; resume queues it again" if argv is not None
            else "cancelled before it started; it cannot be resumed (nothing was written): start a new job")


def _write_requested_config(out: Path, config: dict[str, Any]):
    """Write RUN/requested_config.json (atomically) and return what undoes it: the file, and the run folder
    if this made it."""
    from part.runs import RunDir

    run = RunDir(out)
    made = not run.path.exists()
    run.write_requested_config(config)

    def undo() -> None:
        run.requested_config_path.unlink(missing_ok=True)
        if made:
            try:
                run.path.rmdir()
            except OSError:
                pass
    return undo


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
