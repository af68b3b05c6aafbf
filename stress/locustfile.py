"""The stress scenarios under Locust's own UI (or `--headless`).

Make the product and the shoppers first, then point Locust at a server on this machine:

    .venv/bin/python manage.py create_shoppers 2000 --prefix locust --tokens /tmp/tokens.csv
    FLASHSALE_TOKENS=/tmp/tokens.csv FLASHSALE_PRODUCT_ID=1 \
        .venv/bin/locust -f stress/locustfile.py --host http://127.0.0.1:8000

FLASHSALE_MODE=burst (default): each simulated buyer buys once and leaves, like the
burst of `manage.py stress`. FLASHSALE_MODE=sustained: buyers keep buying. With
FLASHSALE_SAME_USER=1 every buyer uses the first token. FLASHSALE_QUANTITY sets units
per purchase. The `StockWatcher` class reads the stock endpoint, like the product page.
Expected refusals (`flashsale.error_codes.SALE_REFUSALS`: 409 sold_out, insufficient_stock…) count as successes; 5xx and
anything unexpected count as failures. The server should run with rate limits off.
"""

import itertools
import os
import threading

from locust import HttpUser, constant, events, task
from locust.exception import StopUser

from flashsale.error_codes import SALE_REFUSALS
from stress.load import loopback_base_url

# code -> the status it must come with
EXPECTED_REFUSALS = {code.value: code.status for code in SALE_REFUSALS}
PRODUCT_ID = int(os.environ.get("FLASHSALE_PRODUCT_ID", "0"))
MODE = os.environ.get("FLASHSALE_MODE", "burst")
QUANTITY = int(os.environ.get("FLASHSALE_QUANTITY", "1"))


def _tokens() -> list[str]:
    path = os.environ.get("FLASHSALE_TOKENS")
    if not path:
        return []
    with open(path) as lines:
        tokens = [line.strip().split(",", 1)[1] for line in lines if "," in line]
    return tokens[:1] if os.environ.get("FLASHSALE_SAME_USER") == "1" else tokens


TOKENS = _tokens()
_next_token = itertools.cycle(TOKENS or [""])
_token_lock = threading.Lock()


@events.test_start.add_listener
def _check_setup(environment, **_kwargs):
    loopback_base_url(environment.host or "")  # raises for anything but this machine
    if not PRODUCT_ID or not TOKENS:
        raise SystemExit("set FLASHSALE_PRODUCT_ID and FLASHSALE_TOKENS (a create_shoppers --tokens file)")


class Buyer(HttpUser):
    wait_time = constant(0)
    weight = 10

    def on_start(self):
        with _token_lock:
            self.client.headers["Authorization"] = f"Token {next(_next_token)}"

    @task
    def buy(self):
        with self.client.post("/api/orders/", json={"product_id": PRODUCT_ID, "quantity": QUANTITY},
                              name="POST /api/orders/", catch_response=True) as response:
            if response.status_code == 201 or EXPECTED_REFUSALS.get(_code(response)) == response.status_code:
                response.success()
            else:
                response.failure(f"{response.status_code} {_code(response)}")
        if MODE == "burst":
            raise StopUser()


class StockWatcher(HttpUser):
    wait_time = constant(0.5)
    weight = 1

    @task
    def read_stock(self):
        self.client.get(f"/api/products/{PRODUCT_ID}/stock/", name="GET /api/products/{id}/stock/")


def _code(response) -> str:
    try:
        return str(response.json().get("code", "?"))
    except ValueError:
        return "non_json"
