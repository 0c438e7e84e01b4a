"""Jobs on a real Slurm cluster (munged, slurmctld, slurmd on this machine), through the real API.

Each job asks for both CPUs of the one node, so a second job waits in Slurm's queue (reason
Resources) while the first runs. Skipped, with the reason, where Slurm cannot be installed.
"""

import json
import os
import subprocess
import time

import pytest

from backend.services.executors import slurm
from tests.backend.conftest import make_client
from tests.backend.slurm_cluster import PARTITION, SlurmCluster, missing

pytestmark = pytest.mark.skipif(missing() is not None, reason=missing() or "")

TINY = {"epochs": 2, "burn_in_epochs": 1, "subset": 128, "eval_n": 32, "attack_steps": 1, "eval_steps": 1,
        "probe_count": 4, "batch_size": 64}
SLURM_SETTINGS = dict(executor="slurm", job_poll_s=0.3, slurm_cpus_per_task=2)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm")).start()
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)
    slurm._partitions.clear()
    try:
        yield cluster
    finally:
        subprocess.run(["scancel", "--full", f"--partition={PARTITION}"], capture_output=True)
        cluster.stop()
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old


def _train(c, name: str, epochs: int = 2, **fields) -> dict:
    r = c.post("/api/jobs", json={"kind": "train", "preset": "fmnist-part", "name": name,
                                  "overrides": {**TINY, "epochs": epochs}, **fields})
    assert r.status_code == 201, r.text
    return r.json()


