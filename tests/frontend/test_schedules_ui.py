"""Schedules on the dashboard: the Train page sends them as overrides (the backend checks the grammar) and
the per-epoch curves draw the value each epoch used."""

from __future__ import annotations

import pytest

from frontend import charts
from tests.frontend.conftest import no_exceptions, open_page

FORM = "fmnist-part-demo"


def test_a_schedule_goes_into_the_jobs_overrides(app, api):
    at = open_page(app, "train")
    assert at.text_input(key=f"tr-eps_low_schedule-{FORM}").value == ""
    at.text_input(key=f"tr-eps_low_schedule-{FORM}").set_value("linear:0.1:0.05:1:2")
    at.text_input(key=f"tr-name-{FORM}").set_value("ui-scheduled")
    at.button(key=f"FormSubmitter:train-form-{FORM}-Launch training").click().run()
    no_exceptions(at)
    job = next(j for j in api.get("/api/jobs").json() if j["run_id"] == "ui-scheduled")
    assert job["spec"]["overrides"]["eps_low_schedule"] == "linear:0.1:0.05:1:2"
    assert "eps_schedule" not in job["spec"]["overrides"]  # empty: the constant, not sent
    api.post(f"/api/jobs/{job['id']}/cancel")


def test_a_bad_schedule_is_refused_with_the_grammar(app, api):
    at = open_page(app, "train")
    at.text_input(key=f"tr-tau_schedule-{FORM}").set_value("ramp:1:2")
    at.text_input(key=f"tr-name-{FORM}").set_value("ui-bad-schedule")
    at.button(key=f"FormSubmitter:train-form-{FORM}-Launch training").click().run()
    no_exceptions(at)
    assert any("unknown kind 'ramp'" in e.value and "linear:START:END:FROM:TO" in e.value for e in at.error)
    assert not [j for j in api.get("/api/jobs").json() if j["run_id"] == "ui-bad-schedule"]


def test_curves_add_the_schedule_row_only_for_scheduled_runs():
    rows = lambda extra: [{"epoch": e, "test_clean_acc": 0.8, "test_pgd_acc": 0.7, "train_loss": 1.0,
                           "full_eps_fraction": 0.3, **extra(e)} for e in (1, 2, 3)]
    plain = {"run": "a", "label": "AT · a", "method": "AT", "metrics": rows(lambda e: {})}
    sched = {"run": "b", "label": "PART · b", "method": "PART",
             "metrics": rows(lambda e: {"eps_low": (0.1 - 0.02 * (e - 1)), "eps": 0.1})}
    assert len(charts.epoch_curves([plain], burn_in={}).data) == 4
    fig = charts.epoch_curves([plain, sched], burn_in={})
    extra = [t for t in fig.data if t.xaxis == "x5"]
    assert [t.line.dash for t in extra] == ["solid", "dash"]  # eps, eps_low of run b; run a has none
    assert list(extra[1].y) == pytest.approx([25.5, 20.4, 15.3])  # eps_low in /255
    assert fig.layout.annotations[4].text == "Budget schedule (/255)"
