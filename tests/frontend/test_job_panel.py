"""The job panel: the evaluation ETA, the links of a finished job; and the sidebar's run count."""

from __future__ import annotations

from frontend import job_panel

ATTACKS = ["clean", "pgd20", "mma", "aa"]  # 1 + 21 + 61 + 400 units of work


def _eval_job(done: dict[str, float], **extra) -> dict:
    return {"kind": "eval", "state": "running", "started_at": 1000.0, "spec": {"attacks": ATTACKS},
            "latest_metrics": {a: 0.8 for a in done}, "attack_seconds": done, **extra}


def test_a_cheap_first_attack_gives_no_eta_rather_than_a_wild_one():
    # 30 s of process start-up, then clean in 0.2 s: the time since the start over 1 unit of 483 said 4 hours
    status = job_panel.eval_status(_eval_job({"clean": 0.2}))
    assert status["eta_s"] is None
    assert "ETA once more of the work is timed" in job_panel.eval_progress_text(_eval_job({"clean": 0.2}))


def test_the_eta_scales_the_seconds_the_finished_attacks_took_not_the_time_since_the_start():
    job = _eval_job({"clean": 0.2, "pgd20": 4.2, "mma": 12.2}, started_at=0.0)  # start-up long ago: not counted
    status = job_panel.eval_status(job)
    assert status["eta_s"] == (0.2 + 4.2 + 12.2) / 83 * 400
    assert job_panel.eval_status(job | {"state": "completed"})["eta_s"] is None
    assert job_panel.eval_status(job | {"attack_seconds": None})["eta_s"] is None  # nothing timed: no guess


def test_the_sidebar_counts_runs_with_something_to_open_and_names_the_others_apart():
    from frontend.ui import runs_count

    assert runs_count({"runs": 20, "runs_without_checkpoint": 0}) == "20 runs"
    assert runs_count({"runs": 1, "runs_without_checkpoint": 2}) == "1 run (and 2 without a checkpoint yet)"
    assert runs_count({"runs": 3}) == "3 runs"  # an older backend


def test_a_finished_job_opens_its_run_on_explore_compare_and_evaluate(app, api):
    from tests.frontend.conftest import no_exceptions, open_page
    from tests.frontend.servers import wait_job

    job = api.post("/api/jobs", json={"kind": "eval", "run": "fmnist-at-tiny", "attacks": "clean", "n": 8}).json()
    assert wait_job(api.base_url, job["id"])["state"] == "completed"
    at = open_page(app, "train")
    at.selectbox(key=next(s.key for s in at.selectbox if s.key.startswith("tr-watch"))).set_value(job["id"]).run()
    no_exceptions(at)
    labels = [b.label for b in at.button if b.key and b.key.endswith(job["id"]) and b.key.startswith("open-")]
    assert labels == ["Open in Explore", "Open in Compare", "Evaluate this run"]
    at.button(key=f"open-views/compare.py-{job['id']}").click().run()
    no_exceptions(at)
    assert at.session_state["run"] == "fmnist-at-tiny"
    assert at.query_params.get("run") in ("fmnist-at-tiny", ["fmnist-at-tiny"])
    assert at.query_params.get("runs") in ("fmnist-at-tiny", ["fmnist-at-tiny"])
    assert not any(b.key == f"open-views/compare.py-{job['id']}" for b in at.button)  # on Compare now