def _watch(c, job_id: str, until, timeout: float = 120, seen: list | None = None) -> dict:
    """Poll the job until `until(view)`; every (state, epoch, message) seen is appended to `seen`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = c.get(f"/api/jobs/{job_id}").json()
        if seen is not None and (not seen or seen[-1] != (job["state"], job["epoch"], job["message"])):
            seen.append((job["state"], job["epoch"], job["message"]))
        if until(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} stayed {job['state']} ({job['message']}); seen {seen}")


def _ended(job: dict) -> bool:
    return job["state"] not in ("queued", "pending", "running")


@pytest.mark.parametrize("slurm_options, words", [
    ({"partition": "gpu-huge"}, f"accepted: {PARTITION}"),
    ({"nodes": 0}, "greater than or equal to 1"),
    ({"time_limit": "forever"}, "accepted: MM, MM:SS, HH:MM:SS"),
    ({"time_limit": "0:00"}, "no time at all"),
    ({"colour": "red"}, "colour"),
])
def test_bad_slurm_options_are_422s_that_say_what_is_accepted(cluster, checkpoints, slurm_options, words):
    with make_client(checkpoints, **SLURM_SETTINGS) as c:
        r = c.post("/api/jobs", json={"kind": "train", "preset": "fmnist-part", "name": "refused", "slurm": slurm_options})
        assert r.status_code == 422 and words in r.json()["detail"], r.text
        assert c.get("/api/jobs").json() == [] and not (checkpoints / "refused").exists()


def test_options_name_the_executors_and_local_jobs_refuse_slurm_options(cluster, checkpoints):
    with make_client(checkpoints) as c:
        executors = c.get("/api/options").json()["executors"]
        assert executors["default"] == "local" and executors["slurm"]["available"] is True
        assert executors["slurm"]["partitions"] == [PARTITION]
        assert executors["slurm"]["defaults"] == {"partition": None, "nodes": 1, "gpus_per_node": 0,
                                                  "time_limit": None, "requeue": False}
        r = c.post("/api/jobs", json={"kind": "train", "preset": "fmnist-part", "slurm": {"nodes": 2}})
        assert r.status_code == 422 and "need executor 'slurm'" in r.json()["detail"]


def test_jobs_wait_in_slurm_run_with_progress_complete_and_a_cancelled_one_resumes(cluster, checkpoints):
    with make_client(checkpoints, start_jobs=True, **SLURM_SETTINGS) as c:
        first = _train(c, "slurm-first")
        second = _train(c, "slurm-second", epochs=4)
        seen_first: list = []
        waiting = _watch(c, second["id"], lambda j: j["state"] == "pending" and "Resources" in (j["message"] or "")
                         or j["state"] == "pending" and "Priority" in (j["message"] or ""))
        assert waiting["executor"] == "slurm" and waiting["scheduler_id"].isdigit()
        done = _watch(c, first["id"], _ended, seen=seen_first)
        assert done["state"] == "completed", seen_first
        states = [s for s, _, _ in seen_first]
        assert "running" in states and states[-1] == "completed"
        assert any(s == "running" and e for s, e, _ in seen_first), f"no epoch progress while running: {seen_first}"
        assert "slurm-first" in [r["id"] for r in c.get("/api/runs").json()]
        log = c.get(f"/api/jobs/{first['id']}/log").text
        assert f"=== Slurm job {done['scheduler_id']}" in log and "epoch 2/2" in log

        # the second starts when the first leaves the node; cancel it after its first epoch, then resume
        _watch(c, second["id"], lambda j: j["state"] == "running" and (j["latest_metrics"] or {}).get("epoch", 0) >= 1)
        cancelled = c.post(f"/api/jobs/{second['id']}/cancel").json()
        cancelled = _watch(c, second["id"], _ended) if not _ended(cancelled) else cancelled
        assert cancelled["state"] == "cancelled" and "keeps its last complete epoch" in cancelled["message"]
        assert c.post(f"/api/jobs/{second['id']}/resume").json()["state"] == "queued"
        resumed = _watch(c, second["id"], _ended, timeout=180)
        assert resumed["state"] == "completed" and resumed["attempts"] == 2, resumed
        epochs = [row["epoch"] for row in c.get("/api/runs/slurm-second").json()["metrics"]]
        assert epochs == [1, 2, 3, 4]


def test_an_api_restarted_mid_job_finds_it_again_in_slurm(cluster, checkpoints):
    with make_client(checkpoints, start_jobs=True, **SLURM_SETTINGS) as c:
        job = _train(c, "slurm-restart", epochs=3)
        running = _watch(c, job["id"], lambda j: j["state"] == "running")
    with make_client(checkpoints, start_jobs=True, **SLURM_SETTINGS) as c:  # a new server: only the database
        again = c.get(f"/api/jobs/{job['id']}").json()
        assert again["state"] == "running" and again["scheduler_id"] == running["scheduler_id"]
        done = _watch(c, job["id"], _ended)
        assert done["state"] == "completed" and done["epoch"] == 3, done


@pytest.mark.slow  # waits on Slurm's time-limit check (about every 30 s): on a fast machine the run may end first
def test_a_job_at_its_time_limit_stops_at_an_epoch_end_and_resumes_to_completion(cluster, checkpoints):
    """Slurm's warning (USR1, 120 s before a 1-minute limit: at its first check, within ~30 s) stops
    the trainer after an epoch; resumed with more time, it continues from there to the last epoch."""
    epochs = 20  # one batch an epoch, but longer than 30 s in all: the warning comes before the end
    with make_client(checkpoints, start_jobs=True, **SLURM_SETTINGS) as c:
        r = c.post("/api/jobs", json={"kind": "train", "preset": "fmnist-part", "name": "slurm-limit",
                                      "overrides": {**TINY, "epochs": epochs, "subset": 64, "eval_n": 16},
                                      "slurm": {"time_limit": "1"}})
        job = r.json()
        stopped = _watch(c, job["id"], _ended, timeout=150)
        assert stopped["state"] == "timeout" and "time limit" in stopped["message"], (
            stopped["state"], stopped["message"], c.get(f"/api/jobs/{job['id']}/log").text[-3000:])
        assert 1 <= stopped["epoch"] < epochs and "time limit is near" in c.get("/api/runs/slurm-limit").json()["status"]["message"]
        bad = c.post(f"/api/jobs/{job['id']}/resume", json={"slurm": {"time_limit": "forever"}})
        assert bad.status_code == 422 and "accepted: MM" in bad.json()["detail"]
        again = c.post(f"/api/jobs/{job['id']}/resume", json={"slurm": {"time_limit": "30"}}).json()  # more time
        assert again["spec"]["slurm"]["time_limit"] == "30" and again["spec"]["slurm"]["nodes"] == 1
        ended = _watch(c, job["id"], _ended, timeout=150)
        assert ended["state"] == "completed", ended
        assert [row["epoch"] for row in c.get("/api/runs/slurm-limit").json()["metrics"]] == list(range(1, epochs + 1))
        assert c.get("/api/runs/slurm-limit").json()["status"]["state"] == "completed"


def test_a_sweep_on_slurm_is_one_job_array_of_ordinary_runs(cluster, checkpoints):
    from part.experiments import experiment_key
    from part.runs import RunDir

    grid = {"recipe": ["paper", "shuffled"], "seed": [0, 1]}
    overrides = {**TINY, "epochs": 1, "burn_in_epochs": 0}
    with make_client(checkpoints, start_jobs=True, **{**SLURM_SETTINGS, "slurm_cpus_per_task": 1}) as c:
        r = c.post("/api/sweeps", json={"preset": "fmnist-part", "name": "grid", "grid": grid, "overrides": overrides,
                                        "parallel": 2})
        assert r.status_code == 201, r.text
        sweep = r.json()
        ids = [cell["job"]["id"] for cell in sweep["cells"]]
        assert [cell["run_id"] for cell in sweep["cells"]] == [
            "grid.recipe-paper.seed-0", "grid.recipe-paper.seed-1", "grid.recipe-shuffled.seed-0",
            "grid.recipe-shuffled.seed-1"]
        done = [_watch(c, job_id, _ended, timeout=200) for job_id in ids]
        assert [j["state"] for j in done] == ["completed"] * 4, [(j["state"], j["message"]) for j in done]
        array = {j["scheduler_id"].split("_")[0] for j in done}
        assert len(array) == 1 and sorted(j["scheduler_id"].split("_")[1] for j in done) == ["0", "1", "2", "3"]
        assert c.get("/api/sweeps").json() == ["grid"]
        cells = c.get("/api/sweeps/grid").json()["cells"]
        assert [cell["job"]["state"] for cell in cells] == ["completed"] * 4
    keys = {json.dumps(experiment_key(RunDir(checkpoints / cell["run_id"]).config()), sort_keys=True) for cell in cells}
    assert len(keys) == 1  # recipe and seed are what a comparison is about: one experiment


def test_an_evaluation_job_runs_on_slurm_and_a_deleted_job_takes_its_slurm_log(cluster, checkpoints):
    with make_client(checkpoints, start_jobs=True, **SLURM_SETTINGS) as c:
        r = c.post("/api/jobs", json={"kind": "eval", "run": "part-tiny", "attacks": "clean,pgd1", "n": 16,
                                      "slurm": {"time_limit": "00:10:00"}})
        assert r.status_code == 201, r.text
        done = _watch(c, r.json()["id"], _ended)
        assert done["state"] == "completed" and set(done["latest_metrics"]) == {"clean", "pgd1"}, done
        log = checkpoints / ".jobs" / "logs" / f"slurm-{done['scheduler_id']}.log"
        assert log.exists() and "part.cli eval" in c.get(f"/api/jobs/{done['id']}/log").text
        assert c.delete(f"/api/jobs/{done['id']}").status_code == 204 and not log.exists()
