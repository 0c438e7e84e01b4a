"""The dashboard in headless Chromium: upload an image and see its heatmaps, look at Compare and Evaluate,
launch a tiny training job from the Train page and watch it complete. Screenshots go to tests/e2e/screenshots/."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.frontend.servers import TINY_JOB, shirt_png

LOADED_IMAGES = """(min) => Array.from(document.querySelectorAll('[data-testid="stMain"] img'))
    .filter(img => img.complete && img.naturalWidth > 0).length >= min"""
JOB_S = 180


def settle(page, timeout: float = 60_000) -> None:
    """Wait until Streamlit has finished running the script (the 'running' widget is gone)."""
    page.wait_for_timeout(400)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout)


def screenshot(page, path: Path) -> None:
    """The whole page (Streamlit scrolls inside its main block, so the viewport grows to fit it first),
    after checking that no element shows an exception."""
    errors = page.get_by_test_id("stException")
    assert errors.count() == 0, errors.first.inner_text()
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1440, "height": max(960, min(int(height) + 40, 6000))})
    page.wait_for_timeout(800)  # plotly re-lays out on resize
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1440, "height": 960})


def explore_upload(page, url: str, tmp_path: Path, shots: Path) -> None:
    page.goto(url)
    page.get_by_role("heading", name="Explore").wait_for(timeout=60_000)
    settle(page)
    image = tmp_path / "shirt.png"
    image.write_bytes(shirt_png())
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_text("Upload", exact=True).click()
    settle(page)
    sidebar.locator("input[type=file]").set_input_files(str(image))
    page.get_by_test_id("stMain").get_by_text("gradcam ·").wait_for(timeout=60_000)  # the run's own training mask
    settle(page)
    page.wait_for_function(LOADED_IMAGES, arg=3, timeout=30_000)  # the upload's thumbnail, original, overlay
    assert page.get_by_text("shirt.png").first.is_visible()
    assert page.get_by_text("Full-eps fraction").is_visible()
    screenshot(page, shots / "explore.png")


def compare_and_evaluate(page, url: str, shots: Path) -> None:
    page.goto(f"{url}/compare")
    page.get_by_role("heading", name="Per-epoch curves").wait_for(timeout=60_000)
    settle(page)
    page.wait_for_function(LOADED_IMAGES, arg=5, timeout=30_000)  # 2 runs x 2 epochs + colour bar
    page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
    screenshot(page, shots / "compare.png")
    page.goto(f"{url}/evaluate")
    page.get_by_role("heading", name="New evaluation").wait_for(timeout=60_000)
    settle(page)
    screenshot(page, shots / "evaluate.png")


def launch_training(page, url: str, shots: Path) -> None:
    page.goto(f"{url}/train")
    page.get_by_role("button", name="Launch training").wait_for(timeout=60_000)
    settle(page)
    fields = {"Run name": "e2e-run", "Epochs": TINY_JOB["epochs"], "Burn-in epochs": TINY_JOB["burn_in_epochs"], "Subset (training images, 0 = all)":
              TINY_JOB["subset"], "Eval images per epoch": TINY_JOB["eval_n"]}
    for label, value in fields.items():
        box = page.get_by_label(label, exact=True)
        box.fill(str(value))
        box.press("Tab")
    page.get_by_role("button", name="Launch training").click()
    page.get_by_text("run e2e-run", exact=False).first.wait_for(timeout=60_000)
    screenshot(page, shots / "train-running.png")
    page.get_by_test_id("stMain").locator("span", has_text="completed").first.wait_for(timeout=JOB_S * 1000)
    settle(page)
    screenshot(page, shots / "train-completed.png")


def test_upload_heatmaps_and_a_training_job_in_chromium(stack, page, tmp_path, screenshots):
    ui_url, api_url = stack
    started = time.time()
    explore_upload(page, ui_url, tmp_path, screenshots)
    compare_and_evaluate(page, ui_url, screenshots)
    launch_training(page, ui_url, screenshots)
    run = httpx.get(f"{api_url}/api/runs/e2e-run", timeout=30).json()
    assert run["state"] == "completed" and run["epochs"] == [1]
    assert run["config"]["subset"] == TINY_JOB["subset"] and run["config"]["eval_n"] == TINY_JOB["eval_n"]
    print(f"browser flow took {time.time() - started:.1f} s")
