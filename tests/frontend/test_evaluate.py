"""Evaluate against a real backend: Table 1 per checkpoint without 'None', eps as fraction and /255, the
corruption heatmap and its severity selector, robustness vs eps, the trade-off that follows the run
selection, report downloads, an evaluation job with an eps sweep, and the eval job panel."""

from __future__ import annotations

import json

from frontend import job_panel
from tests.frontend.conftest import no_exceptions, open_page
from tests.frontend.servers import wait_job


def figures(at) -> dict:
    return {chart.key: json.loads(chart.proto.spec) for chart in at.get("plotly_chart")}


def test_table1_has_one_row_per_checkpoint_and_no_none(app, api):
    at = open_page(app, "evaluate")
    no_exceptions(at)
    report = api.get("/api/runs/fmnist-part-tiny").json()["evaluations"][0]
    table = at.table[0].value  # Table 1 comes first
    assert list(zip(table["run"], table["epoch"])) == [("fmnist-part-tiny", 2)]  # the run without a report: no row
    row = table.iloc[0]
    assert row["method"] == "PART" and row["eps"] == "0.1 (25.5/255)"
    assert row["Natural"] == f"{100 * report['attacks']['clean']['accuracy']:.2f}"
    assert row["PGD-5"] == f"{100 * report['attacks']['pgd5']['accuracy']:.2f}"
    assert row["images (n)"].startswith("16 (Natural, PGD-5")
    assert row["masking checks"] == ("✓ passed" if report["attacks"]["checks"]["passed"] else "✗ failed")
    for frame in [*at.table, *at.dataframe]:
        text = frame.value.astype(str).to_string()
        assert "None" not in text and "nan" not in text.lower().split()


def test_corruption_heatmap_follows_the_severity(app, api):
    at = open_page(app, "evaluate")
    types = api.get("/api/runs/fmnist-part-tiny").json()["evaluations"][0]["attacks"]["corruptions"]["types"]
    heat = figures(at)["ev-corruptions"]["data"][0]
    assert heat["type"] == "heatmap" and len(heat["x"]) == 20 and heat["x"][0] == "Gaussian Noise"
    assert heat["x"][-1] == "Mean" and heat["y"] == ["fmnist-part-tiny · ep 2"]
    assert heat["z"][0][:19] == [100 * t["accuracy"][0] for t in types.values()]
    at.segmented_control(key="ev-severity").set_value(5).run()
    heat = figures(at)["ev-corruptions"]["data"][0]
    assert heat["z"][0][:19] == [100 * t["accuracy"][4] for t in types.values()]


def test_eps_curve_tradeoff_and_selection(app):
    at = open_page(app, "evaluate")
    figs = figures(at)
    curve = figs["ev-eps-curves"]["data"][0]
    assert curve["x"][0] == 0 and abs(curve["x"][3] - 25.5) < 1e-9  # eps x (0, 0.25, 0.5, 1, ...) in /255 units
    assert abs(curve["customdata"][3] - 0.1) < 1e-12  # the fraction in the hover
    trade = figs["ev-tradeoff"]
    assert [t["name"] for t in trade["data"]] == ["PART"]
    assert [a["text"] for a in trade["layout"]["annotations"]] == ["fmnist-part-tiny"]
    x = trade["data"][0]["x"][0]
    low, high = trade["layout"]["xaxis"]["range"]
    assert low < x < high and high - low < 5  # fitted to the runs shown, not 0..100
    at.multiselect(key="ev-experiments").set_value([]).run()
    no_exceptions(at)
    assert "ev-tradeoff" not in figures(at) and any("Choose one or more experiments" in i.value for i in at.info)


def test_eps_curves_take_any_number_of_runs():
    """More runs than colours (the default selects every evaluated run): colours come back with another marker."""
    from frontend import eval_charts

    curves = [{"run": f"run-{i}", "attack": "pgd20 (checks)", "eps": [0.0, 0.1], "accuracy": [0.9, 0.5], "n": 10}
              for i in range(25)]
    fig = eval_charts.eps_curves(curves, methods={c["run"]: "PART" if i % 2 else "AT" for i, c in enumerate(curves)})
    styles = [(t.line.color, t.marker.symbol) for t in fig.data]
    assert len(fig.data) == 25 and len(set(styles)) == 25


