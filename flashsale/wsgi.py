import os

from django.core.wsgi import get_wsgi_application

from flashsale import embedded

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flashsale.settings.local")
embedded.provide()  # a checkout's servers when the env names none; production settings skip this

application = get_wsgi_application()
