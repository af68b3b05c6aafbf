"""The WSGI application gunicorn serves, outermost first:

- the stock endpoint's replay (products.stock_reads), which answers known reads before any of it;
- the request-body gate (flashsale.request_body), which reads every body whole, bounded in size and time;
- the purchase fast path (orders.fast_path), which answers plain token purchases with the service;
- Django, which answers everything else.

The gevent worker may answer a plain purchase of a sold-out product before all of these
(flashsale.early_refusals), with the purchase fast path's own answer.
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

purchase_fast_path = PurchaseFastPath(django_application)
application = StockReadReplay(RequestBodyGate(purchase_fast_path))
# For the gevent worker, which answers sold-out purchases from gunicorn's parsed request
# (flashsale.early_refusals) with the fast path's own answer.
application.known_refusal = purchase_fast_path.known_refusal
