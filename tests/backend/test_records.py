"""Issue 23, "nothing lost, nothing starved": records a refused request cannot overwrite, one supervisor
per checkpoints folder, bounded validation, a Host and Origin check, paged jobs, ranges without back
doors, resume messages that keep their word and /api/theory's infinities. Numbered as in the issue."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from backend.services import job_specs
from backend.services.jobs import JobSupervisor, _cancelled_message
from backend.settings import load_settings
from part.runs import RunDir
from tests.backend.conftest import make_client, png, shirt

HUGE = "1" + "0" * 400 + "/7"


def _train(name: str, **overrides) -> dict:
    return {"kind": "train", "preset": "fmnist-part", "name": name,
            "overrides": {"subset": 128, "burn_in_epochs": 0, **overrides}}


# -- 1. a refused submission never touches the disk ---------------------------------------------

def test_a_refused_submission_leaves_the_queued_jobs_config_as_it_was(checkpoints):
    with make_client(checkpoints) as c:  # no supervisor thread: the first job stays queued
        first = c.post("/api/jobs", json=_train("victim", eps=0.1, epochs=1))
        assert first.status_code == 201, first.text
        handed = checkpoints / "victim" / "requested_config.json"
        before = handed.read_bytes()
        again = c.post("/api/jobs", json=_train("victim", eps=0.2, epochs=3, lr=0.5))
        assert again.status_code == 409 and "already queued" in again.json()["detail"]
        assert handed.read_bytes() == before  # the queued job trains with what its record says
        assert json.loads(before)["epochs"] == 1 and json.loads(before)["eps"] == 0.1
        # cancelled before it started, the job still owns its folder: a new submission may not take it
        assert c.post(f"/api/jobs/{first.json()['id']}/cancel").json()["state"] == "cancelled"
        taken = c.post("/api/jobs", json=_train("victim", eps=0.2, epochs=3))
        assert taken.status_code == 409 and "owns the run folder" in taken.json()["detail"], taken.text
        assert handed.read_bytes() == before
        # a request refused for its config writes nothing at all
        bad = c.post("/api/jobs", json=_train("never", eps_low=0.5, eps=0.1))
        assert bad.status_code == 422 and not (checkpoints / "never").exists()


def test_a_submission_whose_record_cannot_be_written_leaves_no_folder(checkpoints, monkeypatch):
    with make_client(checkpoints) as c:
        store = c.app.state.services.jobs.store

        def broken(job, db=None):
            raise OSError("disk full")
        monkeypatch.setattr(store, "insert", broken)
        r = c.post("/api/jobs", json=_train("half", epochs=1))
        assert r.status_code == 500 and not (checkpoints / "half").exists()


# -- 2. an evaluation never destroys another ----------------------------------------------------

def test_an_evaluation_job_with_another_n_gets_a_folder_of_its_own(checkpoints):
    stored = checkpoints / "part-tiny" / "eval" / "epoch_0002"
    stored.mkdir(parents=True)
    (stored / "eval.json").write_text(json.dumps({"n": 1000, "seed": 0, "attacks": {"clean": {"accuracy": 0.9, "n": 1000}}}))
    before = (stored / "eval.json").read_bytes()
    with make_client(checkpoints) as c:
        quick = c.post("/api/jobs", json={"kind": "eval", "run": "part-tiny", "attacks": "clean", "n": 10}).json()
        same = c.post("/api/jobs", json={"kind": "eval", "run": "part-tiny", "attacks": "pgd20", "n": 1000}).json()
        store = c.app.state.services.jobs.store
        quick_out, same_out = store.get(quick["id"])["out_dir"], store.get(same["id"])["out_dir"]
        view = c.get(f"/api/jobs/{quick['id']}").json()
    assert Path(quick_out).name == "epoch_0002-n10" and Path(same_out).name == "epoch_0002"
    assert view["latest_metrics"] is None  # not the n=1000 clean accuracy of the other evaluation
    assert (stored / "eval.json").read_bytes() == before


def test_evaluations_queued_for_one_folder_never_write_it_at_once(checkpoints):
    with make_client(checkpoints) as c:  # the folder is still empty: both would have chosen it
        first = c.post("/api/jobs", json={"kind": "eval", "run": "at-tiny", "attacks": "clean", "n": 1000})
        other = c.post("/api/jobs", json={"kind": "eval", "run": "at-tiny", "attacks": "clean", "n": 10})
        again = c.post("/api/jobs", json={"kind": "eval", "run": "at-tiny", "attacks": "pgd20", "n": 1000})
        store = c.app.state.services.jobs.store
        argv = store.get(other.json()["id"])["argv"]
    assert first.status_code == other.status_code == 201
    assert Path(store.get(first.json()["id"])["out_dir"]).name == "epoch_0002"
    assert Path(argv[argv.index("--out") + 1]).name == "epoch_0002-n10"  # its own folder, not the other's
    assert again.status_code == 409 and "wait for it" in again.json()["detail"]


# -- 3. one supervisor per checkpoints folder ---------------------------------------------------

def _marking(marks: Path, run_id: str) -> dict:
    """A quick job that appends its id to `marks` each time it is started."""
    script = f"import time; open({str(marks)!r}, 'a').write({run_id!r} + '\\n'); time.sleep(0.2)"
    return {"kind": "eval", "run_id": run_id, "spec": {"attacks": ["clean"]}, "out_dir": "/nonexistent",
            "argv": [sys.executable, "-c", script]}


def test_two_supervisors_on_one_folder_launch_each_job_once(tmp_path):
    settings = load_settings(env={}, checkpoints=tmp_path / "ck", job_concurrency=3)
    one, two = JobSupervisor(settings), JobSupervisor(settings)
    marks = tmp_path / "marks"
    ids = [one.submit(_marking(marks, f"r{i}"))["id"] for i in range(12)]
    stop = time.time() + 60

    def spin(supervisor):
        while time.time() < stop and any(supervisor.store.get(i)["state"] in ("queued", "running") for i in ids):
            supervisor.tick()
            time.sleep(0.01)

    threads = [threading.Thread(target=spin, args=(s,)) for s in (one, two)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    started = marks.read_text().split()
    assert sorted(started) == sorted(f"r{i}" for i in range(12)), started  # each job once
    assert {one.store.get(i)["state"] for i in ids} == {"completed"}
    assert one.supervising != two.supervising  # exactly one holds the folder's lock
    one.stop(), two.stop()


def test_launching_is_a_compare_and_set_on_the_queued_state(tmp_path):
    supervisor = JobSupervisor(load_settings(env={}, checkpoints=tmp_path / "ck"))
    marks = tmp_path / "marks"
    job = supervisor.submit(_marking(marks, "once"))
    stale = supervisor.store.get(job["id"])  # what a second process read while the job was queued
    supervisor.tick()
    supervisor._launch(stale)  # it tries to start the job from its stale copy
    deadline = time.time() + 20
    while supervisor.store.get(job["id"])["state"] != "completed" and time.time() < deadline:
        supervisor.tick()
        time.sleep(0.05)
    assert marks.read_text().split() == ["once"]


def test_a_second_server_on_the_folder_serves_reads_and_says_it_is_not_supervising(checkpoints):
    with make_client(checkpoints, start_jobs=True) as first, make_client(checkpoints, start_jobs=True) as second:
        a, b = first.get("/api/health").json(), second.get("/api/health").json()
        assert a["supervising"] is True and b["supervising"] is False
        assert b["supervisor_pid"] == os.getpid()  # the holder wrote its pid (here: the same test process)
        assert second.get("/api/runs").status_code == 200
    with make_client(checkpoints, start_jobs=True) as third:  # both gone: the next one supervises
        assert third.get("/api/health").json()["supervising"] is True


# -- 4. validation costs what the request is worth ----------------------------------------------

def test_a_full_house_of_submissions_answers_503_and_health_still_answers(checkpoints):
    with make_client(checkpoints) as c:
        slots = c.app.state.services.submissions
        slots.busy = slots.limit
        try:
            r = c.post("/api/jobs", json=_train("busy", epochs=1))
            assert r.status_code == 503 and r.headers["Retry-After"] == "1" and "PART_SUBMIT_CONCURRENCY" in r.text
            assert c.get("/api/health").status_code == 200
        finally:
            slots.busy = 0
        assert c.post("/api/jobs", json=_train("busy", epochs=1)).status_code == 201


def test_a_hostile_but_valid_schedule_is_checked_without_visiting_every_epoch(client, monkeypatch):
    from part.training import schedules

    calls = {"n": 0}
    value = schedules.Schedule.value

    def counted(self, epoch, constant):
        calls["n"] += 1
        return value(self, epoch, constant)

    monkeypatch.setattr(schedules.Schedule, "value", counted)
    eps = "step:0.1:" + ":".join(f"{e}=0.1" for e in range(2, 462)) + ":99999=0.01"
    low = "step:0.05:" + ":".join(f"{e}=0.05" for e in range(2, 462))
    r = client.post("/api/jobs", json=_train("hostile", epochs=100_000, eps_schedule=eps, eps_low_schedule=low))
    assert r.status_code == 422 and "at epoch 99999" in r.json()["detail"], r.text
    assert calls["n"] < 10_000  # O(steps): epochs x steps would be 46 million


# -- 6. overflow is a 422, never a 500 ----------------------------------------------------------

@pytest.mark.parametrize("field", ["eps_schedule", "eps_low_schedule", "tau_schedule", "threshold_schedule"])
def test_a_huge_fraction_in_a_schedule_answers_422(client, field):
    r = client.post("/api/jobs", json=_train("huge", **{field: f"step:0.01:2={HUGE}"}))
    assert r.status_code == 422 and field in r.json()["detail"] and "characters" in r.json()["detail"], r.text


def test_a_huge_fraction_in_an_eps_sweep_answers_422(client):
    r = client.post("/api/jobs", json={"kind": "eval", "run": "part-tiny", "attacks": f"pgd20@0.1,{HUGE}"})
    assert r.status_code == 422 and "eps" in r.json()["detail"], r.text


# -- 7. a job named after a file of the root ----------------------------------------------------

@pytest.mark.parametrize("name", ["README.md", "shipped.json"])
def test_a_job_named_after_a_file_in_the_root_answers_409(checkpoints, name):
    (checkpoints / name).write_text("not a run\n")
    with make_client(checkpoints) as c:
        r = c.post("/api/jobs", json=_train(name, epochs=1))
    assert r.status_code == 409 and f"'{name}' is a file" in r.json()["detail"], r.text
    assert (checkpoints / name).read_text() == "not a run\n"


# -- 8. Host and Origin, as a notebook server checks them ---------------------------------------

@pytest.mark.parametrize("path", ["/api/runs", "/api/health", "/api/jobs"])
def test_dns_rebinding_hosts_are_refused(client, path):
    r = client.get(path, headers={"Host": "rebind.attacker.example"})
    assert r.status_code == 403 and "rebind.attacker.example" in r.json()["detail"], r.text


@pytest.mark.parametrize("host", ["localhost:8000", "127.0.0.1:8000", "[::1]:8000", "localhost", "app.localhost:1"])
def test_loopback_hosts_are_served(client, host):
    assert client.get("/api/runs", headers={"Host": host}).status_code == 200


def test_configured_hosts_are_served_and_a_token_lifts_the_host_check(run_root):
    with make_client(run_root, allowed_hosts="studio.lan") as c:
        assert c.get("/api/runs", headers={"Host": "studio.lan:8000"}).status_code == 200
        assert c.get("/api/runs", headers={"Host": "other.lan"}).status_code == 403
    with make_client(run_root, token="t0k") as c:  # a rebinding page has no token
        r = c.get("/api/runs", headers={"Host": "backend:8000", "Authorization": "Bearer t0k"})
        assert r.status_code == 200


def test_a_cross_site_post_is_refused_and_the_servers_own_pages_are_not(client):
    form = {"run": "part-tiny", "probe": "0", "steps": "1"}
    foreign = client.post("/api/attack", data=form, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403 and "evil.example" in foreign.json()["detail"]
    assert client.post("/api/attack", data=form, headers={"Origin": "null"}).status_code == 403
    for origin in ({"Origin": "http://testserver"}, {}):  # its own page (/docs), or a script
        assert client.post("/api/attack", data=form, headers=origin).status_code == 200
    assert client.delete("/api/jobs/abc", headers={"Origin": "https://evil.example"}).status_code == 403
    assert client.get("/api/runs", headers={"Origin": "https://evil.example"}).status_code == 200  # unreadable to it


# -- 9. paged jobs, cached progress, pruning ----------------------------------------------------

def _record(i: int, state: str, out_dir: str, finished_at: float | None) -> dict:
    return {"id": f"{i:012x}", "kind": "eval", "state": state, "run_id": "part-tiny", "spec": {"attacks": ["clean"]},
            "argv": ["true"], "out_dir": out_dir, "attempts": 1, "cancel_requested": 0, "created_at": 1000.0 + i,
            "updated_at": 1000.0 + i, "finished_at": finished_at}


def test_jobs_are_paged_newest_first_and_progress_is_read_once(checkpoints, monkeypatch):
    out = checkpoints / "part-tiny" / "eval" / "epoch_0002"
    out.mkdir(parents=True)
    (out / "eval.json").write_text(json.dumps({"attacks": {"clean": {"accuracy": 0.5}}}))
    with make_client(checkpoints) as c:
        store = c.app.state.services.jobs.store
        for i in range(150):
            store.insert(_record(i, "completed", str(out), 1000.0 + i))
        page = c.get("/api/jobs")
        assert page.status_code == 200 and page.headers["X-Total-Count"] == "150"
        ids = [j["id"] for j in page.json()]
        assert len(ids) == 100 and ids[0] == f"{149:012x}" and ids == sorted(ids, reverse=True)
        rest = c.get("/api/jobs", params={"limit": 100, "offset": 100}).json()
        assert [j["id"] for j in rest] == [f"{i:012x}" for i in range(49, -1, -1)]
        assert page.json()[0]["latest_metrics"] == {"clean": 0.5}

        from part.runs import EvalDir
        reads = {"n": 0}
        results = EvalDir.results

        def counted(self):
            reads["n"] += 1
            return results(self)
        monkeypatch.setattr(EvalDir, "results", counted)
        assert c.get("/api/jobs").status_code == 200 and reads["n"] == 0  # nothing changed: nothing read
        (out / "eval.json").write_text(json.dumps({"attacks": {"clean": {"accuracy": 0.75}}}))
        assert c.get("/api/jobs").json()[0]["latest_metrics"] == {"clean": 0.75}


def test_old_finished_jobs_are_pruned_on_request(checkpoints):
    now = time.time()
    with make_client(checkpoints) as c:
        store = c.app.state.services.jobs.store
        store.insert(_record(1, "completed", "/nonexistent", now - 10 * 86400))
        store.insert(_record(2, "failed", "/nonexistent", now - 10 * 86400))
        store.insert(_record(3, "completed", "/nonexistent", now - 60))
        store.insert(_record(4, "queued", "/nonexistent", None))
        r = c.delete("/api/jobs", params={"older_than": 86400, "state": "completed"})
        assert r.status_code == 200 and r.json() == {"deleted": 1, "ids": [f"{1:012x}"]}
        r = c.delete("/api/jobs", params={"older_than": 0})  # every finished state
        assert r.json()["deleted"] == 2 and [j["state"] for j in c.get("/api/jobs").json()] == ["queued"]
        bad = c.delete("/api/jobs", params={"older_than": 0, "state": "queued"})
        assert bad.status_code == 422 and "cannot be pruned" in bad.json()["detail"]


# -- 10. one range table for fields, schedules and forms ----------------------------------------

@pytest.mark.parametrize("overrides, words", [
    ({"tau_schedule": "step:5:2=1e300"}, "tau_schedule"), ({"tau": 1e300}, "tau"), ({"tau": 0}, "tau"),
    ({"threshold_schedule": "linear:1:-1:1:2"}, "threshold_schedule"), ({"tau_schedule": "step:5:2=0"}, "tau_schedule"),
])
def test_a_schedule_is_refused_where_its_field_is(client, overrides, words):
    r = client.post("/api/jobs", json=_train("ranged", **overrides))
    assert r.status_code == 422 and words in r.json()["detail"], r.text


@pytest.mark.parametrize("field, value", [("tau", "0"), ("tau", "-1"), ("tau", "1e308"), ("tau", "-1e308"),
                                          ("threshold", "-0.5"), ("threshold", "1e308")])
def test_the_image_forms_refuse_what_the_config_refuses(client, field, value):
    recipe = "soft" if field == "tau" else "paper"
    for path in ("/api/explain", "/api/attack"):
        extra = {"steps": "1"} if path == "/api/attack" else {}
        r = client.post(path, data={"run": "part-tiny", "probe": "0", "recipe": recipe, field: value, **extra})
        assert r.status_code == 422 and field in r.json()["detail"], (path, r.text)


# -- 12. a cancel's message and resume agree ----------------------------------------------------

def test_a_job_cancelled_before_its_first_epoch_resumes_from_the_beginning(checkpoints):
    with make_client(checkpoints) as c:
        job = c.post("/api/jobs", json=_train("early", epochs=1)).json()
        cancelled = c.post(f"/api/jobs/{job['id']}/cancel").json()
        assert "resume queues it again" in cancelled["message"]
        resumed = c.post(f"/api/jobs/{job['id']}/resume")
        assert resumed.status_code == 200 and resumed.json()["state"] == "queued", resumed.text
        argv = c.app.state.services.jobs.store.get(job["id"])["argv"]
        assert argv[argv.index("--config") + 1] == str(checkpoints / "early" / "requested_config.json")
    started = {"id": "x", "kind": "train", "out_dir": str(checkpoints / "early"), "spec": {"nproc": 1}}
    assert "starts it again from the beginning" in _cancelled_message(started)
    argv = job_specs.resume_argv(started)
    assert argv[argv.index("train") + 1:] == ["--config", str(checkpoints / "early" / "requested_config.json"),
                                              "--out", str(checkpoints / "early"), "--no-progress"]


def test_a_job_that_left_nothing_says_it_cannot_be_resumed_and_resume_agrees(tmp_path):
    nothing = {"id": "y", "kind": "train", "out_dir": str(tmp_path / "gone"), "spec": {}}
    assert "cannot be resumed" in _cancelled_message(nothing)
    with pytest.raises(Exception, match="nothing to resume"):
        job_specs.resume_argv(nothing)


# -- 13. infinities survive JSON ----------------------------------------------------------------

def test_theory_says_inf_where_the_value_is_infinite(client):
    body = client.get("/api/theory", params=dict(x1=10, w1=100, w2=1e-310, y=-100, eps1=1)).json()
    free = [p for p in body["case_iii"] if p["fixed"] == "d1"]
    assert {p["delta2"] for p in free} <= {"inf", "-inf"} and all(p["loss"] == "inf" for p in free)
    assert not any(v is None for p in body["case_iii"] for v in p.values())
    assert isinstance(body["optimal"]["loss"], float)  # finite values stay numbers


# -- 3 and 8 with real servers: `part serve` twice on one folder, asked as a rebinding page would --

def test_two_part_serve_processes_on_one_folder(run_root, tmp_path):
    import shutil

    import httpx

    from tests.backend.test_server_process import Server

    root = tmp_path / "checkpoints"
    shutil.copytree(run_root, root)
    servers = [Server(root, tmp_path / f"server{i}.log") for i in (1, 2)]
    starting = [threading.Thread(target=s.start) for s in servers]  # both at once: one wins the lock
    for t in starting:
        t.start()
    for t in starting:
        t.join()
    try:
        health = [s.client.get("/api/health").json() for s in servers]
        assert sorted(h["supervising"] for h in health) == [False, True], health
        first, second = servers if health[0]["supervising"] else servers[::-1]
        b = second.client.get("/api/health").json()
        assert b["supervisor_pid"] == first.process.pid
        assert second.client.get("/api/runs").status_code == 200  # it serves reads
        rebound = httpx.get(f"http://127.0.0.1:{second.port}/api/runs", headers={"Host": "rebind.attacker.example"})
        assert rebound.status_code == 403 and "rebind.attacker.example" in rebound.json()["detail"]
        cross = httpx.post(f"http://127.0.0.1:{second.port}/api/jobs", json=_train("x", epochs=1),
                           headers={"Origin": "https://evil.example"})
        assert cross.status_code == 403 and not (root / "x").exists()
        first.kill()  # the supervisor dies: its lock goes with it, and the other server takes over
        deadline = time.time() + 20
        while not second.client.get("/api/health").json()["supervising"] and time.time() < deadline:
            time.sleep(0.2)
        assert second.client.get("/api/health").json()["supervising"] is True
    finally:
        for server in servers:
            if server.process is not None and server.process.poll() is None:
                server.process.send_signal(signal.SIGTERM)
                server.process.wait(10)
