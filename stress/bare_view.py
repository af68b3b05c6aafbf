"""The floor `make bench` holds the stock endpoint against: a bare Django view.

No middleware, no database, no DRF: Django's WSGI handler, its URL resolver and one view
answering the stock endpoint's JSON on the same path. Served by gunicorn with the shop's
own gunicorn.conf.py (and, for the issue's reference floor, gthread 3 x 4 with keep-alive).
"""

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import JsonResponse
from django.urls import path

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-bare-view-not-secret",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    USE_TZ=True,
)


def stock(request, pk: int):
    return JsonResponse({"id": pk, "stock": 100, "status": "active"}, headers={"Cache-Control": "no-store"})


urlpatterns = [path("api/products/<int:pk>/stock/", stock)]

application = get_wsgi_application()