def test_report_files_can_be_downloaded(app):
    at = open_page(app, "evaluate")
    labels = [b.proto.label for b in at.get("download_button")]  # of the first evaluation folder
    assert "report.md" in labels and "report.html" in labels


def test_start_evaluation_with_an_eps_sweep(app, api):
    at = open_page(app, "evaluate")
    at.multiselect(key="ev-attacks").set_value(["clean"])
    at.number_input(key="ev-n").set_value(16)
    at.text_input(key="ev-sweep").set_value("0.05, 8/255")
    at.button(key="FormSubmitter:eval-form-Start evaluation").click().run()
    no_exceptions(at)
    jobs = [j for j in api.get("/api/jobs").json() if j["kind"] == "eval"]
    assert jobs and jobs[0]["spec"]["attacks"] == ["clean", "pgd20@0.0313725,0.05"] and jobs[0]["spec"]["n"] == 16
    assert jobs[0]["run_id"] == at.selectbox(key="ev-run").value
    assert any(f"`{jobs[0]['id']}`" in m.value for m in at.markdown)
    done = wait_job(api.base_url, jobs[0]["id"])
    assert done["state"] == "completed", done.get("message")
    at.run()
    tiles = {m.label: m.value for m in at.metric}
    sweep = api.get("/api/evaluations", params={"runs": jobs[0]["run_id"]}).json()["rows"][-1]["sweeps"]
    curve = next(c for c in sweep if c["attack"] == "pgd20@0.0313725,0.05")
    assert tiles["clean"].endswith("%") and tiles["pgd20@0.0313725,0.05"] == \
        " / ".join(f"{100 * a:.1f}" for a in curve["accuracy"]) + " %"  # accuracy at each eps of the sweep
    assert any("2/2 attacks done" in (p.proto.text or "") for p in at.get("progress"))


def test_a_malformed_sweep_is_refused_before_any_job(app, api):
    at = open_page(app, "evaluate")
    before = len(api.get("/api/jobs").json())
    at.text_input(key="ev-sweep").set_value("0.05, lots")
    at.button(key="FormSubmitter:eval-form-Start evaluation").click().run()
    assert any("'lots' is not a number" in e.value for e in at.error)
    assert len(api.get("/api/jobs").json()) == before


def test_eval_progress_and_eta_weigh_what_is_left():
    job = {"kind": "eval", "state": "running", "started_at": 1000.0, "spec": {"attacks": ["clean", "pgd20", "aa"]},
           "latest_metrics": {"clean": 0.8, "pgd20": 0.5}, "attack_seconds": {"clean": 0.5, "pgd20": 10.5}}
    status = job_panel.eval_status(job)
    assert status["done"] == ["clean", "pgd20"] and status["pending"] == ["aa"]
    assert status["progress"] == 22 / (1 + 21 + 400)
    assert status["eta_s"] == 11.0 / 22 * 400  # 11 s for 22 units of work, 400 units left
    assert "ETA once more of the work is timed" in job_panel.eval_progress_text(job | {"latest_metrics": None})
    assert job_panel.attack_cost("pgd20@0.05,0.1") == 2 * 21 and job_panel.attack_cost("pgd20-map@run") == 21
    assert job_panel.table_progress(job) == ("2/3 attacks", status["progress"])


def test_a_map_attack_counts_as_done_under_the_name_the_job_asked_for():
    job = {"kind": "eval", "state": "completed", "spec": {"attacks": ["clean", "pgd20-map"]},
           "latest_metrics": {"clean": 0.8, "pgd20-map@fmnist-part-s0": 0.7}}
    status = job_panel.eval_status(job)
    assert status["done"] == ["clean", "pgd20-map"] and status["pending"] == [] and status["progress"] == 1.0
    assert job_panel.stored_results(job)["pgd20-map"] == 0.7


def test_table1_csv_holds_the_rows_of_the_table():
    import csv
    import io

    from frontend.reports import table_csv

    rows = [{"method": "PART", "run": "r", "epoch": 2, "Natural": "83.45"}, {"method": "AT", "run": "a", "epoch": 2,
                                                                           "Natural": "83.28"}]
    parsed = list(csv.DictReader(io.StringIO(table_csv(rows))))
    assert [r["Natural"] for r in parsed] == ["83.45", "83.28"] and list(parsed[0]) == ["method", "run", "epoch",
                                                                                       "Natural"]
