"""Evaluate against a real backend: Table 1 from the report on disk, the corruption chart, the checklist,
and starting an evaluation job."""

from __future__ import annotations

import json

from tests.frontend.conftest import no_exceptions, open_page


def test_report_table_chart_and_checklist(app, api):
    at = open_page(app, "evaluate")
    no_exceptions(at)
    report = api.get("/api/runs/fmnist-part-tiny").json()["evaluations"][0]
    table = at.dataframe[0].value
    row = table[table["run"] == "fmnist-part-tiny"].iloc[0]
    assert row["method"] == "PART" and row["epoch"] == 2 and row["images"] == 16
    assert row["Natural"] == 100 * report["attacks"]["clean"]["accuracy"]
    assert row["PGD-5"] == 100 * report["attacks"]["pgd5"]["accuracy"]
    assert list(table.columns).index("Natural") < list(table.columns).index("PGD-5")
    assert row["masking checks"] == ("✓ passed" if report["attacks"]["checks"]["passed"] else "✗ failed")
    figures = {chart.key: json.loads(chart.proto.spec) for chart in at.get("plotly_chart")}
    bars = figures["ev-corruptions"]["data"][0]
    assert len(bars["x"]) == len(report["attacks"]["corruptions"]["types"]) == 19
    gaussian = report["attacks"]["corruptions"]["types"]["gaussian_noise"]["accuracy"][0]
    assert bars["x"][0] == "Gaussian Noise" and abs(bars["y"][0] - 100 * gaussian) < 1e-9
    curve = figures["ev-eps-curve"]["data"][0]
    assert curve["x"][0] == 0 and curve["x"][-1] > curve["x"][1]  # the eps sweep in /255 units


def test_severity_control_changes_the_bars(app, api):
    at = open_page(app, "evaluate")
    at.segmented_control(key="ev-severity").set_value(5).run()
    types = api.get("/api/runs/fmnist-part-tiny").json()["evaluations"][0]["attacks"]["corruptions"]["types"]
    bars = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if c.key == "ev-corruptions")["data"][0]
    assert bars["y"] == [100 * t["accuracy"][4] for t in types.values()]


def test_start_evaluation_creates_an_eval_job(app, api):
    at = open_page(app, "evaluate")
    at.multiselect(key="ev-attacks").set_value(["clean"])
    at.number_input(key="ev-n").set_value(16)
    at.button(key="FormSubmitter:eval-form-Start evaluation").click().run()
    no_exceptions(at)
    jobs = [j for j in api.get("/api/jobs").json() if j["kind"] == "eval"]
    assert jobs and jobs[0]["spec"]["attacks"] == ["clean"] and jobs[0]["spec"]["n"] == 16
    assert jobs[0]["run_id"] == at.selectbox(key="ev-run").value
    assert any(f"`{jobs[0]['id']}`" in m.value for m in at.markdown)
