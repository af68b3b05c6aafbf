"""The WSGI application gunicorn serves: Django, behind the stock endpoint's replay (products.stock_reads)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flashsale.settings.local")

django_application = get_wsgi_application()

from products.stock_reads import StockReadReplay  # noqa: E402  (needs the settings configured above)

application = StockReadReplay(django_application)
