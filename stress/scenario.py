"""The flash-sale scenario of `manage.py stress`: a fresh product, N shoppers, purchases over HTTP.

Setup goes straight to the database through the services (the same ones the API uses);
the purchases and the read-back go through the public API only, so the verdict is what
an outside client would see.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import httpx
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.authtoken.models import Token

from products.models import Product
from products.services import create_product, update_product
from shoppers.services import create_shoppers
from stress.http1 import prepare
from stress.load import Tally, loopback_target, run_load


@dataclass(frozen=True)
class Sale:
    product_id: int
    stock: int
    tokens: list[str]  # one per buyer
    reader_token: str  # a staff token, to read every order of the product back


def prepare_sale(*, buyers: int, stock: int, same_user: bool = False, on_progress=None) -> Sale:
    """A fresh, open product with `stock` units and `buyers` shoppers (or one shopper, `buyers` times)."""
    run = f"stress-{int(time.time() * 1000):x}"
    now = timezone.now()
    product = create_product(
        name=f"Load test {run}", slug=run, price=Decimal("1.00"), stock=stock,
        description="Made by manage.py stress.", sale_starts_at=now - timedelta(minutes=1),
        sale_ends_at=now + timedelta(days=1),
    )
    pairs = create_shoppers(count=1 if same_user else buyers, prefix=run, on_progress=on_progress)
    tokens = [pairs[0][1]] * buyers if same_user else [token for _, token in pairs]
    reader = get_user_model().objects.create_user(username=f"{run}-reader", is_staff=True)
    reader_token = Token.objects.create(user=reader).key
    return Sale(product_id=product.pk, stock=stock, tokens=tokens, reader_token=reader_token)


def buy(base_url: str, sale: Sale, *, quantity: int = 1):
    """The Send function of one purchase per request; request i is made by buyer i (cycling)."""
    target = loopback_target(base_url)
    body = json.dumps({"product_id": sale.product_id, "quantity": quantity}).encode()
    requests = [prepare("POST", "/api/orders/", host=target.host_header, body=body,
                        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"})
                for token in sale.tokens]
    return lambda index: requests[index % len(requests)]


def fire_purchases(base_url: str, sale: Sale, *, concurrency: int, quantity: int = 1,
                   duration: float | None = None, on_progress=None) -> Tally:
    """Burst: every buyer once; sustained (`duration`): buyers again and again until time is up."""
    total = None if duration is not None else len(sale.tokens)
    return asyncio.run(run_load(buy(base_url, sale, quantity=quantity), base_url=base_url, concurrency=concurrency,
                                total=total, duration=duration, on_progress=on_progress))


def read_back(base_url: str, sale: Sale) -> dict:
    """The product's stock and its confirmed orders, as the API reports them."""
    headers = {"Authorization": f"Token {sale.reader_token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        product = client.get(f"/api/products/{sale.product_id}/").raise_for_status().json()
        units, orders = 0, 0
        page = f"/api/orders/?product={sale.product_id}&status=confirmed&page_size=100"
        while page:
            listing = client.get(page).raise_for_status().json()
            orders += len(listing["results"])
            units += sum(order["quantity"] for order in listing["results"])
            page = listing["next"]
    return {"stock": product["stock"], "orders": orders, "units_sold": units}


def verdict(sale: Sale, tally: Tally, outcome: dict, *, quantity: int) -> dict:
    """Check the guarantees on what the API answered and what it reports afterwards."""
    created = tally.count(status=201)
    server_errors = tally.count(at_least=500)
    no_answer = tally.count(status=0)
    oversold = max(0, outcome["units_sold"] - sale.stock, created * quantity - sale.stock, -outcome["stock"])
    checks = {
        "nothing oversold": oversold == 0,
        "stock never negative": outcome["stock"] >= 0,
        "stock + units sold == units received": outcome["stock"] + outcome["units_sold"] == sale.stock,
        "every 201 is one order": created == outcome["orders"],
        "no 5xx answers": server_errors == 0,
        "every request answered": no_answer == 0,
    }
    return {"passed": all(checks.values()), "oversold": oversold, "checks": checks}



def close_sale(sale: Sale) -> None:
    """End the load test's sale once it is measured, so the shop lists it as ended, not for sale."""
    update_product(product=Product.objects.get(pk=sale.product_id), sale_ends_at=timezone.now())
