"""What staff see of the lines: the dashboard panel, /metrics gauges, the admin fields, the DB constraint."""

import re
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.test import Client, override_settings

from products.models import Product
from tests.servers import scratch_redis
from waiting_room.services import join_line


@pytest.fixture
def staff_browser(staff):
    client = Client()
    client.force_login(staff)
    return client


def _busy_line(line_product, make_user):
    product = line_product(rate=1, starts_in=timedelta(seconds=-1))
    for _ in range(3):
        join_line(user=make_user(), product_id=product.pk)
    return product


def test_dashboard_shows_each_line_its_length_admitted_and_rate(line_product, make_user, make_product,
                                                                staff_browser):
    product = _busy_line(line_product, make_user)
    plain = make_product()
    html = staff_browser.get("/dashboard/").content.decode()
    row = re.search(rf'<tr data-line-row="{product.pk}">.*?</tr>', html, re.DOTALL).group(0)
    assert "data-line-length>3<" in row and "data-line-admitted>1<" in row and "data-line-rate>1<" in row
    assert f'data-line-row="{plain.pk}"' not in html


def test_dashboard_says_when_the_lines_cannot_be_read(line_product, staff_browser, settings):
    line_product()
    with scratch_redis() as redis_server:
        caches = {"default": {**settings.CACHES["default"], "LOCATION": redis_server.url}}
        with override_settings(CACHES=caches):
            redis_server.stop()
            page = staff_browser.get("/dashboard/")
    assert page.status_code == 200
    assert "the waiting rooms are open" in page.content.decode()


def test_metrics_export_the_lines_as_gauges(line_product, make_user, client):
    product = _busy_line(line_product, make_user)
    text = client.get("/metrics").content.decode()
    labels = f'product_id="{product.pk}",slug="{product.slug}"'
    assert f"flashsale_waiting_room_length{{{labels}}} 3.0" in text
    assert f"flashsale_waiting_room_admitted{{{labels}}} 1.0" in text
    assert f"flashsale_waiting_room_admit_per_minute{{{labels}}} 1.0" in text


def test_admin_edits_the_waiting_room(staff_browser, make_product, staff):
    staff.is_superuser = True
    staff.save(update_fields=["is_superuser"])
    product = make_product()
    page = staff_browser.get(f"/admin/products/product/{product.pk}/change/").content.decode()
    assert 'name="waiting_room"' in page and 'name="admit_per_minute"' in page
    add_page = staff_browser.get("/admin/products/product/add/").content.decode()
    assert 'name="waiting_room"' in add_page and 'name="admit_per_minute"' in add_page
    form = {"name": product.name, "slug": product.slug, "description": "", "image_url": "", "price": "9.99",
            "sale_starts_at_0": "", "sale_starts_at_1": "", "sale_ends_at_0": "", "sale_ends_at_1": "",
            "max_per_user": ""}
    saved = staff_browser.post(f"/admin/products/product/{product.pk}/change/",
                               {**form, "waiting_room": "on", "admit_per_minute": "30"})
    assert saved.status_code == 302, saved.content.decode()[:2000]
    product.refresh_from_db()
    assert (product.waiting_room, product.admit_per_minute) == (True, 30)
    refused = staff_browser.post(f"/admin/products/product/{product.pk}/change/", {**form, "admit_per_minute": "0"})
    assert refused.status_code == 200  # the form shows the error; nothing saved
    product.refresh_from_db()
    assert product.admit_per_minute == 30


def test_the_database_refuses_a_rate_below_one(make_product):
    product = make_product()
    with pytest.raises(IntegrityError), transaction.atomic():
        Product.objects.filter(pk=product.pk).update(admit_per_minute=0)
