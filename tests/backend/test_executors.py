"""The Slurm executor without a cluster: time limits, the sbatch line, what a finished job's files say,
and the job database gaining the Slurm id column."""

import sqlite3
import sys

import pytest

from backend.services.executors import slurm
from backend.services.job_store import JobStore
from backend.settings import load_settings


@pytest.mark.parametrize("text, minutes", [("30", 30), ("5:30", 5.5), ("04:00:00", 240), ("1-00", 1440),
                                           ("2-03:04", 2 * 1440 + 184), ("1-00:00:30", 1440.5)])
def test_slurm_time_forms_become_minutes(text, minutes):
    assert slurm.time_limit_minutes(text) == pytest.approx(minutes)


@pytest.mark.parametrize("text, words", [("forever", "accepted: MM, MM:SS"), ("0", "no time at all"),
                                         ("1:2:3:4", "not a Slurm time"), ("-5", "not a Slurm time")])
def test_other_time_limits_are_refused_naming_the_forms(text, words):
    with pytest.raises(ValueError, match=words):
        slurm.time_limit_minutes(text)


def test_the_sbatch_line_is_an_argv_with_the_settings_and_the_job_options(tmp_path):
    settings = load_settings(env={}, checkpoints=tmp_path, slurm_account="lab", slurm_mem="8G",
                             slurm_extra="--constraint='a100 80gb' --exclusive")
    chosen = slurm.resolve({"partition": "gpu", "nodes": 2, "time_limit": "1:00:00"}, settings)
    assert chosen == {"partition": "gpu", "nodes": 2, "gpus_per_node": 0, "time_limit": "1:00:00", "requeue": False}
    argv = slurm.sbatch_argv(settings, chosen, name="part-x", output=tmp_path / "o.log", spec=tmp_path / "s.json",
                             array="0-3%2")
    assert argv[:2] == ["sbatch", "--parsable"] and "--account=lab" in argv and "--mem=8G" in argv
    assert "--partition=gpu" in argv and "--nodes=2" in argv and "--time=1:00:00" in argv and "--array=0-3%2" in argv
    assert "--signal=B:USR1@120" in argv and "--no-requeue" in argv and "--qos" not in " ".join(argv)
    assert argv[-4:-2] == ["--constraint=a100 80gb", "--exclusive"]  # split like a command line, no shell
    program = tmp_path / "slurm_program.py"
    assert argv[-2:] == [str(program), str(tmp_path / "s.json")]
    assert program.read_text().startswith(f"#!{sys.executable}\n")


def test_more_than_one_process_runs_torchrun_across_the_nodes():
    job = {"id": "abc", "kind": "train", "out_dir": "/shared/run", "argv": [sys.executable, "-m", "part.cli", "train",
                                                                           "--config", "/shared/run/c.json"]}
    cell = slurm.cell_argv(job, {"nodes": 2, "gpus_per_node": 4})
    assert cell["argv"][:4] == ["srun", "--nodes=2", "--ntasks-per-node=1", "--kill-on-bad-exit=1"]
    run = cell["argv"][4:]
    assert run[run.index("--nnodes") + 1] == "2" and run[run.index("--nproc-per-node") + 1] == "4"
    assert run[run.index("--rdzv-endpoint") + 1] == f"{slurm.HEAD_NODE}:29400" and run[-3:-1] == ["train", "--config"]
    assert cell["resume_argv"][-3:-1] == ["resume", "/shared/run"]
    assert slurm.cell_argv(job, {"nodes": 1, "gpus_per_node": 1})["argv"] == job["argv"]  # one process: as is


def _job(store, tmp_path, **fields):
    job = {"id": "j1", "kind": "eval", "state": "running", "run_id": "r", "spec": {"executor": "slurm"},
           "argv": ["x"], "out_dir": str(tmp_path), "attempts": 1, "cancel_requested": 0, "created_at": 0.0,
           "scheduler_id": "7", **fields}
    store.insert(job)
    return store.get("j1")


@pytest.mark.parametrize("rc, squeue_state, state", [
    (0, "", "completed"), (2, "", "failed"), (None, "", "interrupted"), (75, "", "timeout"),
    (75, "FAILED", "timeout"), (None, "TIMEOUT", "timeout"), (None, "PREEMPTED", "preempted"),
    (None, "NODE_FAIL", "node_failure"), (143, "CANCELLED", "cancelled")])
def test_a_finished_job_is_told_by_squeue_or_once_forgotten_by_its_exit_code(tmp_path, rc, squeue_state, state):
    settings = load_settings(env={}, checkpoints=tmp_path)
    store = JobStore(tmp_path / "jobs.sqlite")
    executor = slurm.SlurmExecutor(settings, store, dict)
    job = _job(store, tmp_path)
    if rc is not None:
        executor.dir.mkdir(parents=True, exist_ok=True)
        executor.rc_path("j1").write_text(f"{rc}\n")
    executor._follow(job, squeue_state, "")
    assert store.get("j1")["state"] == state and store.get("j1")["exit_code"] == rc


def test_pending_jobs_carry_slurms_reason_and_an_old_database_gains_the_slurm_id_column(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:  # a database from before Slurm
        db.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, kind TEXT NOT NULL, state TEXT NOT NULL, run_id TEXT NOT NULL,"
                   " spec TEXT NOT NULL, argv TEXT NOT NULL, out_dir TEXT, pid INTEGER, pid_start INTEGER,"
                   " cancel_requested INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 1,"
                   " exit_code INTEGER, message TEXT, created_at REAL NOT NULL, started_at REAL, finished_at REAL,"
                   " updated_at REAL)")
    store = JobStore(path)
    executor = slurm.SlurmExecutor(load_settings(env={}, checkpoints=tmp_path), store, dict)
    executor._follow(_job(store, tmp_path, state="pending"), "PENDING", "Resources")
    assert store.get("j1")["state"] == "pending" and store.get("j1")["message"] == "waiting in Slurm: Resources"
    executor._follow(store.get("j1"), "RUNNING", "None")
    assert store.get("j1")["state"] == "running" and store.get("j1")["started_at"] is not None
