"""Compare against a real backend: the runs x epochs grid with its difference row and numbers, the epoch player,
the energy and agreement curves, the training curves and the trade-off scatter."""

from __future__ import annotations

import json
import re

from tests.frontend.conftest import no_exceptions, open_page

RUNS = "fmnist-part-tiny,fmnist-at-tiny"


def grid_html(at) -> str:
    return next(h.proto.body for h in at.get("html") if 'class="cmp"' in h.proto.body)


def figures(at) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def test_grid_has_a_cell_per_run_and_epoch_and_a_difference_row_with_numbers(app, api):
    at = open_page(app, "compare")
    no_exceptions(at)
    assert at.sidebar.multiselect(key="cmp-runs").value == ["fmnist-part-tiny", "fmnist-at-tiny"]
    assert (at.sidebar.selectbox(key="cmp-a").value, at.sidebar.selectbox(key="cmp-b").value) == (
        "fmnist-at-tiny", "fmnist-part-tiny")  # B - A is PART minus its baseline
    html = grid_html(at)
    body = api.post("/api/compare", data={"runs": RUNS, "probe": 0, "epochs": "1,2", "top_k": 20,
                                          "pair": "fmnist-at-tiny,fmnist-part-tiny"}).json()
    assert html.count('tabindex="0"') == 6  # maps: 2 runs x 2 epochs + the difference row's 2
    outline = body["object_mask"]["outline_png"]
    assert html.count(f'<img class="edge" src="{outline}"') == 4  # the object's edge over each CAM, on by default
    at.toggle(key="cmp-outline").set_value(False).run()
    assert 'class="edge"' not in grid_html(at) and grid_html(at).count('tabindex="0"') == 6
    for cell in body["cells"]:
        pred = cell["prediction"]
        assert f"{pred['class_name']} <span class=\"num\">{100 * pred['confidence']:.0f}%</span>" in html
        assert f"{100 * cell['energy_on_object']:.1f}%</span> on object" in html
    for cell in body["difference"]["cells"]:
        assert f'IoU<sub>20%</sub> <span class="num">{cell["iou"]:.2f}</span>' in html
        assert f'mean |Δ| <span class="num">{cell["mean_abs"]:.3f}</span>' in html
    phases = re.findall(r'<div class="phase( rw)?">([^<]*)</div>', html)
    assert phases == [("", "burn-in"), (" rw", "PART"), ("", "AT"), ("", "AT")]  # PART's burn-in is 1 epoch
    assert re.findall(r"<th>(epoch \d+)</th>", html) == ["epoch 1", "epoch 2"]
    metrics = {m.label: m.value for m in at.get("metric")}
    last = body["difference"]["cells"][-1]
    assert metrics["top-20% IoU"] == f"{last['iou']:.3f}" and metrics["mean |B − A|"] == f"{last['mean_abs']:.3f}"


def test_epoch_control_and_cell_size_drive_the_grid(app):
    at = open_page(app, "compare")
    at.select_slider(key="cmp-epochs").set_value((2, 2)).run()
    no_exceptions(at)
    html = grid_html(at)
    assert html.count('tabindex="0"') == 3 and 'width="144"' in html  # 2 runs + B - A at epoch 2, medium
    at.select_slider(key="cmp-size").set_value("x-large").run()
    assert 'width="260"' in grid_html(at)


def test_the_pair_and_top_k_reach_the_difference_row(app, api):
    at = open_page(app, "compare")
    at.sidebar.selectbox(key="cmp-a").set_value("fmnist-part-tiny").run()
    at.sidebar.number_input(key="cmp-topk").set_value(50).run()
    no_exceptions(at)
    html = grid_html(at)
    body = api.post("/api/compare", data={"runs": RUNS, "probe": 0, "epochs": "1,2", "top_k": 50,
                                          "pair": "fmnist-part-tiny,fmnist-at-tiny"}).json()["difference"]
    assert "<code>fmnist-at-tiny</code><br>minus <code>fmnist-part-tiny</code>" in html
    assert f'IoU<sub>50%</sub> <span class="num">{body["cells"][1]["iou"]:.2f}</span>' in html


