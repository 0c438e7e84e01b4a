"""Train against a real backend: the preset form, launching a job, its panel, and the finished run showing
up on the Explore page."""

from __future__ import annotations

import os

from tests.frontend.conftest import no_exceptions, open_page
from tests.frontend.servers import TINY_JOB, wait_job

FORM_KEYS = {"burn_in_epochs": "burn", "eval_n": "evaln"}  # the form's widget keys of TINY_JOB's fields
FORM = "fmnist-part-demo"  # preset fmnist-part at the CPU demo size (the test backend runs on the CPU)


def test_form_is_seeded_from_the_preset(app):
    at = open_page(app, "train")
    no_exceptions(at)
    assert at.selectbox(key="tr-preset").value == "fmnist-part"
    assert at.toggle(key=f"tr-part-{FORM}").value is True
    assert at.text_input(key=f"tr-eps-{FORM}").value == "0.1"
    assert at.text_input(key=f"tr-epslow-{FORM}").value == "0.0875"
    assert at.number_input(key=f"tr-epochs-{FORM}").value == 2
    nproc = at.number_input(key=f"tr-nproc-{FORM}")
    assert nproc.value == 1 and nproc.max == (os.cpu_count() or 1)  # the backend's cores: it has no GPU
    at.selectbox(key="tr-preset").set_value("cifar10-trades").run()
    assert at.selectbox(key="tr-def-cifar10-trades-demo").value == "trades"
    assert at.toggle(key="tr-part-cifar10-trades-demo").value is False
    assert at.text_input(key="tr-eps-cifar10-trades-demo").value == "8/255"


def test_launch_creates_a_job_that_finishes_into_a_run_explore_offers(app, api):
    at = open_page(app, "train")
    for field, value in TINY_JOB.items():
        at.number_input(key=f"tr-{FORM_KEYS.get(field, field)}-{FORM}").set_value(value)
    at.text_input(key=f"tr-name-{FORM}").set_value("ui-launched")
    at.button(key=f"FormSubmitter:train-form-{FORM}-Launch training").click().run()
    no_exceptions(at)
    jobs = [j for j in api.get("/api/jobs").json() if j["run_id"] == "ui-launched"]
    assert len(jobs) == 1
    job = jobs[0]
    assert job["spec"]["preset"] == "fmnist-part"
    assert job["spec"]["overrides"] == TINY_JOB  # only what differs from the preset
    assert job["spec"]["nproc"] == 1
    assert any(f"`{job['id']}`" in m.value for m in at.markdown)  # the job's panel
    assert wait_job(api.base_url, job["id"])["state"] == "completed"
    at.run()
    assert any(":green-badge[completed]" in m.value for m in at.markdown)
    explore = open_page(at, "explore")
    assert any(o.startswith("ui-launched · PART · 1 ep") for o in explore.sidebar.selectbox(key="ex-run").options)


def test_a_stopped_eval_job_says_what_resume_keeps_and_shows_its_attacks(app, api):
    job = api.post("/api/jobs", json={"kind": "eval", "run": "fmnist-at-tiny", "attacks": "clean,aa", "n": 16}).json()
    api.post(f"/api/jobs/{job['id']}/cancel")
    assert wait_job(api.base_url, job["id"])["state"] == "cancelled"
    at = open_page(app, "train")
    at.selectbox(key=next(s.key for s in at.selectbox if s.key.startswith("tr-watch"))).set_value(job["id"]).run()
    no_exceptions(at)
    resume = at.button(key=f"resume-{job['id']}")
    assert "the attacks that finished are kept" in resume.proto.help
    assert "epoch" not in resume.proto.help  # an evaluation has no epochs to continue from
    tiles = {m.label: m.value for m in at.metric}
    assert tiles.get("aa") == "not run" and "clean acc" not in tiles  # eval tiles, not the training ones
    table = at.dataframe[0].value
    row = table[table["job"] == job["id"]].iloc[0]
    assert row["state"] == "cancelled" and row["step"].endswith("/2 attacks")
