"""The dashboard's forms offer exactly what GET /api/options lists (nothing is copied from the core), and
budgets are written for people in /255 steps."""

from __future__ import annotations

from frontend.catalogue import as_255, eps_text
from tests.frontend.conftest import no_exceptions, open_page


def test_train_form_offers_the_catalogue(app, api):
    options = api.get("/api/options").json()
    at = open_page(app, "train")
    no_exceptions(at)
    assert at.selectbox(key="tr-preset").options == [
        f"{name} ({p['label']}, {p['config']['dataset']})" for name, p in options["presets"].items()]
    form = "fmnist-part-demo"
    assert at.selectbox(key=f"tr-model-{form}").options == [m["name"] for m in options["models"]]
    assert at.multiselect(key=f"tr-cam-{form}").options == [m["name"] for m in options["cam_methods"]]
    assert at.selectbox(key=f"tr-recipe-{form}").options == list(options["recipes"])
    at.selectbox(key="tr-preset").set_value("fmnist-clutter-at").run()
    assert at.selectbox(key="tr-model-fmnist-clutter-at-demo").value == "small-cnn-4"
    assert at.selectbox(key="tr-ds-fmnist-clutter-at-demo").value == "fashion-mnist-clutter"


def test_budgets_in_255_steps():
    assert as_255(8 / 255) == "8/255" and as_255(0.1) == "25.5/255"
    assert eps_text(8 / 255) == "8/255" and eps_text(0.1) == "0.1" and eps_text(0) == "0"
