"""GET /api/health, /api/runs, /api/runs/{id} and probe images."""

import io
import os
import json
import shutil

from PIL import Image

from backend.settings import load_settings
from tests.backend.conftest import make_client


def test_health_reports_runs_and_device(client):
    body = client.get("/api/health").json()
    assert body["status"] == "ok" and body["runs"] == 2 and body["device"] == "cpu" and body["auth"] is False
    assert body["runs_without_checkpoint"] == 0
    assert body["max_nproc"] == (os.cpu_count() or 1)  # no GPU here: a training job may use every core


def test_health_counts_a_cancelled_run_without_a_checkpoint_apart(checkpoints):
    from part.runs import RunDir

    empty = RunDir(checkpoints / "cancelled-early")  # a training cancelled before its first epoch finished
    empty.write_config(json.loads((checkpoints / "at-tiny" / "config.json").read_text()))
    empty.write_status(state="cancelled", message="cancelled before its first epoch finished")
    with make_client(checkpoints) as c:
        body = c.get("/api/health").json()
        assert body["runs"] == 2 and body["runs_without_checkpoint"] == 1
        assert "cancelled-early" in {r["id"] for r in c.get("/api/runs").json()}  # still listed, with its state


def test_runs_list_the_run_folders_with_their_latest_metrics(client):
    runs = {r["id"]: r for r in client.get("/api/runs").json()}
    assert set(runs) == {"part-tiny", "at-tiny"}
    assert runs["part-tiny"]["part"] is True and runs["at-tiny"]["part"] is False
    assert runs["part-tiny"]["epochs"] == [1, 2] and runs["part-tiny"]["state"] == "completed"
    assert runs["at-tiny"]["latest"]["epoch"] == 2 and "test_pgd_acc" in runs["at-tiny"]["latest"]


def test_run_detail_has_config_metrics_and_evaluations(checkpoints):
    report = {"format": "part-eval/1", "epoch": 2, "indices": list(range(50)),
              "attacks": {"clean": {"accuracy": 0.5, "correct": [1, 0]},
                          "checks": {"passed": True, "checks": [{"name": "unbounded", "passed": True}]}}}
    (checkpoints / "part-tiny" / "eval" / "epoch_0002").mkdir(parents=True)
    (checkpoints / "part-tiny" / "eval" / "epoch_0002" / "eval.json").write_text(json.dumps(report))
    with make_client(checkpoints) as c:
        body = c.get("/api/runs/part-tiny").json()
    assert body["config"]["recipe"] == "paper" and body["config"]["burn_in_epochs"] == 1
    assert [m["epoch"] for m in body["metrics"]] == [1, 2] and body["probe_count"] == 4
    (evaluation,) = body["evaluations"]
    assert evaluation["name"] == "epoch_0002" and evaluation["attacks"]["clean"] == {"accuracy": 0.5}
    assert "indices" not in evaluation  # per-image lists stay out of the listing
    assert evaluation["attacks"]["checks"]["checks"] == [{"name": "unbounded", "passed": True}]


def test_new_runs_appear_without_a_restart(checkpoints):
    with make_client(checkpoints) as c:
        assert len(c.get("/api/runs").json()) == 2
        shutil.copytree(checkpoints / "at-tiny", checkpoints / "copied-run")
        (checkpoints / "not-a-run").mkdir()
        assert {r["id"] for r in c.get("/api/runs").json()} == {"part-tiny", "at-tiny", "copied-run"}


def test_a_running_run_whose_process_is_gone_shows_interrupted(checkpoints):
    status = checkpoints / "at-tiny" / "status.json"
    status.write_text(json.dumps({"state": "running", "pid": 2**22 + 12345, "epoch": 1}))
    with make_client(checkpoints) as c:
        assert c.get("/api/runs/at-tiny").json()["state"] == "interrupted"


def test_unknown_and_malformed_run_ids_are_refused(client):
    missing = client.get("/api/runs/nope")
    assert missing.status_code == 404 and "known runs: at-tiny, part-tiny" in missing.json()["detail"]
    for bad in ("..", "a..b", ".hidden", "x" * 101):
        r = client.get(f"/api/runs/{bad}")
        assert r.status_code in (404, 422) and r.json()["detail"]
    assert "run ids are" in client.get("/api/runs/a..b").json()["detail"]


def test_probe_images_list_and_png(client):
    probes = client.get("/api/runs/part-tiny/probes").json()
    assert len(probes) == 4 and [p["label"] for p in probes] == [0, 1, 2, 3]  # first test image of each class
    r = client.get("/api/runs/part-tiny/probes/1/image")
    assert r.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).size == (28, 28)
    assert client.get("/api/runs/part-tiny/probes/4/image").status_code == 404


def test_settings_refuse_an_open_host_without_a_token():
    import pytest

    with pytest.raises(ValueError, match="PART_TOKEN"):
        load_settings(env={"PART_HOST": "0.0.0.0"})
    assert load_settings(env={"PART_HOST": "0.0.0.0", "PART_TOKEN": "t"}).host == "0.0.0.0"
    with pytest.raises(ValueError, match="PART_PORT='x'"):
        load_settings(env={"PART_PORT": "x"})
