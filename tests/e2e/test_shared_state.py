"""Explore and Compare over the whole shipped zoo in headless Chromium: Explore opens on the featured run's own
training mask and says so, the run and image survive a page change and live in the URL, and Compare says once
which runs take another input size. Screenshots: tests/e2e/screenshots/shared-*.png."""

from __future__ import annotations

from tests.e2e.test_browser import screenshot, settle


def test_explore_opens_on_the_training_mask_and_keeps_the_run_across_pages(zoo_stack, page, screenshots):
    ui_url, _ = zoo_stack
    page.goto(ui_url + "/?run=fmnist-vit-part-s0&probe=3")
    page.get_by_role("heading", name="Explore").wait_for(timeout=120_000)
    settle(page, 240_000)
    main = page.get_by_test_id("stMain")
    main.get_by_text("The training mask of fmnist-vit-part-s0").wait_for(timeout=60_000)
    assert main.get_by_text("attention-rollout, recipe paper, eps 0.1, eps_low 0.0875, threshold 1").is_visible()
    screenshot(page, screenshots / "shared-explore-vit.png")
    page.get_by_role("link", name="Compare").click()
    page.get_by_role("heading", name="Compare").wait_for(timeout=60_000)
    settle(page, 240_000)
    assert "runs=fmnist-vit-part-s0%2Cfmnist-vit-at-s0" in page.url and "probe=3" in page.url
    page.get_by_role("link", name="Explore").click()
    page.get_by_role("heading", name="Explore").wait_for(timeout=60_000)
    settle(page, 240_000)
    assert "run=fmnist-vit-part-s0" in page.url and "probe=3" in page.url


def test_compare_says_once_which_runs_take_another_size(zoo_stack, page, screenshots):
    ui_url, _ = zoo_stack
    page.goto(ui_url + "/compare?runs=fmnist-part-s0,fmnist-clutter-at-s0,fmnist-clutter-part-s0")
    page.get_by_role("heading", name="Compare").wait_for(timeout=120_000)
    settle(page, 240_000)
    main = page.get_by_test_id("stMain")
    note = main.get_by_text("fmnist-clutter-at-s0 and fmnist-clutter-part-s0 take 40x40 images; this probe image is 28x28")
    assert note.count() == 1
    assert main.get_by_text("1x40px").count() == 0
    screenshot(page, screenshots / "shared-compare-sizes.png")
