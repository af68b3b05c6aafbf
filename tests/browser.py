"""Headless Chromium for browser tests: Debian's /usr/bin/chromium driven by Playwright.

Never `playwright install`: the tests use the system browser. Without it the browser
tests skip with the reason, except on CI (CI=true), where a missing browser fails.
"""

import contextlib
import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def require_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    reason = f"{CHROMIUM} is missing (apt-get install chromium) - browser tests need a real Chromium"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@contextlib.contextmanager
def chromium():
    """A launched headless browser; the caller opens contexts (one per shopper) on it."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page, name: str, directory: Path | None = None) -> Path:
    """Save a PNG of the viewport (not the full page, to keep it small) under docs/screenshots/ or `directory`."""
    target = (directory or SCREENSHOTS) / f"{name}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target), full_page=False)
    return target


PASSWORD = "browser-pass-2026"
WAIT_MS = 10_000  # upper bound for things that normally take ~2 s; never a sleep


def product_named(name, *, starts_in: timedelta | None = None, stock=10, **fields):
    """A product on sale for two days (from an hour ago unless `starts_in` says otherwise)."""
    from products.services import create_product

    now = timezone.now()
    starts_in = timedelta(hours=-1) if starts_in is None else starts_in
    return create_product(name=name, price=fields.pop("price", "49.00"), stock=stock,
                          sale_starts_at=now + starts_in, sale_ends_at=now + timedelta(days=2), **fields)
