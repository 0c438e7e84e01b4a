"""Jobs: validation before any process starts, the queue, exit codes, cancel, restart reconciliation."""

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from backend.services import processes
from backend.services.jobs import JobSupervisor
from backend.settings import load_settings
from part.training.config import TrainConfig, preset
from tests.backend.conftest import make_client

TINY_TRAIN = {"kind": "train", "preset": "fmnist-part", "overrides": {"epochs": 2, "burn_in_epochs": 1, "subset": 128}}


def _fake(script: str, run_id: str = "fake") -> dict:
    """A job whose process is a few lines of Python instead of `part` (no torch import: quick)."""
    return {"kind": "eval", "run_id": run_id, "spec": {"attacks": ["clean"]}, "out_dir": "/nonexistent",
            "argv": [sys.executable, "-c", script]}


def _wait(supervisor: JobSupervisor, job_id: str, states: tuple, timeout: float = 20) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        supervisor.tick()
        job = supervisor.view(job_id)
        if job["state"] in states:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} stayed {supervisor.view(job_id)['state']}, expected {states}")


@pytest.fixture
def supervisor(tmp_path):
    return JobSupervisor(load_settings(env={}, checkpoints=tmp_path / "ck"))


def test_exit_codes_become_states(supervisor):
    ok = supervisor.submit(_fake("print('fine')", "a"))["id"]
    assert _wait(supervisor, ok, ("completed",))["exit_code"] == 0
    bad = supervisor.submit(_fake("import sys; print('part train: error: eps must be >= 0'); sys.exit(2)", "b"))["id"]
    failed = _wait(supervisor, bad, ("failed",))
    assert failed["exit_code"] == 2 and failed["message"] == "part train: error: eps must be >= 0"
    assert "eps must be" in supervisor.log(bad, 10_000)


def test_queue_holds_to_the_concurrency_limit_and_cancel_stops_the_group(supervisor):
    sleeper = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    first, second = (supervisor.submit(_fake(sleeper, name))["id"] for name in ("a", "b"))
    running = _wait(supervisor, first, ("running",))
    assert supervisor.view(second)["state"] == "queued"
    time.sleep(0.5)  # let the grandchild start
    cancelled = supervisor.cancel(first)
    assert cancelled["state"] == "cancelled"
    assert not processes.alive(running["pid"])
    with pytest.raises(ProcessLookupError):
        os.killpg(running["pid"], 0)  # the whole group, grandchild included, is gone
    assert _wait(supervisor, second, ("running",))["state"] == "running"
    supervisor.cancel(second)


def test_a_new_server_adopts_running_jobs_and_marks_vanished_ones_interrupted(tmp_path):
    settings = load_settings(env={}, checkpoints=tmp_path / "ck")
    old = JobSupervisor(settings)
    job_id = old.submit(_fake("import time; time.sleep(60)"))["id"]
    pid = _wait(old, job_id, ("running",))["pid"]
    done_id = old.submit(_fake("print('done')", "other"))["id"]
    old.stop()  # the old server is gone: its supervisor lock with it
    new = JobSupervisor(settings)  # a restarted server: no Popen handles, only the database
    new.tick()
    assert new.view(job_id)["state"] == "running"
    os.killpg(pid, signal.SIGKILL)
    old._children[job_id].wait()  # reap it, as init would once its parent server is gone
    interrupted = _wait(new, job_id, ("interrupted",))
    assert "resume it" in interrupted["message"]
    assert _wait(new, done_id, ("completed",))["exit_code"] == 0  # exit code read from its rc file


def test_resume_needs_a_run_folder_and_a_resumable_state(supervisor):
    job_id = supervisor.submit({**_fake("import sys; sys.exit(1)"), "kind": "train"})["id"]
    _wait(supervisor, job_id, ("failed",))
    with pytest.raises(Exception, match="nothing to resume"):
        supervisor.resume(job_id)
    ok = supervisor.submit(_fake("pass", "c"))["id"]
    _wait(supervisor, ok, ("completed",))
    with pytest.raises(Exception, match="only failed, interrupted, cancelled"):
        supervisor.resume(ok)


