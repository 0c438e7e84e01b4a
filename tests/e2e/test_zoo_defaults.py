"""Every page in its default state over the whole shipped zoo (a copy of checkpoints/, every run), in headless
Chromium: no exception anywhere, and the results pages compare only comparable runs (Evaluate opens on the
featured experiment, Who wins on the featured pair). Then a short run is trained and evaluated through the
API, as from the browser, and the defaults still hold: it is an experiment of its own and enters no other's
means. Screenshots go to tests/e2e/screenshots/zoo-*.png."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.e2e.test_browser import screenshot, settle
from tests.frontend.servers import wait_job

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints"
PAGES = {"explore": "", "compare": "compare", "train": "train", "evaluate": "evaluate", "wins": "wins",
         "theory": "theory"}
HEADINGS = {"explore": "Explore", "compare": "Compare", "train": "Train", "evaluate": "Evaluate", "wins": "Who wins",
            "theory": "Theory: why"}
QUICK = {"kind": "train", "name": "quick-part", "preset": "fmnist-part",
         "overrides": {"epochs": 1, "burn_in_epochs": 0, "subset": 128, "eval_n": 32, "batch_size": 64}}


def main_text(page) -> str:
    return page.get_by_test_id("stMain").inner_text()


def open_default(page, url: str, name: str) -> str:
    page.goto(f"{url}/{PAGES[name]}")
    page.get_by_role("heading", name=HEADINGS[name]).first.wait_for(timeout=180_000)
    settle(page, timeout=300_000)
    return main_text(page)


def featured_experiment(api_url: str) -> dict:
    found = httpx.get(f"{api_url}/api/experiments", timeout=60).json()["experiments"]
    return next(e for e in found if e["featured"])


def check_evaluate(page, api_url: str) -> str:
    """The featured experiment's tables only; returns the page's text."""
    # PART's PGD-20 over its two seeds of this experiment only, minus each seed's own AT
    page.get_by_text("72.08 ± 0.45 (-0.20, 2 pairs)").wait_for(timeout=120_000)
    text = main_text(page)
    main = featured_experiment(api_url)
    vit = [r["run"] for r in json.loads((SHIPPED / "shipped.json").read_text())["vit"]]
    assert "Experiment: main" in text and "Experiment: testbed" not in text
    assert all(r in text for r in main["runs"])
    assert all(r not in text for r in vit)  # the ViT runs are not in the featured experiment's tables
    assert page.get_by_role("heading", name="Robustness vs eps").count() == 1  # the charts rendered
    return text


def test_every_page_in_its_default_state_over_the_shipped_zoo(zoo_stack, page, screenshots):
    ui_url, api_url = zoo_stack
    for name in PAGES:
        text = open_default(page, ui_url, name)
        if name == "evaluate":
            check_evaluate(page, api_url)
        if name == "wins":
            page.get_by_text("Under PGD-20, of 10000 test images").wait_for(timeout=120_000)
            text = main_text(page)
            assert "(fmnist-at-s0)" in text and "(fmnist-part-s0)" in text  # the featured pair
            assert "clutter" not in text.split("The images")[0]
        screenshot(page, screenshots / f"zoo-{name}.png")

    # a short run, trained and evaluated as from the browser: its own experiment, in nobody's means
    job = httpx.post(f"{api_url}/api/jobs", json=QUICK, timeout=60)
    assert job.status_code == 201, job.text
    assert wait_job(api_url, job.json()["id"], timeout=300)["state"] == "completed"
    ev = httpx.post(f"{api_url}/api/jobs", json={"kind": "eval", "run": "quick-part", "attacks": "clean,pgd5",
                                                 "n": 50}, timeout=60)
    assert ev.status_code == 201, ev.text
    assert wait_job(api_url, ev.json()["id"], timeout=300)["state"] == "completed"
    found = httpx.get(f"{api_url}/api/experiments", timeout=60).json()["experiments"]
    quick = next(e for e in found if "quick-part" in e["runs"])
    assert quick["runs"] == ["quick-part"] and not quick["featured"]
    assert "no baseline in this experiment" in quick["baselines"]["quick-part"]["note"]
    open_default(page, ui_url, "evaluate")
    text = check_evaluate(page, api_url)
    assert "quick-part" not in text.split("Experiment: main")[1]  # only the job panel above names it
    screenshot(page, screenshots / "zoo-evaluate-after-quick-run.png")


def test_who_wins_refuses_runs_tested_on_different_images(zoo_stack):
    _, api_url = zoo_stack
    r = httpx.get(f"{api_url}/api/evaluations/wins", params={"run_a": "fmnist-at-s0",
                                                              "run_b": "fmnist-clutter-part-s0"}, timeout=60)
    assert r.status_code == 422 and "different images" in r.json()["detail"]
