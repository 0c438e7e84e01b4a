"""Compare in headless Chromium on copies of the shipped runs: the difference row PART - AT renders with the
API's numbers under every cell, a click enlarges a map, the epoch player is there, and the Figure 2 export
downloads a valid PNG and PDF. Screenshots go to tests/e2e/screenshots/."""

from __future__ import annotations

import re

import httpx

from tests.e2e.test_browser import LOADED_IMAGES, screenshot, settle

A, B = "fmnist-at-s0", "fmnist-part-s0"
EPOCHS = ",".join(map(str, range(1, 11)))


def test_difference_row_numbers_and_exports(shipped_stack, page, screenshots, tmp_path):
    ui_url, api_url = shipped_stack
    page.goto(f"{ui_url}/compare")
    page.get_by_role("heading", name="Per-epoch curves").wait_for(timeout=180_000)
    settle(page)
    page.wait_for_function(LOADED_IMAGES, arg=30, timeout=60_000)  # 2 runs x 10 epochs + 10 differences
    main = page.get_by_test_id("stMain")

    expected = httpx.post(f"{api_url}/api/compare", timeout=120, data={
        "runs": f"{B},{A}", "probe": "0", "epochs": EPOCHS, "pair": f"{A},{B}", "top_k": "20"}).json()["difference"]
    rows = main.locator("table.cmp tr.diff")
    assert rows.count() == 2  # two bands of 5 epochs at the default cell size
    assert rows.locator("img").count() == 10
    text = " ".join(rows.nth(k).inner_text() for k in range(2))
    ious = [float(v) for v in re.findall(r"IoU\s*20%\s*([01]\.\d\d)", text)]
    assert ious == [round(c["iou"], 2) for c in expected["cells"]]
    assert len(re.findall(r"mean \|Δ\| 0\.\d{3}", text)) == 10 and len(re.findall(r"on object [+-]\d", text)) == 10
    assert main.get_by_test_id("stMetric").filter(has_text="top-20% IoU").is_visible()
    assert main.locator(".js-plotly-plot").count() >= 4  # player, agreement, training curves, trade-off
    assert main.get_by_text("▶ play").is_visible()
    screenshot(page, screenshots / "compare-difference.png")

    image = rows.first.locator("img").last
    image.scroll_into_view_if_needed()
    image.click()
    page.wait_for_timeout(400)
    box = image.bounding_box()
    assert box["width"] > 2 * 144  # the 144 px map is shown 2.2x while it has the focus
    page.screenshot(path=str(screenshots / "compare-enlarged-cell.png"))
    main.get_by_role("heading", name="Compare").click()

    for fmt, magic in (("PNG", b"\x89PNG\r\n\x1a\n"), ("PDF", b"%PDF-")):
        with page.expect_download(timeout=120_000) as download:
            main.get_by_role("button", name=f"Figure 2 as {fmt}").click()
        path = tmp_path / download.value.suggested_filename
        download.value.save_as(path)
        content = path.read_bytes()
        assert path.name == f"figure2-{A}-vs-{B}.{fmt.lower()}" and content.startswith(magic), content[:16]
        if fmt == "PNG":
            (screenshots / "compare-figure2-export.png").write_bytes(content)
        else:
            assert content.rstrip().endswith(b"%%EOF") and len(content) > 20_000
