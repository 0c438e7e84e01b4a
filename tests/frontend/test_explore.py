"""Explore against a real backend: overlays per method and the ensemble, the full-eps fraction the API
computed, the attack tab, and an upload."""

from __future__ import annotations

from tests.frontend.conftest import no_exceptions
from tests.frontend.servers import shirt_png


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_first_screen_shows_overlays_eps_map_and_full_eps_fraction(app, api):
    no_exceptions(app)
    captions = [c for image in app.image for c in image.captions]
    assert "Original" in captions
    overlays = [c for c in captions if " at eps" in c]
    assert [c.split(" · ")[0] for c in overlays] == ["gradcam", "layercam", "ensemble(gradcam+layercam)"]
    expected = api.post("/api/explain", data={"run": "fmnist-part-tiny", "probe": 0, "methods": "gradcam,layercam",
                                               "ensemble": "true", "target": "label"}).json()
    ensemble = expected["results"][-1]["mask_stats"]["full_eps_fraction"]
    assert metric(app, "Full-eps fraction") == f"{100 * ensemble:.1f}%"
    assert metric(app, "Prediction") == expected["prediction"]["class_name"]
    assert len(app.get("plotly_chart")) >= 3  # eps-map, mask, probabilities (+ the attack tab's)
    assert {b.label for b in app.get("download_button")} >= {"Overlay PNG", "Eps-map PNG", "Result JSON"}


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
    assert sum(" at eps" in c for c in captions) == 3
