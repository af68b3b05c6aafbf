"""The waiting room in a real headless Chromium against a real gunicorn (see tests/browser.py).

A shopper finds a waiting-room sale, joins the line, watches the place count down live
(JavaScript polling the queue API), is admitted and buys with the pass the page carries.
A second shopper with JavaScript off rides the page's own meta refresh to the buy form.
`SAVE_SCREENSHOTS=1` writes docs/screenshots/waiting-room.png.
"""

import os
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.utils import timezone

from orders.models import Order
from products.services import create_product
from tests.browser import DESKTOP, PHONE, SCREENSHOTS, chromium, require_chromium, screenshot
from tests.servers import running_app
from waiting_room.services import join_line

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PASSWORD = "browser-pass-2026"
WAIT_MS = 30_000  # upper bound for an admission due within ~10 s; never a sleep


@pytest.fixture
def live(monkeypatch):
    require_chromium()
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with running_app(workers=2) as base:
        yield base


@pytest.fixture
def shots(tmp_path):
    return SCREENSHOTS if os.environ.get("SAVE_SCREENSHOTS") == "1" else tmp_path


def shopper(username):
    # The server runs the local settings, which do not know the tests' fast MD5 hasher.
    return get_user_model().objects.create_user(username, password=make_password(PASSWORD, hasher="pbkdf2_sha256"))


def log_in(page, base, username, next_path):
    page.goto(f"{base}/accounts/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{base}{next_path}")


def test_shopper_joins_the_line_waits_and_buys_with_the_pass(live, shots):
    from playwright.sync_api import expect

    for name in ("alex", "sam"):
        get_user_model().objects.create_user(name, password=PASSWORD)
    for name in ("kim", "noor"):
        shopper(name)
    start = timezone.now() + timedelta(seconds=3)
    sale = create_product(name="Midnight Vinyl", price="29.00", stock=5, max_per_user=1, sale_starts_at=start,
                          sale_ends_at=start + timedelta(days=1), waiting_room=True, admit_per_minute=12,
                          description="Numbered pressing, five copies.")
    # Two shoppers join before the start: they take places 0 and 1 (in a random order).
    for name in ("alex", "sam"):
        join_line(user=get_user_model().objects.get(username=name), product_id=sale.pk)
    product_path = f"/products/{sale.slug}/"
    line_path = f"/products/{sale.slug}/line/"

    with chromium() as browser:
        page = browser.new_context(viewport=DESKTOP).new_page()
        log_in(page, live, "kim", product_path)
        expect(page.locator("[data-line-panel]")).to_be_visible()
        expect(page.locator("[data-buy-form]")).to_be_hidden()  # buying needs the line here
        page.wait_for_function(f"Date.now() > {int(start.timestamp() * 1000) + 500}")
        page.click("[data-join-line]")
        page.wait_for_url(f"{live}{line_path}")
        # Kim arrived after the start, behind both early joiners: admitted about 10 s after the start.
        position = page.locator("[data-line-position]")
        expect(position).to_be_visible()
        first_seen = position.inner_text()
        assert first_seen in ("0", "1"), first_seen
        expect(page.locator("[data-line-wait]")).not_to_be_empty()
        screenshot(page, "waiting-room", shots)
        page.evaluate("window.__notReloaded = true")
        if first_seen == "1":
            expect(position).to_have_text("0", timeout=WAIT_MS)  # updated live, by the page's script
            assert page.evaluate("window.__notReloaded === true")
        buy = page.locator("[data-line-buy-form] [data-buy-button]")
        expect(buy).to_be_visible(timeout=WAIT_MS)  # the page turned into the buy form by itself
        page.click("[data-line-buy-form] [data-buy-button]")
        page.wait_for_url(f"{live}/orders/*/")
        expect(page.locator("body")).to_contain_text("Midnight Vinyl")

        # JavaScript off: the <noscript> refresh brings the buy form all the same.
        quiet = browser.new_context(viewport=PHONE, java_script_enabled=False).new_page()
        log_in(quiet, live, "noor", line_path)
        quiet.click("[data-join-line]")
        quiet.wait_for_url(f"{live}{line_path}")
        expect(quiet.locator("[data-line-buy-form] [data-buy-button]")).to_be_visible(timeout=WAIT_MS)
        quiet.click("[data-line-buy-form] [data-buy-button]")
        quiet.wait_for_url(f"{live}/orders/*/")

    assert Order.objects.filter(product=sale, user__username__in=["kim", "noor"]).count() == 2
