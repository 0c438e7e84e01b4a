"""Training jobs with N processes: validated, passed as --nproc, resumed as trained, cancelled whole."""

import os
import signal
import sys
import time

import pytest

from backend.services import job_specs
from backend.services.jobs import JobSupervisor
from backend.services.registry import Registry
from backend.settings import load_settings
from tests.backend.conftest import make_client
from tests.backend.test_jobs import _wait

TRAIN = {"kind": "train", "preset": "fmnist-part", "overrides": {"epochs": 1, "burn_in_epochs": 0, "subset": 64}}


def test_a_train_job_carries_nproc_to_the_command_line(tmp_path, monkeypatch):
    monkeypatch.setattr(job_specs, "max_nproc", lambda device: 4)
    settings = load_settings(env={}, checkpoints=tmp_path)
    req = job_specs.TrainJobRequest(**TRAIN, nproc=3, name="ddp")
    built = job_specs.train_job(req, settings, Registry(settings))
    assert built["argv"][-2:] == ["--nproc", "3"] and built["spec"]["nproc"] == 3
    single = job_specs.train_job(job_specs.TrainJobRequest(**TRAIN, name="one"), settings, Registry(settings))
    assert "--nproc" not in single["argv"] and single["spec"]["nproc"] == 1
    assert not (tmp_path / "ddp").exists()  # nothing is written until the supervisor accepts the job
    (tmp_path / "ddp").mkdir()
    (tmp_path / "ddp" / "config.json").write_text("{}")  # the trainer started: it wrote its config
    assert job_specs.resume_argv({**built, "id": "x"})[-3:] == ["resume", str(tmp_path / "ddp"), "--no-progress"]


@pytest.mark.parametrize("extra, words", [
    ({"nproc": 0}, "nproc"),
    ({"nproc": 10_000}, "exceeds the"),
    ({"overrides": {"epochs": 1, "nproc": 2}}, "the job's `nproc` field"),
])
def test_bad_nproc_starts_nothing(checkpoints, extra, words):
    with make_client(checkpoints) as c:
        r = c.post("/api/jobs", json={**TRAIN, **extra})
        assert r.status_code == 422 and words in r.json()["detail"], r.text
        assert c.get("/api/jobs").json() == []


WORKER = """
import os, signal, sys, time
import part.training.distributed as d
d._die_with_parent()
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a worker stuck in a collective ignores torchrun's SIGTERM
open(os.path.join(sys.argv[1], os.environ["RANK"]), "w").write(str(os.getpid()))
time.sleep(120)
"""


def test_cancel_stops_torchrun_and_workers_outside_its_process_group(tmp_path):
    """torchrun puts workers in sessions of their own; the kernel kills them when torchrun is killed."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
            str(tmp_path)]
    supervisor = JobSupervisor(load_settings(env={}, checkpoints=tmp_path / "ck"))
    fake = {"kind": "eval", "run_id": "ddp", "spec": {}, "out_dir": "/nonexistent", "argv": argv}
    job_id = supervisor.submit(fake)["id"]
    _wait(supervisor, job_id, ("running",))
    deadline = time.time() + 90
    while not all((tmp_path / r).exists() and (tmp_path / r).read_text() for r in "01"):
        assert time.time() < deadline, supervisor.log(job_id, 4000)
        time.sleep(0.2)
    workers = [int((tmp_path / r).read_text()) for r in "01"]
    assert all(os.getpgid(w) != supervisor.get(job_id)["pid"] for w in workers)  # out of the job's group
    assert supervisor.cancel(job_id)["state"] == "cancelled"
    deadline = time.time() + 10
    while any(_running(w) for w in workers):
        assert time.time() < deadline, "a worker outlived the cancelled job"
        time.sleep(0.1)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a killed worker may linger as a zombie until torchrun is reaped
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"
