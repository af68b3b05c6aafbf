"""Django's ALLOWED_HOSTS check on a WSGI environ, for the layers that answer before Django."""

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http.request import split_domain_port, validate_host

_MAX_HOSTS = 1_000  # Host values are the client's to choose: a bounded memo, emptied when full
_verdicts: dict[str, bool] = {}


def allowed_host(environ) -> bool:
    """Django's ALLOWED_HOSTS check; a refused Host goes to Django for its own 400.

    The verdict for a Host value is remembered (a crowd sends one or two values) until
    ALLOWED_HOSTS or USE_X_FORWARDED_HOST change.
    """
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    if settings.USE_X_FORWARDED_HOST and "HTTP_X_FORWARDED_HOST" in environ:
        host = environ["HTTP_X_FORWARDED_HOST"]
    verdict = _verdicts.get(host)
    if verdict is None:
        domain, _port = split_domain_port(host)
        verdict = bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)
        if len(_verdicts) >= _MAX_HOSTS:
            _verdicts.clear()
        _verdicts[host] = verdict
    return verdict


@receiver(setting_changed)
def _forget_verdicts(*, setting, **kwargs) -> None:
    if setting in {"ALLOWED_HOSTS", "USE_X_FORWARDED_HOST"}:
        _verdicts.clear()