@pytest.mark.parametrize("body, status, words", [
    ({"kind": "train", "preset": "nope"}, 422, "accepted: fmnist-at"),
    ({"kind": "train", "preset": "fmnist-part", "overrides": {"eps": 3}}, 422, "fraction of the pixel range"),
    ({"kind": "train", "preset": "fmnist-part", "overrides": {"colour": "red"}}, 422, "unknown setting colour"),
    ({"kind": "train", "preset": "fmnist-part", "overrides": {"recipe": "magic"}}, 422, "accepted: paper"),
    ({"kind": "train", "preset": "fmnist-part", "name": "../escape"}, 422, "run ids are"),
    ({"kind": "train", "preset": "fmnist-part", "name": "part-tiny"}, 409, "already exists"),
    ({"kind": "train", "preset": "fmnist-part", "gpu": True}, 422, "gpu"),
    ({"kind": "paint"}, 422, "kind"),
    ({"kind": "eval", "run": "part-tiny", "attacks": "pgd,laser"}, 422, "unknown attack 'laser'"),
    ({"kind": "eval", "run": "ghost"}, 404, "no run 'ghost'"),
    ({"kind": "eval", "run": "part-tiny", "epoch": 7}, 404, "available: 1, 2"),
])
def test_bad_job_requests_start_nothing(checkpoints, body, status, words):
    with make_client(checkpoints) as c:
        r = c.post("/api/jobs", json=body)
        assert r.status_code == status and words in r.json()["detail"], r.text
        assert c.get("/api/jobs").json() == []


def test_job_api_lifecycle_without_starting_processes(checkpoints):
    with make_client(checkpoints) as c:  # no supervisor thread: jobs stay queued
        job = c.post("/api/jobs", json={**TINY_TRAIN, "name": "new-run"}).json()
        assert job["state"] == "queued" and job["run_id"] == "new-run" and job["epochs"] == 2
        again = c.post("/api/jobs", json={**TINY_TRAIN, "name": "new-run"})
        assert again.status_code == 409 and "already queued" in again.json()["detail"]
        evaluation = c.post("/api/jobs", json={"kind": "eval", "run": "part-tiny", "attacks": "clean,pgd-5"}).json()
        assert evaluation["spec"]["attacks"] == ["clean", "pgd5"] and evaluation["spec"]["epoch"] == 2
        assert [j["id"] for j in c.get("/api/jobs").json()] == [evaluation["id"], job["id"]]
        assert c.delete(f"/api/jobs/{job['id']}").status_code == 409
        assert c.post(f"/api/jobs/{job['id']}/cancel").json()["state"] == "cancelled"
        assert c.post(f"/api/jobs/{job['id']}/cancel").status_code == 409
        with c.stream("GET", f"/api/jobs/{job['id']}/events") as events:
            text = events.read().decode()
        assert text.startswith("event: job\ndata: ") and json.loads(text.split("data: ", 1)[1])["state"] == "cancelled"
        assert c.delete(f"/api/jobs/{job['id']}").status_code == 204
        assert c.get(f"/api/jobs/{job['id']}").status_code == 404
        assert c.get("/api/jobs/NOT-HEX").status_code == 422
        assert c.get(f"/api/jobs/{evaluation['id']}/log").text == ""


def test_eval_jobs_carry_corruption_files_maps_and_precision(checkpoints, tmp_path):
    files = tmp_path / "data" / "CIFAR-10-C"
    files.mkdir(parents=True)
    with make_client(checkpoints, data_dir=tmp_path / "data") as c:
        ok = c.post("/api/jobs", json={"kind": "eval", "run": "at-tiny", "attacks": "pgd20-map,corruptions",
                                       "map_run": "part-tiny", "map_eps": "8/255", "map_eps_low": 0.02,
                                       "corruption_files": str(files), "amp": "bf16"})
        assert ok.status_code == 201, ok.text
        argv = c.app.state.services.jobs.store.get(ok.json()["id"])["argv"]
        text = " ".join(argv)
        assert f"--corruption-files {files}" in text and "--map-run " in text and "--amp bf16" in text
        assert argv[argv.index("--map-run") + 1].endswith("part-tiny") and "--map-eps 0.03137" in text
        for body, status, words in (
                ({"corruption_files": "/etc"}, 422, "corruption_files '/etc' is outside"),
                ({"map_run": "ghost"}, 404, "no run 'ghost'"),
                ({"map_recipe": "magic"}, 422, "accepted: paper"),
                ({"map_eps_low": 2}, 422, "map_eps_low is a fraction"),
                ({"amp": "fp16"}, 422, "amp")):
            r = c.post("/api/jobs", json={"kind": "eval", "run": "at-tiny", "attacks": "pgd20-map", **body})
            assert r.status_code == status and words in r.json()["detail"], r.text


