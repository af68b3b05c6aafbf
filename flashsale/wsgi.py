"""The WSGI application gunicorn serves: Django, behind the request-body gate (flashsale.request_body)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flashsale.settings.local")

django_application = get_wsgi_application()

from flashsale.request_body import RequestBodyGate

application = RequestBodyGate(django_application)
