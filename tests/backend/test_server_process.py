"""A real `part serve` process: a training job runs to completion and survives a server crash; a job
process killed mid-epoch is found interrupted and resumes to the end from its last checkpoint."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from backend.services.job_store import JobStore

TINY = {"subset": 128, "epochs": 2, "burn_in_epochs": 1, "eval_n": 32, "attack_steps": 1, "eval_steps": 1,
        "probe_count": 4, "batch_size": 64}
LONGER = {**TINY, "subset": 768, "epochs": 3, "attack_steps": 2}  # about a second per epoch, or more


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, root: Path, log: Path, env: dict[str, str] | None = None):
        self.root, self.log, self.port, self.process = root, log, free_port(), None
        self.extra_env = env or {}

    def start(self) -> "Server":
        env = {k: v for k, v in os.environ.items() if not k.startswith("PART_")}
        env["OMP_NUM_THREADS"] = "1"  # the server's jobs inherit it: 2 shared cores, several processes
        env.update(self.extra_env)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "part.cli", "serve", "--port", str(self.port), "--checkpoints", str(self.root)],
                stdout=log, stderr=subprocess.STDOUT, env=env)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        deadline = time.time() + 90
        while time.time() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-2000:]
            try:
                if self.client.get("/api/health").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError("the server did not answer /api/health in 90 s")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)  # a crash: no shutdown hooks run
        self.process.wait(10)
        self.client.close()

    def wait_job(self, job_id: str, done, timeout: float = 240, every: float = 0.5) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            job = self.client.get(f"/api/jobs/{job_id}").json()
            if done(job):
                return job
            time.sleep(every)
        raise AssertionError(f"job {job_id} did not get there in {timeout} s; last: {job}")


@pytest.fixture
def server(tmp_path):
    servers, root = [], tmp_path / "checkpoints"

    def start() -> Server:
        servers.append(Server(root, tmp_path / "server.log").start())
        return servers[-1]

    yield start
    for s in servers:
        if s.process.poll() is None:
            s.process.terminate()
            s.process.wait(10)
    if (root / ".jobs" / "jobs.sqlite").exists():  # a failed test may leave a job running: stop it
        for job in JobStore(root / ".jobs" / "jobs.sqlite").all(("running",)):
            try:
                os.killpg(job["pid"], signal.SIGKILL)
            except (ProcessLookupError, TypeError):
                pass


def test_serve_refuses_an_open_host_without_a_token(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PART_")}
    result = subprocess.run([sys.executable, "-m", "part.cli", "serve", "--host", "0.0.0.0", "--checkpoints",
                             str(tmp_path)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "set PART_TOKEN" in result.stderr


def test_jobs_survive_server_crashes_and_resume_after_a_killed_process(server):
    api = server()
    assert "swagger" in api.client.get("/docs").text.lower()
    assert "/api/explain" in api.client.get("/openapi.json").json()["paths"]
    job = api.client.post("/api/jobs", json={"kind": "train", "preset": "fmnist-part", "overrides": TINY,
                                             "name": "e2e-tiny"}).json()
    done = api.wait_job(job["id"], lambda j: j["state"] not in ("queued", "running"))
    assert done["state"] == "completed", api.client.get(f"/api/jobs/{job['id']}/log").text
    assert done["progress"] == 1.0 and done["latest_metrics"]["epoch"] == 2
    log = api.client.get(f"/api/jobs/{job['id']}/log").text  # what the job panel's log tail shows
    assert "epoch 1/2 burn-in: 2 batches" in log and "epoch 2/2 part: train loss " in log

    api.kill()
    api = server()  # a new server process over the same folder
    assert api.client.get(f"/api/jobs/{job['id']}").json()["state"] == "completed"
    run = api.client.get("/api/runs/e2e-tiny").json()
    assert run["epochs"] == [1, 2] and run["state"] == "completed" and [m["epoch"] for m in run["metrics"]] == [1, 2]
    explained = api.client.post("/api/explain", data={"run": "e2e-tiny", "probe": "0"})
    assert explained.status_code == 200 and explained.json()["epoch"] == 2

    longer = api.client.post("/api/jobs", json={"kind": "train", "preset": "fmnist-part", "overrides": LONGER,
                                                "name": "e2e-longer"}).json()
    mid = api.wait_job(longer["id"], lambda j: j["state"] not in ("queued", "running")
                       or (j["epoch"] == 2 and j["phase"] in ("mask-refresh", "part")),
                       every=0.1)
    assert mid["state"] == "running", mid
    os.killpg(mid["pid"], signal.SIGKILL)  # the job's process group, not through the API
    interrupted = api.wait_job(longer["id"], lambda j: j["state"] != "running", timeout=30)
    assert interrupted["state"] == "interrupted" and "resume" in interrupted["message"]
    run = api.client.get("/api/runs/e2e-longer").json()
    assert run["epochs"] in ([1], [1, 2]) and run["state"] == "interrupted"  # [1, 2]: killed while saving

    resumed = api.client.post(f"/api/jobs/{longer['id']}/resume").json()
    assert resumed["state"] == "queued" and resumed["attempts"] == 2
    finished = api.wait_job(longer["id"], lambda j: j["state"] not in ("queued", "running"))
    assert finished["state"] == "completed", api.client.get(f"/api/jobs/{longer['id']}/log").text[-2000:]
    run = api.client.get("/api/runs/e2e-longer").json()
    assert run["epochs"] == [1, 2, 3] and [m["epoch"] for m in run["metrics"]] == [1, 2, 3]
    assert "attempt 2" in api.client.get(f"/api/jobs/{longer['id']}/log").text