def test_a_part_job_whose_burn_in_fills_every_epoch_is_refused_with_what_is_accepted(checkpoints):
    with make_client(checkpoints) as c:
        r = c.post("/api/jobs", json={"kind": "train", "preset": "fmnist-part", "name": "all-burn-in",
                                      "overrides": {"epochs": 2}})  # the preset's burn-in is 3 epochs
        assert r.status_code == 422, r.text
        assert "burn_in_epochs (3) must be < epochs (2) for part=true" in r.json()["detail"]
        assert "accepted: burn_in_epochs 0..1, or part=false" in r.json()["detail"]
        assert c.get("/api/jobs").json() == [] and not (checkpoints / "all-burn-in").exists()
        at = c.post("/api/jobs", json={"kind": "train", "preset": "fmnist-at", "name": "plain-at",
                                       "overrides": {"epochs": 2}})
        assert at.status_code == 201, at.text  # AT has no burn-in to outlast
        c.post(f"/api/jobs/{at.json()['id']}/cancel")


def test_a_training_job_hands_its_config_over_as_one_file(checkpoints):
    with make_client(checkpoints) as c:
        job = c.post("/api/jobs", json={"kind": "train", "preset": "fmnist-part", "name": "handed",
                                        "overrides": {"epochs": 4, "eps_low": "20/255", "cam_methods": ["gradcam", "layercam"]}})
        assert job.status_code == 201, job.text
        argv = c.app.state.services.jobs.store.get(job.json()["id"])["argv"]
    assert "--set" not in argv and "--preset" not in argv
    handed = Path(argv[argv.index("--config") + 1])
    assert handed == checkpoints / "handed" / "requested_config.json"
    config = TrainConfig.from_dict(json.loads(handed.read_text()))
    assert config == preset("fmnist-part", epochs=4, eps_low=20 / 255, cam_methods="gradcam,layercam")


def test_eval_progress_counts_map_attacks_stored_under_their_map_run(tmp_path):
    from backend.services.progress import job_view

    out = tmp_path / "eval"
    out.mkdir()
    (out / "eval.json").write_text(json.dumps({"attacks": {"clean": {"accuracy": 0.8, "seconds": 0.25},
                                                           "pgd20-map@fmnist-part-s0": {"accuracy": 0.7}}}))
    job = {"id": "a", "kind": "eval", "state": "running", "run_id": "r", "out_dir": str(out),
           "spec": {"attacks": ["clean", "pgd20-map", "mma-map"], "epoch": 10}}
    view = job_view(job)
    assert view["progress"] == round(2 / 3, 4) and view["phase"] == "mma-map"
    assert view["latest_metrics"] == {"clean": 0.8, "pgd20-map": 0.7}
    assert view["attack_seconds"] == {"clean": 0.25}  # what each finished attack took: the dashboard's ETA


@pytest.mark.parametrize("fields, status, says", [
    ({"attacks": "clean", "map_eps": 0.05}, 422, "none was asked for"),
    ({"attacks": "pgd2-map", "map_run": "bed-at"}, 422, "trained on dataset fashion-mnist-clutter"),
    ({"attacks": "pgd2-map", "map_eps": 0.05, "map_eps_low": 0.08}, 422, "0 <= eps_low <= eps"),
    ({"attacks": "pgd2-map", "map_epoch": 7}, 404, "epoch 7"),
    ({"attacks": "pgd2-map", "map_run": "part-tiny", "map_eps_low": 0.05}, 201, "part-tiny"),
])
def test_eval_map_settings_are_checked_when_the_job_is_submitted(checkpoints, fields, status, says):
    """The -map attacks' settings are refused before the job is queued, as `part eval` would refuse them."""
    import json
    import shutil

    shutil.copytree(checkpoints / "at-tiny", checkpoints / "bed-at")
    config = json.loads((checkpoints / "bed-at" / "config.json").read_text()) | {"dataset": "fashion-mnist-clutter"}
    (checkpoints / "bed-at" / "config.json").write_text(json.dumps(config))
    with make_client(checkpoints) as c:
        r = c.post("/api/jobs", json={"kind": "eval", "run": "at-tiny", "n": 8, **fields})
        assert r.status_code == status, r.text
        assert says in (r.json()["spec"]["map_run"] if status == 201 else r.json()["detail"])
