"""Screenshots of a running dashboard in headless Chromium, e.g. the README's Compare page:

    scripts/run_app.sh &    # or `make run`
    .venv/bin/python scripts/screenshots.py --pages compare --out docs
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import sync_playwright

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
PAGES = {"explore": "", "compare": "compare", "train": "train", "evaluate": "evaluate", "theory": "theory"}
WIDTH = 1440


def shoot(page, url: str, path: Path, settle_s: float) -> None:
    page.set_viewport_size({"width": WIDTH, "height": 960})
    page.goto(url)
    page.locator("h1").first.wait_for(timeout=120_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000)
    page.wait_for_timeout(settle_s * 1000)
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": WIDTH, "height": max(960, min(int(height) + 40, 6000))})
    page.wait_for_timeout(1000)  # plotly re-lays out on resize
    page.screenshot(path=str(path))
    print(f"wrote {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:8501")
    p.add_argument("--out", default="docs")
    p.add_argument("--pages", default=",".join(PAGES), help="comma-separated: " + ", ".join(PAGES))
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--settle", type=float, default=3.0, help="seconds to wait after the page has run")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, args=ARGS, headless=True)
        page = browser.new_page()
        for name in args.pages.split(","):
            shoot(page, f"{args.url.rstrip('/')}/{PAGES[name.strip()]}", out / f"{name.strip()}.png", args.settle)
        browser.close()


if __name__ == "__main__":
    main()
