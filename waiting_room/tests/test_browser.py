"""The waiting room in a real headless Chromium against a real gunicorn (see tests/browser.py).

A shopper finds a waiting-room sale, joins the line, watches the place count down live
(JavaScript polling the queue API), is admitted and buys with the pass the page carries.
A second shopper with JavaScript off rides the page's own meta refresh to the buy form.
`SAVE_SCREENSHOTS=1` writes docs/screenshots/waiting-room.png.
"""

from datetime import timedelta

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.utils import timezone

from orders.models import Order
from products.services import create_product
from tests.browser import DESKTOP, PASSWORD, PHONE, chromium, screenshot
from tests.faults import token_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WAIT_MS = 45_000  # upper bound for an admission due within ~20 s; never a sleep


def shopper(username):
    # The server runs the local settings, which do not know the tests' fast MD5 hasher.
    user = get_user_model().objects.create_user(username)
    user.password = make_password(PASSWORD, hasher="pbkdf2_sha256")
    user.save(update_fields=["password"])
    return user


def log_in(page, base, username, next_path):
    page.goto(f"{base}/accounts/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{base}{next_path}")


def open_sale_with_two_early_joiners(base):
    start = timezone.now() + timedelta(seconds=3)
    sale = create_product(name="Midnight Vinyl", price="29.00", stock=5, max_per_user=1, sale_starts_at=start,
                          sale_ends_at=start + timedelta(days=1), waiting_room=True, admit_per_minute=6,
                          description="Numbered pressing, five copies.")
    # Two shoppers join before the start, through the server's API (the test process's cache keys
    # carry the test prefix): they take places 0 and 1, in a random order.
    for name in ("alex", "sam"):
        token = token_for(get_user_model().objects.get(username=name))
        joined = httpx.post(f"{base}/api/products/{sale.pk}/queue/", headers={"Authorization": f"Token {token}"})
        assert joined.status_code == 201, joined.text
    return sale, start


def test_shopper_joins_the_line_waits_and_buys_with_the_pass(live, shots):
    from playwright.sync_api import expect

    for name in ("alex", "sam"):
        get_user_model().objects.create_user(name, password=PASSWORD)
    for name in ("kim", "noor"):
        shopper(name)
    with chromium() as browser:
        page = browser.new_context(viewport=DESKTOP).new_page()
        log_in(page, live, "kim", "/orders/")
        quiet = browser.new_context(viewport=PHONE, java_script_enabled=False).new_page()
        log_in(quiet, live, "noor", "/orders/")
        # The sale opens 3 s from now, once both shoppers are logged in (logins are slow on a busy box).
        sale, start = open_sale_with_two_early_joiners(live)
        product_path = f"/products/{sale.slug}/"
        line_path = f"/products/{sale.slug}/line/"
        page.goto(f"{live}{product_path}")
        expect(page.locator("[data-line-panel]")).to_be_visible()
        expect(page.locator("[data-buy-form]")).to_be_hidden()  # buying needs the line here
        page.wait_for_function(f"Date.now() > {int(start.timestamp() * 1000) + 500}")
        page.click("[data-join-line]")
        page.wait_for_url(f"{live}{line_path}")
        # Kim arrived after the start, behind both early joiners: admitted about 20 s after the start.
        position = page.locator("[data-line-position]")
        expect(position).to_be_visible()
        first_seen = position.inner_text()
        assert first_seen in ("0", "1"), first_seen
        expect(page.locator("[data-line-wait]")).not_to_be_empty()
        screenshot(page, "waiting-room", shots)
        # Live: the page's script asks the queue API (when retry_after says), then shows the buy form.
        with page.expect_response(lambda response: response.url.endswith(f"/api/products/{sale.pk}/queue/"),
                                  timeout=WAIT_MS) as polled:
            pass
        assert polled.value.status == 200
        buy = page.locator("[data-line-buy-form] [data-buy-button]")
        expect(buy).to_be_visible(timeout=WAIT_MS)  # the page turned into the buy form by itself
        page.click("[data-line-buy-form] [data-buy-button]")
        page.wait_for_url(f"{live}/orders/*/")
        expect(page.locator("body")).to_contain_text("Midnight Vinyl")

        # JavaScript off: the <noscript> refresh brings the buy form all the same.
        quiet.goto(f"{live}{line_path}")
        quiet.click("[data-join-line]")
        quiet.wait_for_url(f"{live}{line_path}")
        expect(quiet.locator("[data-line-buy-form] [data-buy-button]")).to_be_visible(timeout=WAIT_MS)
        quiet.click("[data-line-buy-form] [data-buy-button]")
        quiet.wait_for_url(f"{live}/orders/*/")

    assert Order.objects.filter(product=sale, user__username__in=["kim", "noor"]).count() == 2
