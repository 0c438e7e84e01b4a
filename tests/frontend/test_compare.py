"""Compare against a real backend: the runs x epochs grid, the per-epoch curves and the trade-off scatter."""

from __future__ import annotations

from tests.frontend.conftest import no_exceptions, open_page


def grid_captions(at) -> list[str]:
    return [c for image in at.image for c in image.captions if "%" in c]


def test_grid_has_a_cell_per_run_and_epoch(app, api):
    at = open_page(app, "compare")
    no_exceptions(at)
    assert at.sidebar.multiselect(key="cmp-runs").value == ["fmnist-part-tiny", "fmnist-at-tiny"]
    cells = grid_captions(at)
    assert len(cells) == 4  # 2 runs x 2 epochs
    stored = api.post("/api/compare", data={"runs": "fmnist-part-tiny,fmnist-at-tiny", "probe": 0}).json()["cells"]
    for caption, cell in zip(cells, stored):
        assert caption.startswith(f"{cell['prediction']['class_name']} {100 * cell['prediction']['confidence']:.0f}%")
    phases = [m.value for m in at.markdown if m.value.startswith((":gray[", ":red["))]
    assert phases == [":gray[burn-in]", ":red[PART]", ":gray[AT]", ":gray[AT]"]  # PART's burn-in is 1 epoch
    assert [m.value for m in at.markdown if m.value.startswith("**epoch")] == ["**epoch 1**", "**epoch 2**"]


def test_epoch_control_drives_the_grid(app):
    at = open_page(app, "compare")
    at.select_slider(key="cmp-epochs").set_value((2, 2)).run()
    no_exceptions(at)
    assert len(grid_captions(at)) == 2  # 2 runs x epoch 2


def test_curves_mark_the_end_of_burn_in_and_the_scatter_shows_every_run(app):
    import json

    at = open_page(app, "compare")
    figures = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    curves, scatter = figures
    names = {t["name"] for t in curves["data"]}
    assert names == {"PART · fmnist-part-tiny", "AT · fmnist-at-tiny"}
    burn_in = [s for s in curves["layout"]["shapes"] if s.get("line", {}).get("dash") == "dash"]
    assert burn_in and all(s["x0"] == 1.5 for s in burn_in)  # after the 1 burn-in epoch
    assert {t for trace in scatter["data"] for t in trace["text"]} >= {"fmnist-at-tiny", "fmnist-part-tiny"}
    assert scatter["layout"]["xaxis"]["title"]["text"] == "natural accuracy (%)"


def test_the_page_opens_on_plain_part_and_its_baseline():
    from frontend.views.compare import default_runs

    runs = [{"id": i, "dataset": "fashion-mnist", "defense": d, "part": p, "recipe": rc} for i, d, p, rc in [
        ("fmnist-at-s0", "at", False, "paper"), ("fmnist-mart-s0", "mart", False, "paper"),
        ("fmnist-part-m-s0", "mart", True, "paper"), ("fmnist-part-shuffled-s0", "at", True, "shuffled"),
        ("fmnist-part-s0", "at", True, "paper")]]
    assert default_runs(runs) == ["fmnist-part-s0", "fmnist-at-s0"]
    assert default_runs(runs[:3]) == ["fmnist-part-m-s0", "fmnist-mart-s0"]
    assert default_runs(runs[:2]) == ["fmnist-at-s0", "fmnist-mart-s0"]
