"""Explore against a real backend: overlays per method and the ensemble, the full-eps fraction the API
computed, the attack tab, and an upload."""

from __future__ import annotations

import pytest

from streamlit.testing.v1 import AppTest

from tests.frontend.conftest import TIMEOUT_S, no_exceptions, open_page
from tests.frontend.servers import APP
from tests.frontend.servers import shirt_png


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_first_screen_opens_on_the_runs_training_mask_and_says_so(app, api):
    no_exceptions(app)
    captions = [c for image in app.image for c in image.captions]
    assert "Original" in captions
    overlays = [c for c in captions if " at eps" in c]
    assert [c.split(" · ")[0] for c in overlays] == ["gradcam"]  # the run trained with gradcam alone
    assert any(c.value == "**The training mask of fmnist-part-tiny**: gradcam, recipe paper, eps 0.1, eps_low 0.0875, "
                          "threshold 1." for c in app.caption)
    expected = api.post("/api/explain", data={"run": "fmnist-part-tiny", "probe": 0, "methods": "gradcam",
                                               "target": "label"}).json()
    assert metric(app, "Full-eps fraction") == f"{100 * expected['results'][0]['mask_stats']['full_eps_fraction']:.1f}%"
    assert metric(app, "Prediction") == expected["prediction"]["class_name"]
    assert len(app.get("plotly_chart")) >= 3  # eps-map, mask, probabilities (+ the attack tab's)
    assert {b.label for b in app.get("download_button")} >= {"Overlay PNG", "Eps-map PNG", "Result JSON", "Arrays NPZ",
                                                             "Epoch metrics CSV"}
    assert metric(app, "Energy on the object") == f"{expected['results'][0]['energy_on_object']:.2f}"
    assert metric(app, "ROAD (this map)") == f"{expected['results'][0]['road']['road_combined']:+.3f}"
    assert any("the middle (w = 1) is where the mask switches to the full eps" in c.value for c in app.caption)


def test_an_ensemble_is_shown_and_named_as_not_the_training_mask(app, api):
    app.sidebar.multiselect(key="ex-methods-fmnist-part-tiny").set_value(["gradcam", "layercam"]).run()
    app.sidebar.toggle(key="ex-ens-fmnist-part-tiny").set_value(True).run()
    no_exceptions(app)
    overlays = [c for image in app.image for c in image.captions if " at eps" in c]
    assert [c.split(" · ")[0] for c in overlays] == ["gradcam", "layercam", "ensemble of 2 maps"]
    assert any("equal-weight mean of gradcam, layercam" in c.value or "mean of gradcam, layercam" in c.value
               for c in app.caption)
    assert any(c.value.startswith("**Not the training mask of fmnist-part-tiny** (that is gradcam, recipe paper")
               and "shown: gradcam+layercam, recipe paper" in c.value for c in app.caption)
    expected = api.post("/api/explain", data={"run": "fmnist-part-tiny", "probe": 0, "methods": "gradcam,layercam",
                                               "ensemble": "true", "target": "label"}).json()
    ensemble = expected["results"][-1]["mask_stats"]["full_eps_fraction"]
    assert metric(app, "Full-eps fraction") == f"{100 * ensemble:.1f}%"
    assert app.query_params["methods"] == ["gradcam,layercam,ensemble"] or \
        app.query_params["methods"] == "gradcam,layercam,ensemble"


def test_the_overlay_download_is_named_after_the_map_shown(app):  # app: importing the page runs it
    from frontend.views.explore import overlay_file

    assert overlay_file("r-e2", "gradcam") == "r-e2-gradcam.png"
    assert overlay_file("r-e2", "ensemble(gradcam+layercam)") == "r-e2-ensemble-gradcam+layercam.png"


def test_run_image_and_methods_survive_a_page_change_and_go_into_the_url(app):
    app.sidebar.selectbox(key="ex-run").set_value("fmnist-at-tiny").run()
    app.sidebar.selectbox(key="ex-img-probe").set_value(2).run()
    app.sidebar.multiselect(key="ex-methods-fmnist-at-tiny").set_value(["gradcam", "layercam"]).run()
    no_exceptions(app)
    assert app.session_state["run"] == "fmnist-at-tiny" and app.session_state["image"] == {"probe": 2}
    assert app.session_state["methods"] == ["gradcam", "layercam"]
    assert any(c.value.startswith("**fmnist-at-tiny trained without a mask** (AT") for c in app.caption)
    open_page(app, "compare")
    no_exceptions(app)
    assert app.sidebar.selectbox(key="cmp-img-probe").value == 2
    open_page(app, "explore")
    no_exceptions(app)
    assert app.sidebar.selectbox(key="ex-run").value == "fmnist-at-tiny"
    assert app.sidebar.selectbox(key="ex-img-probe").value == 2
    assert app.sidebar.multiselect(key="ex-methods-fmnist-at-tiny").value == ["gradcam", "layercam"]


