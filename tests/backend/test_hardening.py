"""Regression corpus of the hardening work: every defect found by attacking a real server, in
several variants each. None of these requests may answer 5xx; each says what was wrong."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch

from backend.services.jobs import _cancelled_message
from part.runs import RunDir
from tests.backend.conftest import make_client, png, shirt

# -- 1b. a job reads datasets only under the server's data roots -------------------------------

@pytest.mark.parametrize("data_dir", ["/tmp", "/etc", "../../..", "/usr/share/datasets/../../../tmp"])
def test_a_job_may_not_read_datasets_outside_the_data_roots(checkpoints, tmp_path, data_dir):
    with make_client(checkpoints, data_dir=tmp_path / "data") as c:
        r = c.post("/api/jobs", json={"kind": "train", "preset": "cifar10-at", "name": "x",
                                      "overrides": {"data_dir": data_dir, "epochs": 1, "subset": 8}})
        assert r.status_code == 422, r.text
        assert "outside this server's data folders" in r.json()["detail"]
        assert str(tmp_path / "data") in r.json()["detail"]  # names the accepted roots
        assert c.get("/api/jobs").json() == []


def test_a_link_inside_a_data_root_that_leads_out_is_refused(checkpoints, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "escape").symlink_to("/tmp")
    with make_client(checkpoints, data_dir=tmp_path / "data") as c:
        r = c.post("/api/jobs", json={"kind": "train", "preset": "cifar10-at",
                                      "overrides": {"data_dir": str(tmp_path / "data" / "escape")}})
        assert r.status_code == 422 and "outside" in r.json()["detail"]
        inside = tmp_path / "data" / "cifar10"
        inside.mkdir()
        ok = c.post("/api/jobs", json={"kind": "train", "preset": "cifar10-at", "overrides": {"data_dir": str(inside)}})
        assert ok.status_code == 201, ok.text
        assert ok.json()["spec"]["overrides"]["data_dir"] == str(inside.resolve())


# -- 2. one bad run folder breaks nothing but itself --------------------------------------------

def _append(path: Path, text: str) -> None:
    with open(path, "a") as f:
        f.write(text)


CORRUPTIONS = {
    "metrics-number": lambda run: _append(run / "metrics.jsonl", "42\n"),
    "metrics-list": lambda run: _append(run / "metrics.jsonl", "[1, 2]\n"),
    "metrics-no-epoch": lambda run: _append(run / "metrics.jsonl", '{"loss": 1}\n'),
    "metrics-garbage": lambda run: _append(run / "metrics.jsonl", "\x00\x01{{\n"),
    "config-list": lambda run: (run / "config.json").write_text("[]"),
    "config-null": lambda run: (run / "config.json").write_text("null"),
    "config-bad-json": lambda run: (run / "config.json").write_text("{"),
    "config-wrong-types": lambda run: (run / "config.json").write_text(json.dumps({"epochs": "many", "eps": [1]})),
    "config-methods-number": lambda run: (run / "config.json").write_text(json.dumps({"cam_methods": 5})),
    "status-list": lambda run: (run / "status.json").write_text("[]"),
    "status-pid-text": lambda run: (run / "status.json").write_text(json.dumps({"state": "running", "pid": "abc"})),
    "status-state": lambda run: (run / "status.json").write_text(json.dumps({"state": 7})),
    "status-progress": lambda run: (run / "status.json").write_text(json.dumps({"progress": "half"})),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_a_broken_run_is_listed_as_broken_and_refused_with_its_reason(checkpoints, name):
    CORRUPTIONS[name](checkpoints / "at-tiny")
    with make_client(checkpoints) as c:
        listing = c.get("/api/runs")
        assert listing.status_code == 200
        runs = {r["id"]: r for r in listing.json()}
        assert runs["at-tiny"]["state"] == "broken" and runs["at-tiny"]["problem"]
        assert runs["part-tiny"]["state"] == "completed"  # the others work
        for r in (c.get("/api/runs/at-tiny"), c.get("/api/runs/at-tiny/probes"),
                  c.post("/api/explain", data={"run": "at-tiny", "probe": "0"}),
                  c.post("/api/compare", data={"runs": "at-tiny,part-tiny", "probe": "0"}),
                  c.post("/api/jobs", json={"kind": "eval", "run": "at-tiny"})):
            assert r.status_code == 409, r.text
            assert "at-tiny" in r.json()["detail"] and runs["at-tiny"]["problem"] in r.json()["detail"]
        assert c.post("/api/explain", data={"run": "part-tiny", "probe": "0"}).status_code == 200


def test_a_huge_pid_is_no_process_and_the_run_shows_interrupted(checkpoints):
    (checkpoints / "at-tiny" / "status.json").write_text(json.dumps({"state": "running", "pid": 10**20}))
    with make_client(checkpoints) as c:
        assert c.get("/api/runs/at-tiny").json()["state"] == "interrupted"


@pytest.mark.parametrize("report", ["[]", "null", "{", '"text"'])
def test_an_unreadable_evaluation_is_named_and_the_rest_served(checkpoints, report):
    folder = checkpoints / "part-tiny" / "eval" / "epoch_0002"
    folder.mkdir(parents=True)
    (folder / "eval.json").write_text(report)
    with make_client(checkpoints) as c:
        body = c.get("/api/runs/part-tiny").json()
    assert body["evaluations"] == [] and "eval/epoch_0002/eval.json" in body["problems"][0]


class Payload:
    def __reduce__(self):
        return (os.system, ("touch /tmp/part-hardening-pwned",))


def _probe_inputs(run: Path) -> Path:
    return run / "probes" / "inputs.pt"


PROBE_DAMAGE = {
    "missing-keys": lambda run: torch.save({"x": torch.zeros(4, 1, 28, 28)}, _probe_inputs(run)),
    "not-a-dict": lambda run: torch.save([1, 2], _probe_inputs(run)),
    "lengths-differ": lambda run: torch.save({"x": torch.zeros(4, 1, 28, 28), "y": torch.zeros(3, dtype=torch.long),
                                              "index": torch.zeros(4, dtype=torch.long)}, _probe_inputs(run)),
    "pickle": lambda run: _probe_inputs(run).write_bytes(pickle.dumps(Payload())),
    "garbage": lambda run: _probe_inputs(run).write_bytes(os.urandom(300)),
}


@pytest.mark.parametrize("name", list(PROBE_DAMAGE))
def test_damaged_probe_images_answer_409_and_never_run_code(checkpoints, name):
    Path("/tmp/part-hardening-pwned").unlink(missing_ok=True)
    PROBE_DAMAGE[name](checkpoints / "part-tiny")
    with make_client(checkpoints) as c:
        for r in (c.get("/api/runs/part-tiny/probes"), c.get("/api/runs/part-tiny/probes/0/image"),
                  c.post("/api/explain", data={"run": "part-tiny", "probe": "0"})):
            assert r.status_code == 409 and "probe images of run 'part-tiny' cannot be read" in r.json()["detail"]
        detail = c.get("/api/runs/part-tiny").json()
        assert detail["probe_count"] == 0 and "probe images" in detail["problems"][0]
        upload = c.post("/api/compare", data={"runs": "part-tiny"}, files={"file": ("s.png", png(shirt()))})
        assert upload.status_code == 200  # computed from the checkpoints instead
    assert not Path("/tmp/part-hardening-pwned").exists()


def test_fewer_stored_cams_than_probes_are_computed_instead(checkpoints):
    path = checkpoints / "part-tiny" / "probes" / "epoch_0002.pt"
    stored = torch.load(path, weights_only=True)
    torch.save({**stored, "cam": stored["cam"][:2]}, path)
    with make_client(checkpoints) as c:
        r = c.post("/api/compare", data={"runs": "part-tiny", "probe": "3", "epochs": "1,2"})
        assert r.status_code == 200, r.text
        first, second = r.json()["cells"]
        assert first["source"] == "stored" and second["source"] == "computed" and "unreadable" in second["message"]


# -- 3. bad checkpoints --------------------------------------------------------------------------

CHECKPOINT_DAMAGE = {
    "pickle": lambda p: p.write_bytes(pickle.dumps(Payload())),
    "random-bytes": lambda p: p.write_bytes(os.urandom(2048)),
    "empty": lambda p: p.write_bytes(b""),
    "text": lambda p: p.write_text("these are not weights\n"),
    "meta-list": lambda p: torch.save({**torch.load(p, weights_only=True), "meta": [1, 2]}, p),
    "classes-empty": lambda p: torch.save({**(c := torch.load(p, weights_only=True)),
                                           "meta": {**c["meta"], "classes": []}}, p),
    "unknown-model": lambda p: torch.save({**(c := torch.load(p, weights_only=True)),
                                           "meta": {**c["meta"], "model": "hal9000"}}, p),
    "wrong-shapes": lambda p: torch.save({**(c := torch.load(p, weights_only=True)),
                                          "model": {k: v[:1] if v.dim() else v for k, v in c["model"].items()}}, p),
    "model-not-dict": lambda p: torch.save({**torch.load(p, weights_only=True), "model": 3}, p),
    "link-to-passwd": lambda p: (p.unlink(), p.symlink_to("/etc/passwd")),
}


@pytest.mark.parametrize("name", list(CHECKPOINT_DAMAGE))
def test_a_checkpoint_that_cannot_be_read_answers_409_naming_it(checkpoints, name):
    Path("/tmp/part-hardening-pwned").unlink(missing_ok=True)
    CHECKPOINT_DAMAGE[name](checkpoints / "at-tiny" / "checkpoints" / "epoch_0002.pt")
    with make_client(checkpoints) as c:
        for r in (c.post("/api/explain", data={"run": "at-tiny", "probe": "0"}),
                  c.post("/api/attack", data={"run": "at-tiny", "epoch": "2", "probe": "0", "steps": "1"})):
            assert r.status_code == 409, r.text
            assert "checkpoint at-tiny/epoch 2 cannot be read" in r.json()["detail"]
        assert c.post("/api/explain", data={"run": "at-tiny", "epoch": "1", "probe": "0"}).status_code == 200
        cells = c.post("/api/compare", data={"runs": "at-tiny", "epochs": "1,2"},
                       files={"file": ("s.png", png(shirt()))}).json()["cells"]
        assert cells[0]["available"] and not cells[1]["available"] and "cannot be read" in cells[1]["message"]
    assert not Path("/tmp/part-hardening-pwned").exists()


# -- 4. overflow, wrong JSON types, NaN and infinity ---------------------------------------------

HUGE = "1" + "0" * 400 + "/7"


@pytest.mark.parametrize("field, value", [
    ("eps", HUGE), ("eps_low", HUGE), ("step_size", HUGE), ("weights", f"1,{HUGE}"), ("eps", "1e400"),
    ("eps", "nan"), ("eps_low", "-inf"), ("threshold", "1e400"), ("tau", "nan"), ("threshold", "inf"),
    ("epoch", "9" * 5000), ("index", "9" * 400), ("steps", "9" * 400), ("probe", "1e400"),
])
def test_huge_or_non_finite_form_numbers_answer_422_naming_the_field(client, field, value):
    data = {"run": "part-tiny", "probe": "0", field: value}
    if field == "weights":
        data.update(methods="gradcam,layercam", ensemble="true")
    for path in ("/api/explain", "/api/attack"):
        if field == "steps" and path == "/api/explain":
            continue
        r = client.post(path, data={**data, "steps": data.get("steps", "1")} if path == "/api/attack" else data)
        assert r.status_code in (404, 422), (path, r.text)
        assert field in r.json()["detail"], r.text


@pytest.mark.parametrize("overrides, words", [
    ({"cam_methods": 5}, "cam_methods"), ({"epochs": [1, 2]}, "epochs"), ({"eps": ["0.1"]}, "eps"),
    ({"lr_milestones": 2.5}, "lr_milestones"), ({"cam_weights": True}, "cam_weights"),
    ({"eps": HUGE}, "eps"), ({"epochs": 10**30}, "epochs"), ({"part": "maybe"}, "part"),
    ({"data_dir": 5}, "data_dir"), ({"seed": -1}, "seed"), ({"threshold": "inf"}, "threshold"),
])
def test_wrong_override_types_answer_422_naming_the_field(client, overrides, words):
    r = client.post("/api/jobs", json={"kind": "train", "preset": "fmnist-part", "overrides": overrides})
    assert r.status_code == 422, r.text
    assert words in r.json()["detail"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
@pytest.mark.parametrize("field", ["eps", "lr", "threshold", "eps_low", "tau"])
def test_nan_and_infinity_in_json_are_refused(client, literal, field):
    body = '{"kind": "train", "preset": "fmnist-part", "overrides": {"%s": %s}}' % (field, literal)
    r = client.post("/api/jobs", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and field in r.json()["detail"], r.text


# -- 5. model work is bounded; health never waits for it ----------------------------------------

def test_a_full_model_pool_answers_503_with_retry_after_and_health_still_answers(run_root):
    with make_client(run_root, model_concurrency=2) as c:
        slots = c.app.state.services.slots
        slots.busy = slots.limit  # as if two long attacks were running
        r = c.post("/api/attack", data={"run": "part-tiny", "probe": "0"})
        assert r.status_code == 503 and r.headers["retry-after"] == "1" and "PART_MODEL_CONCURRENCY" in r.json()["detail"]
        health = c.get("/api/health").json()
        assert health["model_requests"] == 2 and health["model_concurrency"] == 2
        slots.busy = 0
        assert c.post("/api/explain", data={"run": "part-tiny", "probe": "0"}).status_code == 200
        assert slots.busy == 0  # the slot is given back


# -- 6. no token: only this machine -------------------------------------------------------------

@pytest.mark.parametrize("client_host", ["10.1.2.3", "192.168.0.7", "2001:db8::1", "::ffff:10.0.0.1"])
def test_without_a_token_other_machines_are_refused_whatever_the_bind(run_root, client_host):
    app = make_client(run_root).app
    transport = httpx.ASGITransport(app=app, client=(client_host, 40000))

    async def ask():
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
            return [await c.get(path) for path in ("/api/runs", "/api/health", "/openapi.json")]

    import asyncio
    for r in asyncio.run(ask()):
        assert r.status_code == 403 and "PART_TOKEN" in r.json()["detail"] and client_host in r.json()["detail"]


@pytest.mark.parametrize("client_host", ["127.0.0.1", "127.8.9.1", "::1", "::ffff:127.0.0.1"])
def test_without_a_token_this_machine_is_served(run_root, client_host):
    app = make_client(run_root).app
    transport = httpx.ASGITransport(app=app, client=(client_host, 40000))

    async def ask():  # under a loopback name: a foreign Host is refused (test_dns_rebinding_...)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost:8000") as c:
            return await c.get("/api/runs")

    import asyncio
    assert asyncio.run(ask()).status_code == 200


def test_with_a_token_other_machines_need_it(run_root):
    app = make_client(run_root, token="t0k").app
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 40000))

    async def ask():
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
            return (await c.get("/api/runs"), await c.get("/api/runs", headers={"Authorization": "Bearer t0k"}))

    import asyncio
    without, with_token = asyncio.run(ask())
    assert without.status_code == 401 and with_token.status_code == 200


# -- 8. links under the checkpoints folder are not followed --------------------------------------

def test_a_run_folder_linked_from_outside_is_not_a_run(checkpoints, tmp_path):
    outside = tmp_path / "elsewhere"
    (checkpoints / "at-tiny").rename(outside)
    (checkpoints / "linked").symlink_to(outside)
    with make_client(checkpoints) as c:
        assert [r["id"] for r in c.get("/api/runs").json()] == ["part-tiny"]
        assert c.get("/api/runs/linked").status_code == 404
        assert c.post("/api/jobs", json={"kind": "eval", "run": "linked"}).status_code == 404


@pytest.mark.parametrize("target", ["/etc/passwd", "/etc/hostname"])
def test_linked_files_inside_a_run_are_not_served(checkpoints, target):
    folder = checkpoints / "part-tiny" / "eval" / "epoch_0002"
    folder.mkdir(parents=True)
    (folder / "eval.json").symlink_to(target)
    (checkpoints / "at-tiny" / "metrics.jsonl").unlink()
    (checkpoints / "at-tiny" / "metrics.jsonl").symlink_to(target)
    with make_client(checkpoints) as c:
        detail = c.get("/api/runs/part-tiny").json()
        assert detail["evaluations"] == [] and "outside the run folder" in detail["problems"][0]
        assert "root:" not in json.dumps(detail)
        runs = {r["id"]: r for r in c.get("/api/runs").json()}
        assert runs["at-tiny"]["state"] == "broken" and "outside the run folder" in runs["at-tiny"]["problem"]


def test_an_eval_folder_linked_out_of_the_run_is_refused(checkpoints, tmp_path):
    (tmp_path / "out").mkdir()
    (checkpoints / "part-tiny" / "eval").symlink_to(tmp_path / "out")
    with make_client(checkpoints) as c:
        r = c.post("/api/jobs", json={"kind": "eval", "run": "part-tiny", "attacks": "clean"})
        assert r.status_code == 409 and "outside the run folder" in r.json()["detail"]


def test_a_job_log_linked_elsewhere_is_not_served(checkpoints):
    with make_client(checkpoints) as c:
        job = c.post("/api/jobs", json={"kind": "eval", "run": "part-tiny", "attacks": "clean"}).json()
        supervisor = c.app.state.services.jobs
        log = supervisor.log_path(job["id"])
        log.parent.mkdir(parents=True, exist_ok=True)
        log.symlink_to("/etc/passwd")
        r = c.get(f"/api/jobs/{job['id']}/log")
        assert r.status_code == 409 and "root:" not in r.text


# -- 9 and 10: one error body; an unexpected error keeps the connection ---------------------------

def test_every_error_status_is_documented_with_one_error_body(client):
    schema = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            responses = operation["responses"]
            expected = {"500"} if path == "/api/health" else {"400", "403", "404", "409", "413", "422", "500"}
            assert expected <= set(responses), path
            for status in expected:
                assert responses[status]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert {"415", "503"} <= set(schema["paths"]["/api/explain"]["post"]["responses"])


def test_an_unexpected_error_is_a_json_500_and_the_connection_stays_usable(run_root):
    import http.client
    import threading

    import uvicorn

    app = make_client(run_root).app

    @app.get("/api/boom", include_in_schema=False)
    def boom():
        raise RuntimeError("planted")

    from tests.backend.test_server_process import free_port
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 30
        while not server.started and time.time() < deadline:
            time.sleep(0.05)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/api/boom")
        response = connection.getresponse()
        body = json.loads(response.read())
        assert response.status == 500 and "RuntimeError" in body["detail"]
        connection.request("GET", "/api/health")  # the same connection
        again = connection.getresponse()
        assert again.status == 200 and json.loads(again.read())["status"] == "ok"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# -- 11. texts that stay true --------------------------------------------------------------------

def test_a_new_state_clears_the_old_message(tmp_path):
    run = RunDir(tmp_path)
    run.write_status(state="interrupted", message="the job process stopped before finishing; resume it")
    run.write_status(state="running", epoch=3)
    assert "message" not in run.status()
    run.write_status(state="completed")
    assert run.status()["state"] == "completed" and "message" not in run.status()


def test_a_cancel_before_the_first_epoch_says_there_is_no_checkpoint(checkpoints, tmp_path):
    fresh = {"kind": "train", "out_dir": str(tmp_path / "fresh")}
    assert "before its first epoch" in _cancelled_message(fresh) and "last complete epoch" not in _cancelled_message(fresh)
    done = {"kind": "train", "out_dir": str(checkpoints / "at-tiny")}
    assert "last complete epoch (2)" in _cancelled_message(done)
    assert "kept in the evaluation's results" in _cancelled_message({"kind": "eval", "out_dir": str(tmp_path)})


def test_a_running_status_whose_pid_was_reused_shows_interrupted(checkpoints):
    status = checkpoints / "at-tiny" / "status.json"
    written = time.time() - 3600
    later = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])  # started after the write
    try:
        status.write_text(json.dumps({"state": "running", "pid": later.pid, "updated_at": written}))
        with make_client(checkpoints) as c:
            assert c.get("/api/runs/at-tiny").json()["state"] == "interrupted"
            status.write_text(json.dumps({"state": "running", "pid": later.pid, "updated_at": time.time()}))
            assert c.get("/api/runs/at-tiny").json()["state"] == "running"
    finally:
        later.kill()
        later.wait()


# -- 1, end to end: a planted CIFAR-10 folder under a data root fails the job and runs nothing -----

class Marker:
    def __reduce__(self):
        return (os.system, (f"touch {PLANTED_MARKER}",))


PLANTED_MARKER = "/tmp/part-hardening-planted-job"


def test_a_job_on_planted_cifar_batches_fails_cleanly_and_runs_nothing(checkpoints, tmp_path):
    Path(PLANTED_MARKER).unlink(missing_ok=True)
    folder = tmp_path / "data" / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps({b"data": Marker(), b"labels": [0]}))
    with make_client(checkpoints, data_dir=tmp_path / "data", start_jobs=True) as c:
        job = c.post("/api/jobs", json={"kind": "train", "preset": "cifar10-at", "name": "planted",
                                        "overrides": {"data_dir": str(tmp_path / "data" / "cifar10"), "epochs": 1,
                                                      "subset": 8, "device": "cpu"}}).json()
        deadline = time.time() + 120
        while c.get(f"/api/jobs/{job['id']}").json()["state"] in ("queued", "running") and time.time() < deadline:
            time.sleep(0.5)
        view = c.get(f"/api/jobs/{job['id']}").json()
        log = c.get(f"/api/jobs/{job['id']}/log").text
    assert view["state"] == "failed" and "not a CIFAR-10 batch" in log, (view, log[-2000:])
    assert not Path(PLANTED_MARKER).exists()


# -- 6, end to end: the documented uvicorn entry point on 0.0.0.0 serves only this machine ---------

def _outside_address() -> str | None:
    import socket

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.123", 9))  # no packet is sent: this only picks the outgoing interface
            address = s.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address


def test_uvicorn_factory_on_all_interfaces_refuses_other_addresses_without_a_token(run_root, tmp_path):
    import shutil

    from tests.backend.test_server_process import free_port

    address = _outside_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to connect from")
    root = tmp_path / "checkpoints"
    shutil.copytree(run_root, root)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PART_")} | {"PART_CHECKPOINTS": str(root)}
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "backend.app:factory", "--host", "0.0.0.0",
                               "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                local = httpx.get(f"http://127.0.0.1:{port}/api/runs", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.3)
        assert local.status_code == 200
        remote = httpx.get(f"http://{address}:{port}/api/runs", timeout=10)
        assert remote.status_code == 403 and "PART_TOKEN" in remote.json()["detail"]
    finally:
        server.terminate()
        server.wait(10)
