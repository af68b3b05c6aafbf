"""A request id on every log line of a request, and on the response.

The id is the caller's `X-Request-ID` when it looks like one (nginx, a load balancer or a
client may set it, so one id follows a request across hops), else 128 fresh random bits
in hex (32 characters, like a uuid4's hex, from Python's generator: an id need not be
unguessable, and uuid4 costs a getrandom system call per request). It sits
in a context variable for the request's life; `RequestIdFilter` copies it onto every log
record, whatever logger wrote it.
"""

import contextvars
import logging
import random
import re

from django.core.signals import request_finished

HEADER = "X-Request-ID"
_current: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
# Printable, no spaces or quotes, bounded: a hostile id must not forge log lines.
_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")


def current_request_id() -> str:
    return _current.get()


def request_id_for(incoming: str) -> str:
    """The caller's id when it looks like one, else a fresh one."""
    return incoming if _ACCEPTABLE.match(incoming) else f"{random.getrandbits(128):032x}"


def use_request_id(request_id: str) -> None:
    """For the WSGI layers that answer before Django: log lines carry the id until request_finished."""
    _current.set(request_id)


def request_id_middleware(get_response):
    def middleware(request):
        request_id = request_id_for(request.headers.get(HEADER, ""))
        request.request_id = request_id
        # Not reset on the way out: Django logs "Not Found"/"Internal Server Error" after
        # the middleware returns. `request_finished` clears it once the response is closed.
        _current.set(request_id)
        response = get_response(request)
        response[HEADER] = request_id
        return response

    return middleware


def forget_request_id(**kwargs) -> None:
    _current.set("-")


request_finished.connect(forget_request_id, dispatch_uid="flashsale.request_id.forget")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _current.get()
        return True
