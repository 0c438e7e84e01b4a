"""Explore in headless Chromium on copies of the shipped runs: an upload shown beside the model's actual
input (and fitted to Fashion-MNIST's style), the NPZ export downloaded and loaded with numpy, a continuous
recipe shown with its real budget range, and nine CAM methods at a readable size.
Screenshots: tests/e2e/screenshots/explore-*.png."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from tests.e2e.test_browser import LOADED_IMAGES, screenshot, settle

NINE = ["gradcam++", "xgradcam", "hirescam", "eigencam", "eigengradcam", "scorecam", "ablationcam"]


def photo(path: Path) -> Path:
    """A dark top on a light table, 320x240: a photo, not a Fashion-MNIST image."""
    image = Image.new("RGB", (320, 240), (232, 230, 222))
    draw = ImageDraw.Draw(image)
    draw.rectangle((110, 40, 210, 220), fill=(40, 52, 96))  # body
    draw.rectangle((70, 40, 250, 90), fill=(40, 52, 96))  # sleeves
    image.save(path)
    return path


def main(page):
    return page.get_by_test_id("stMain")


def choose(page, container, label: str, option: str) -> None:
    """Pick an option of a Streamlit selectbox by its label."""
    box = container.get_by_role("combobox", name=label)
    box.click()
    box.fill(option)
    page.wait_for_timeout(300)
    box.press("Enter")
    settle(page)


def test_explore_upload_model_input_npz_export_and_recipes(shipped_stack, page, tmp_path, screenshots):
    ui_url, _ = shipped_stack
    page.goto(ui_url)
    page.get_by_role("heading", name="Explore").wait_for(timeout=90_000)
    settle(page, 120_000)
    sidebar = page.get_by_test_id("stSidebar")
    choose(page, sidebar, "Run", "fmnist-part-s0")

    # an upload: the model's actual 28x28 grey input beside it, and what the conversion did
    sidebar.get_by_text("Upload", exact=True).click()
    settle(page)
    sidebar.locator("input[type=file]").set_input_files(str(photo(tmp_path / "top-photo.png")))
    main(page).get_by_text("model input: 28x28 grey").wait_for(timeout=90_000)
    settle(page)
    assert main(page).get_by_text("The model sees a different image than your file").is_visible()
    assert main(page).get_by_text("shrunk from 320x240 to 28x28").first.is_visible()
    assert sidebar.get_by_text("An upload has no true label").is_visible()
    sidebar.get_by_text("Fit to the dataset's style").click()
    main(page).get_by_text("Fitted to fashion-mnist's style").wait_for(timeout=90_000)
    settle(page)
    assert main(page).get_by_text("inverted the light background to black").first.is_visible()
    page.wait_for_function(LOADED_IMAGES, arg=6, timeout=30_000)
    screenshot(page, screenshots / "explore-upload-fitted.png")

    # the NPZ export: CAMs, eps-maps, masks and both adversarial examples, as numpy reads them
    with page.expect_download(timeout=120_000) as download:
        main(page).get_by_role("button", name="Arrays NPZ").click()
    data = Path(download.value.path()).read_bytes()
    npz = np.load(io.BytesIO(data))
    assert {"input", "methods", "cams", "eps_maps", "masks", "adversarial_scalar", "adversarial_eps_map",
            "meta"} <= set(npz.files)
    assert npz["input"].shape == (1, 28, 28) and npz["cams"].shape[1:] == (28, 28)
    assert len(npz["methods"]) == npz["cams"].shape[0] == npz["eps_maps"].shape[0] == npz["masks"].shape[0]
    assert np.abs(npz["adversarial_scalar"] - npz["input"]).max() <= 0.1 + 1e-6
    meta = json.loads(str(npz["meta"]))
    assert meta["run"] == "fmnist-part-s0" and meta["input"]["fit"] is True
    (screenshots / "explore-export.npz.txt").write_text(
        "\n".join(f"{k}: {npz[k].dtype} {npz[k].shape}" for k in npz.files) + "\n")

    # a probe image under a continuous recipe: its real budget range, a histogram instead of a black mask
    sidebar.get_by_text("Probe image", exact=True).click()
    settle(page)
    main(page).get_by_text("Energy on the object").wait_for(timeout=90_000)
    settle(page)
    choose(page, sidebar, "Mask recipe", "reference")
    main(page).get_by_text("Budget range (/255)").wait_for(timeout=90_000)
    main(page).get_by_text("Budgets: a continuous recipe, no pixel mask").first.wait_for(timeout=60_000)  # a plotly title
    screenshot(page, screenshots / "explore-continuous-recipe.png")

    # every CAM method: rows of overlays, the ensemble under a short name
    choose(page, sidebar, "Mask recipe", "paper")
    box = sidebar.get_by_test_id("stMultiSelect").locator("input")
    for name in ["layercam", *NINE]:  # the run trained with gradcam alone
        box.fill(name)
        box.press("Enter")
        page.keyboard.press("Escape")
        settle(page, 180_000)
    sidebar.get_by_text("Ensemble of the methods").click()
    settle(page, 180_000)
    main(page).get_by_text("ensemble of 9 maps ·").wait_for(timeout=180_000)
    settle(page, 180_000)
    page.wait_for_function(LOADED_IMAGES, arg=11, timeout=60_000)
    widths = page.evaluate("""() => Array.from(document.querySelectorAll('[data-testid="stMain"] img'))
        .map(img => img.getBoundingClientRect().width).filter(w => w > 0)""")
    overlays = sorted(widths)[-10:]
    assert min(overlays) >= 120, widths  # at 60 px nobody could read them
    screenshot(page, screenshots / "explore-nine-methods.png")
