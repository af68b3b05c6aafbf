"""Django's ALLOWED_HOSTS check on a WSGI environ, for the layers that answer before Django."""

from django.conf import settings
from django.http.request import split_domain_port, validate_host


def allowed_host(environ) -> bool:
    """Django's ALLOWED_HOSTS check; a refused Host goes to Django for its own 400."""
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    if settings.USE_X_FORWARDED_HOST and "HTTP_X_FORWARDED_HOST" in environ:
        host = environ["HTTP_X_FORWARDED_HOST"]
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)
