"""The WSGI application gunicorn serves, outermost first:

- the stock endpoint's replay (products.stock_reads), which answers known reads before any of it;
- the request-body gate (flashsale.request_body), which reads every body whole, bounded in size and time;
- the purchase fast path (orders.fast_path), which answers plain token purchases with the service;
- Django, which answers everything else.
"""

import os

from django.core.wsgi import get_wsgi_application

from flashsale import embedded

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flashsale.settings.local")
embedded.provide()  # a checkout's servers when the env names none; production settings skip this

django_application = get_wsgi_application()

from flashsale.request_body import RequestBodyGate  # noqa: E402  (needs the settings configured above)
from orders.fast_path import PurchaseFastPath  # noqa: E402
from products.stock_reads import StockReadReplay  # noqa: E402

application = StockReadReplay(RequestBodyGate(PurchaseFastPath(django_application)))
