"""The shop in a real headless Chromium against a real gunicorn (see tests/browser.py).

A shopper signs up, watches the countdown open a sale, buys, sees the stock fall on a
second page without a reload, finds the order and cancels it; staff open the dashboard
and see the chart. `SAVE_SCREENSHOTS=1` writes the pictures to docs/screenshots/.
"""

from datetime import timedelta

import pytest
from django.contrib.auth.hashers import make_password

from orders.services import purchase
from tests.browser import DESKTOP, PASSWORD, PHONE, WAIT_MS, chromium, product_named, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

def test_shopper_signs_up_watches_the_sale_open_buys_and_cancels(live, shots):
    from playwright.sync_api import expect

    product_named("Canvas Tote", stock=40, description="Heavy cotton tote.")
    product_named("Desk Lamp", stock=3, price="35.00")
    with chromium() as browser:
        page = browser.new_context(viewport=DESKTOP).new_page()
        page.goto(f"{live}/accounts/signup/")
        screenshot(page, "signup", shots)
        page.fill("#id_username", "pat")
        page.fill("#id_password1", PASSWORD)
        page.fill("#id_password2", PASSWORD)
        page.click("main button[type=submit]")
        page.wait_for_url(f"{live}/")
        expect(page.locator(".site-nav")).to_contain_text("pat")

        # A sale that opens in a few seconds, made now that the shopper is ready.
        sale = product_named("Glow Sneakers", starts_in=timedelta(seconds=4), stock=10, max_per_user=5,
                             description="Reflective runners, ten pairs only.")
        url = f"{live}/products/{sale.slug}/"
        served = page.goto(url)
        assert 'data-status="upcoming"' in served.text()  # the server sent the countdown, not the form
        buy = page.locator("[data-buy-button]")
        if page.locator("[data-sale]").get_attribute("data-status") == "upcoming":  # a slow box may be past it
            expect(page.locator("[data-countdown-panel]")).to_be_visible()
            expect(buy).to_be_disabled()
            screenshot(page, "product-countdown", shots)
        expect(buy).to_be_enabled(timeout=WAIT_MS)  # the countdown ran out and the page switched to "buy"
        expect(page.locator("[data-countdown-panel]")).to_be_hidden()
        expect(page.locator("[data-status-badge]")).to_have_text("On sale")

        watcher = browser.new_context(viewport=PHONE).new_page()
        watcher.goto(url)
        expect(watcher.locator("[data-stock]")).to_have_text("10")
        watcher.evaluate("window.__notReloaded = true")

        page.fill("#id_quantity", "3")
        buy.click()
        page.wait_for_url(f"{live}/orders/*/")
        expect(page.locator("[data-order-badge]")).to_have_text("Confirmed")
        expect(page.locator(".messages")).to_contain_text("confirmed")
        screenshot(page, "order-detail", shots)

        expect(watcher.locator("[data-stock]")).to_have_text("7", timeout=WAIT_MS)
        assert watcher.evaluate("window.__notReloaded === true")  # it moved without a reload
        screenshot(watcher, "product-phone", shots)

        page.goto(f"{live}/orders/")
        expect(page.locator("tr[data-order]")).to_have_count(1)
        expect(page.locator("tr[data-order]")).to_contain_text("Glow Sneakers")
        screenshot(page, "orders", shots)
        page.locator("tr[data-order] a").click()
        page.click("text=Cancel this order")
        page.click("text=Yes, cancel this order")  # cancelling asks once (issue 12)
        expect(page.locator("[data-order-badge]")).to_have_text("Cancelled")
        expect(page.locator("main")).not_to_contain_text("Cancel this order")
        expect(watcher.locator("[data-stock]")).to_have_text("10", timeout=WAIT_MS)

        page.goto(f"{live}/")
        expect(page.locator(".product-card")).to_have_count(3)
        screenshot(page, "sale-list", shots)
        phone = browser.new_context(viewport=PHONE).new_page()
        phone.goto(f"{live}/")
        screenshot(phone, "sale-list-phone", shots)


def test_a_refusal_is_shown_on_the_page(live):
    from playwright.sync_api import expect

    gone = product_named("Last Scarf", stock=1)
    with chromium() as browser:
        page = browser.new_context(viewport=PHONE).new_page()
        page.goto(f"{live}/accounts/signup/")
        page.fill("#id_username", "quinn")
        page.fill("#id_password1", PASSWORD)
        page.fill("#id_password2", PASSWORD)
        page.click("main button[type=submit]")
        page.wait_for_url(f"{live}/")
        page.goto(f"{live}/products/{gone.slug}/")
        from django.contrib.auth import get_user_model

        rival = get_user_model().objects.create_user("rival", password=PASSWORD)
        purchase(user=rival, product_id=gone.pk)  # someone else takes the last one first
        # A stale page: the live poll may already have disabled the button, so submit the form
        # as a page that had not heard of the sale yet would.
        with page.expect_navigation():
            page.evaluate("document.querySelector('[data-buy-form]').submit()")
        expect(page.locator("[data-outcome]")).to_have_attribute("data-outcome", "sold_out")
        expect(page.locator("[role=alert]")).to_contain_text("Sold out.")


def test_staff_open_the_dashboard_and_see_the_chart(live, shots, make_user):
    from playwright.sync_api import expect

    chief = make_user("chief", staff=True)
    # The server runs the local settings, which do not know the tests' fast MD5 hasher.
    chief.password = make_password(PASSWORD, hasher="pbkdf2_sha256")
    chief.save(update_fields=["password"])
    tote = product_named("Canvas Tote", stock=40)
    lamp = product_named("Desk Lamp", stock=5, price="35.00")
    for n in range(6):
        buyer = make_user(f"buyer{n}")
        purchase(user=buyer, product_id=tote.pk, quantity=1 + n % 3)
        if n < 5:
            purchase(user=buyer, product_id=lamp.pk)
    with chromium() as browser:
        page = browser.new_context(viewport=DESKTOP).new_page()
        page.goto(f"{live}/dashboard/")
        page.wait_for_url(f"{live}/accounts/login/?next=/dashboard/")
        screenshot(page, "login", shots)
        page.fill("#id_username", "chief")
        page.fill("#id_password", PASSWORD)
        page.click("main button[type=submit]")
        page.wait_for_url(f"{live}/dashboard/")
        chart = page.locator('svg[data-chart="revenue-by-day"]')
        expect(chart).to_be_visible()
        assert chart.locator("rect").count() == 7  # one bar per day of the last week
        expect(page.locator('[data-kpi="orders"]')).to_have_text("11")
        expect(page.locator(f'[data-sale-row="{lamp.pk}"] [data-sell-out]')).not_to_have_text("—")
        screenshot(page, "dashboard", shots)
        page.set_viewport_size(PHONE)
        screenshot(page, "dashboard-phone", shots)