def test_player_curves_and_scatter(app):
    at = open_page(app, "compare")
    player, agreement, curves, scatter = figures(at)
    assert [f["name"] for f in player["frames"]] == ["1", "2"]
    assert player["data"][2]["zmid"] == 0 and player["data"][2]["zmin"] == -player["data"][2]["zmax"]
    assert [s["label"] for s in player["layout"]["sliders"][0]["steps"]] == ["1", "2"]
    assert [b["label"] for b in player["layout"]["updatemenus"][0]["buttons"]] == ["▶ play", "❚❚ pause"]
    names = {t["name"] for t in agreement["data"]}
    assert names == {"fmnist-part-tiny", "fmnist-at-tiny", "top-20% IoU", "Spearman ρ"}
    names = {t["name"] for t in curves["data"]}
    assert names == {"PART · fmnist-part-tiny", "AT · fmnist-at-tiny"}
    burn_in = [s for s in curves["layout"]["shapes"] if s.get("line", {}).get("dash") == "dash"]
    assert burn_in and all(s["x0"] == 1.5 for s in burn_in)  # after the 1 burn-in epoch
    assert {t for trace in scatter["data"] for t in trace["text"]} >= {"fmnist-at-tiny", "fmnist-part-tiny"}
    assert scatter["layout"]["xaxis"]["title"]["text"] == "natural accuracy (%)"
    assert [b.proto.label for b in at.get("download_button")] == ["Figure 2 as PNG", "Figure 2 as PDF"]


def test_a_missing_epoch_is_an_empty_cell_without_a_message():
    from frontend.compare_grid import table

    cell = {"run": "short", "epoch": 1, "available": True, "overlay_png": "data:image/png;base64,AA",
            "prediction": {"class_index": 0, "class_name": "Top", "confidence": 0.5}, "energy_on_object": 0.4}
    result = {"epochs": [1, 2, 3], "cells": [cell, {"run": "short", "epoch": 2, "available": False, "message": None},
                                              {"run": "short", "epoch": 3, "available": False, "message": None}]}
    html = table(result, [{"id": "short", "title": "AT", "phases": {}}], 96, 0)
    assert html.count("no checkpoint") == 2 and "epoch 2" in html and "has no checkpoint" not in html
    assert "40.0%</span> on object" in html


def test_the_page_opens_on_plain_part_and_its_baseline():
    from frontend.views.compare import default_pair, default_runs

    runs = [{"id": i, "dataset": "fashion-mnist", "defense": d, "part": p, "recipe": rc} for i, d, p, rc in [
        ("fmnist-at-s0", "at", False, "paper"), ("fmnist-mart-s0", "mart", False, "paper"),
        ("fmnist-part-m-s0", "mart", True, "paper"), ("fmnist-part-shuffled-s0", "at", True, "shuffled"),
        ("fmnist-part-s0", "at", True, "paper")]]
    bases = {"fmnist-part-s0": "fmnist-at-s0", "fmnist-part-m-s0": "fmnist-mart-s0",
             "fmnist-part-shuffled-s0": "fmnist-at-s0"}  # as GET /api/experiments pairs them
    assert default_runs(runs, bases=bases) == ["fmnist-part-s0", "fmnist-at-s0"]
    assert default_runs(runs[:3], bases=bases) == ["fmnist-part-m-s0", "fmnist-mart-s0"]
    assert default_runs(runs[:2], bases=bases) == ["fmnist-at-s0", "fmnist-mart-s0"]
    assert default_runs(runs, ["fmnist-at-s0", "fmnist-part-m-s0"], bases=bases) == ["fmnist-at-s0", "fmnist-part-m-s0"]
    assert default_runs(runs, ["fmnist-at-s0", "gone"], bases=bases) == ["fmnist-part-s0", "fmnist-at-s0"]
    assert default_runs(runs, run="fmnist-part-m-s0", bases=bases) == ["fmnist-part-m-s0", "fmnist-mart-s0"]
    assert default_runs(runs, run="fmnist-part-s0", bases={}) == ["fmnist-part-s0"]  # no baseline: none invented
    by_id = {r["id"]: r for r in runs}
    assert default_pair(["fmnist-part-s0", "fmnist-at-s0"], by_id) == ("fmnist-at-s0", "fmnist-part-s0")
    assert default_pair(["fmnist-part-s0", "fmnist-part-m-s0"], by_id) == ("fmnist-part-s0", "fmnist-part-m-s0")