def test_a_shared_url_opens_on_its_run_sample_and_methods(api_url, monkeypatch):
    monkeypatch.setenv("PART_API_URL", api_url)
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)
    at.query_params.update({"run": "fmnist-at-tiny", "sample": "7", "methods": "layercam"})
    at.run()
    no_exceptions(at)
    assert at.sidebar.selectbox(key="ex-run").value == "fmnist-at-tiny"
    assert at.sidebar.radio(key="ex-img-source").value == "Dataset sample"
    assert at.sidebar.number_input(key="ex-img-index").value == 7
    assert at.sidebar.multiselect(key="ex-methods-fmnist-at-tiny").value == ["layercam"]
    assert "fashion-mnist test #7" in at.caption[0].value


def test_attack_tab_compares_scalar_eps_with_the_eps_map(app):
    after = [m for m in app.metric if m.label.startswith("Prediction after PGD-10")]
    assert len(after) == 2
    assert [h.value for h in app.subheader][:2] == ["Scalar eps (AT)", "PART eps-map"]
    adversarial = [c for image in app.image for c in image.captions if c == "adversarial example"]
    assert len(adversarial) == 2


def test_changing_the_recipe_changes_the_mask(app):
    before = metric(app, "Full-eps fraction")
    app.sidebar.selectbox(key="ex-recipe-fmnist-part-tiny").set_value("quadrant").run()
    no_exceptions(app)
    assert metric(app, "Full-eps fraction") == "75.0%"  # one quadrant of four at eps_low
    assert before != "75.0%"


def test_upload_is_explained(app):
    app.sidebar.radio(key="ex-img-source").set_value("Upload").run()
    assert any("Upload an image" in i.value for i in app.info)
    app.sidebar.file_uploader(key="ex-img-file").upload("shirt.png", shirt_png(), "image/png")
    app.run()
    no_exceptions(app)
    assert "shirt.png" in app.caption[0].value
    captions = [c for image in app.image for c in image.captions]
    assert sum(" at eps" in c for c in captions) == 1


def test_a_continuous_recipe_shows_its_budget_range_not_a_black_mask(app, api):
    app.sidebar.selectbox(key="ex-recipe-fmnist-part-tiny").set_value("reference").run()
    no_exceptions(app)
    labels = [m.label for m in app.metric]
    assert "Budget range (/255)" in labels and "Full-eps fraction" not in labels
    expected = api.post("/api/explain", data={"run": "fmnist-part-tiny", "probe": 0, "methods": "gradcam,layercam",
                                               "ensemble": "true", "target": "label", "recipe": "reference"}).json()
    values = [v for row in expected["results"][-1]["eps_map"] for v in row]
    assert metric(app, "Budget range (/255)") == f"{255 * min(values):.1f} – {255 * max(values):.1f}"
    assert 255 * min(values) > 1  # a scale from 0 would hide this range


def test_the_shuffled_recipe_says_whose_map_it_uses(app):
    app.sidebar.selectbox(key="ex-recipe-fmnist-part-tiny").set_value("shuffled").run()
    no_exceptions(app)
    assert any("map of *another* image" in i.value and "probe 1" in i.value for i in app.info)


def test_an_upload_shows_the_model_input_and_explains_the_prediction(app):
    app.sidebar.radio(key="ex-img-source").set_value("Upload").run()
    app.sidebar.file_uploader(key="ex-img-file").upload("shirt.png", shirt_png(56), "image/png")
    app.run()
    no_exceptions(app)
    captions = [c for image in app.image for c in image.captions]
    assert "model input: 28x28 grey" in captions and "your file: 56x56 L" in captions
    assert any("enlarged" in w.value or "shrunk from 56x56" in w.value for w in app.warning)
    target = app.sidebar.radio(key="ex-target-upload")
    assert target.value == "pred" and target.disabled
    app.sidebar.toggle(key="ex-img-fit").set_value(True).run()
    no_exceptions(app)
    assert any("Fitted to fashion-mnist's style" in i.value for i in app.info)


def test_the_dataset_index_stops_at_the_last_test_image(app):
    app.sidebar.radio(key="ex-img-source").set_value("Dataset sample").run()
    no_exceptions(app)
    box = app.sidebar.number_input(key="ex-img-index")
    assert box.max == 9999


def test_the_eps_map_png_has_a_colour_scale_over_the_map_range():
    import io

    from PIL import Image

    from frontend.images import VIRIDIS, eps_map_figure, value_range

    values = [[0.0875 + 0.0125 * ((i + j) % 5) / 4 for j in range(28)] for i in range(28)]
    assert value_range(values) == pytest.approx((0.0875, 0.1))
    image = Image.open(io.BytesIO(eps_map_figure(values, "eps-map"))).convert("RGB")
    assert image.size == (28 * 10 + 150, 28 * 10 + 56)
    assert image.getpixel((15, 45)) == VIRIDIS[0]  # the smallest budget is the darkest colour, not near-white
    bar_x = 28 * 10 + 30 + 9
    top, bottom = image.getpixel((bar_x, 42)), image.getpixel((bar_x, 40 + 28 * 10 - 2))
    assert sum(abs(a - b) for a, b in zip(top, VIRIDIS[-1])) < 12 and sum(abs(a - b) for a, b in zip(bottom, VIRIDIS[0])) < 12
