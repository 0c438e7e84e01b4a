"""The job panel without a server: the evaluation ETA, the links of a finished job, the log tail."""

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
