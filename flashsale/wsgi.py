"""The WSGI application gunicorn serves: Django behind the request-body gate (flashsale.request_body),
behind the stock endpoint's replay (products.stock_reads), which answers known reads before any of it."""

import os

from django.core.wsgi import get_wsgi_application

from flashsale import embedded

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flashsale.settings.local")
embedded.provide()  # a checkout's servers when the env names none; production settings skip this

django_application = get_wsgi_application()

from flashsale.request_body import RequestBodyGate  # noqa: E402  (needs the settings configured above)
from products.stock_reads import StockReadReplay  # noqa: E402

application = StockReadReplay(RequestBodyGate(django_application))
