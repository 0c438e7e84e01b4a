"""Browser fixtures: a tiny PART run, `part serve` and `streamlit run` as real processes, headless Chromium."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.frontend.servers import backend, cancel_active_jobs, dashboard, make_runs

CHROMIUM = os.environ.get("PART_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).parent / "screenshots"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """(dashboard URL, API URL) over a checkpoint root holding fmnist-part-tiny and fmnist-at-tiny."""
    root = make_runs(tmp_path_factory.mktemp("e2e-checkpoints"))
    yield from _served(root, tmp_path_factory.mktemp("e2e-logs"))


def _served(root: Path, logs: Path):
    """`part serve` on `root` and the dashboard on it, as real processes; yields (dashboard URL, API URL)."""
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.fail(f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (or set PART_CHROMIUM)")
    api, api_url = backend(root, logs / "backend.log")
    try:
        ui, ui_url = dashboard(api_url, logs / "streamlit.log")
    except BaseException:
        api.stop()
        raise
    yield ui_url, api_url
    try:
        cancel_active_jobs(api_url)
    finally:
        ui.stop()
        api.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 960})
    yield context.new_page()
    context.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    return SCREENSHOTS


SHIPPED = ("fmnist-at-s0", "fmnist-part-s0", "fmnist-at-s1", "fmnist-part-s1")


@pytest.fixture(scope="module")
def shipped_stack(tmp_path_factory):
    """(dashboard URL, API URL) over a copy of shipped runs (AT and PART, seeds 0 and 1), for the views
    that answer questions on real runs: the difference row, who wins, Table 1."""
    root = tmp_path_factory.mktemp("e2e-shipped") / "checkpoints"
    shipped = Path(__file__).resolve().parents[2] / "checkpoints"
    for run in SHIPPED:
        shutil.copytree(shipped / run, root / run)
    yield from _served(root, tmp_path_factory.mktemp("e2e-shipped-logs"))


@pytest.fixture(scope="session")
def zoo_stack(tmp_path_factory):
    """(dashboard URL, API URL) over a copy of the whole shipped checkpoints/ folder (every run, the manifest):
    the pages' default states as a new user sees them; jobs write into the copy."""
    root = tmp_path_factory.mktemp("e2e-zoo") / "checkpoints"
    shutil.copytree(Path(__file__).resolve().parents[2] / "checkpoints", root,
                    ignore=shutil.ignore_patterns("*.html"))
    yield from _served(root, tmp_path_factory.mktemp("e2e-zoo-logs"))
