"""Sold-out answers made straight from gunicorn's parsed request, before the WSGI stack.

When a flash sale has sold out, nearly every request is a plain purchase that will hear
`409 sold_out`. Through the WSGI stack each one paid, besides the fast path itself,
gunicorn's environ (`wsgi.create`), its response machinery (`start_response`, per-header
checks, the head written in pieces), the stock replay's and body gate's wrappers: about
as much again as the answer's own work (on the 2-core machine, ~180 of ~330 µs in-process).
A stock read, which the refusal is held against, pays the same, so the refusal could not
come near it. Here the gevent worker (flashsale.gunicorn_worker) hands such a request to
the purchase fast path's `known_refusal` with an environ built only from what the request
carries, and writes the answer's head itself.

What stays exactly as before:

- **The parsing and every HTTP-edge rule**: gunicorn has parsed and checked the request
  (limits, malformed heads, Content-Length / Transfer-Encoding, forwarded headers and
  which peers may set them, the scheme) before anything here looks at it.
- **The answer**: the fast path's own `_respond` (token, limits, input, then the purchase
  service, which decides), with the status line, `Server`, `Date` and `Connection`
  gunicorn would have written (tests compare the bytes of both ways).
- **Everything else goes the usual way, untouched**: a body that is not a Content-Length
  body already received whole (the body gate's deadline then applies), a product without
  a fresh sold-out mark, any request the fast path would not answer itself, a
  `SCRIPT_NAME`, the PROXY protocol, `Expect: 100-continue`, a unix-socket listener. The
  body is only looked at in gunicorn's buffer; it is taken from there only when the
  answer is made here.
- **The worker's bookkeeping**: the request counts toward `max_requests`, and a draining
  worker or `Connection: close` closes the connection after the answer.

Off when EARLY_REFUSALS=0 or PURCHASE_FAST_PATH=0, and whenever gunicorn is set to see
each request itself: an access log (`accesslog` or a logging configuration), a logger
class of one's own, debug logging, statsd, syslog, or `pre_request` / `post_request` hooks
other than its own; and whenever anything but Django's own housekeeping listens to
Django's request signals (flashsale.request_cycle).
"""

from __future__ import annotations

import io
import os

from gunicorn import SERVER, SERVER_SOFTWARE, glogging, util
from gunicorn import config as gunicorn_config
from gunicorn.http.body import LengthReader
from gunicorn.util import unquote_to_wsgi_str

PATH = "/api/orders/"
MAX_BODY = 4096  # a plain purchase is a few dozen bytes; anything larger goes through the body gate


def answerer(application, cfg, log):
    """The fast path's `known_refusal` when this worker may answer early, else None."""
    known_refusal = getattr(application, "known_refusal", None)
    if known_refusal is None or not _gunicorn_sees_nothing_of_it(cfg, log):
        return None
    return known_refusal


def _gunicorn_sees_nothing_of_it(cfg, log) -> bool:
    """True when gunicorn itself would do nothing with a request but serve it: answering one
    here must not hide it from a log, a metric or a hook someone configured (gunicorn's own
    `pre_request` only logs each request at debug level)."""
    hooks_are_gunicorns = all(
        cfg.settings[name].get() is getattr(gunicorn_config, cls).default
        for name, cls in (("pre_request", "PreRequest"), ("post_request", "PostRequest")))
    return (hooks_are_gunicorns and type(log) is glogging.Logger and not log.access_log_enabled
            and cfg.loglevel.lower() != "debug" and not cfg.statsd_host and not cfg.syslog
            and cfg.proxy_protocol == "off" and not cfg.is_ssl and not os.environ.get("SCRIPT_NAME"))


def _largest_body() -> int:
    """The body gate refuses more than DATA_UPLOAD_MAX_MEMORY_SIZE (413): never answer such a body here."""
    # Imported here: the worker module (and so this one) is loaded before any Django settings
    # exist, and by servers of other applications (stress.bare_view), where gevent's patching
    # would trip over an unconfigured LazySettings object.
    from django.conf import settings

    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return MAX_BODY if limit is None else min(MAX_BODY, limit)


def buffered_body(req) -> bytes | None:
    """The body of a Content-Length request when gunicorn already holds all of it, else None.

    Looked at, not taken: the request goes on to the WSGI stack intact if it is not answered
    here (`take_body` then takes it).
    """
    body = req.body
    reader = getattr(body, "reader", None)
    if type(reader) is not LengthReader or body.buf.tell() or not 0 < reader.length <= _largest_body():
        return None
    buffer = getattr(reader.unreader, "buf", None)
    if not isinstance(buffer, io.BytesIO):
        return None
    with buffer.getbuffer() as held:  # released at once: gunicorn writes to this buffer again
        return bytes(held[:reader.length]) if held.nbytes >= reader.length else None


def take_body(req, body: bytes) -> None:
    """Take the body `buffered_body` returned out of gunicorn's buffer (no socket read: it is all there)."""
    taken = req.body.reader.read(len(body))
    if taken != body:  # cannot happen while buffered_body saw it whole; never answer on other bytes
        raise RuntimeError("the request body changed in gunicorn's buffer")


def environ_for(req, client, server, body: bytes) -> dict | None:
    """What gunicorn's `wsgi.create` would put in the environ about this request (method,
    target, protocol, every header mapped and repeated fields joined as it does, scheme,
    addresses), without its machinery (`wsgi.*` callables, the socket), and the body as the
    body gate (flashsale.request_body) hands it on: in memory, with its true length. None
    for what only `wsgi.create` handles (a `SCRIPT_NAME` header, `Expect: 100-continue`,
    addresses that are not (host, port) pairs)."""
    if req._expected_100_continue or not isinstance(server, tuple) or not isinstance(client, tuple):
        return None
    environ = {"SERVER_SOFTWARE": SERVER_SOFTWARE, "REQUEST_METHOD": req.method, "QUERY_STRING": req.query,
               "RAW_URI": req.uri, "SERVER_PROTOCOL": f"HTTP/{req.version[0]}.{req.version[1]}"}
    repeated = {}
    for name, value in req.headers:
        if name == "SCRIPT_NAME":
            return None
        if name == "CONTENT-TYPE":
            environ["CONTENT_TYPE"] = value
            continue
        if name == "CONTENT-LENGTH":
            continue  # the body's own length is set below, as the body gate sets it
        key = "HTTP_" + name.replace("-", "_")
        if key in environ:
            repeated.setdefault(key, [environ[key]]).append(value)
        else:
            environ[key] = value
    for key, values in repeated.items():
        environ[key] = ",".join(values)
    environ.update({
        "wsgi.url_scheme": req.scheme, "REMOTE_ADDR": client[0], "REMOTE_PORT": str(client[1]),
        "SERVER_NAME": server[0], "SERVER_PORT": str(server[1]),
        "PATH_INFO": unquote_to_wsgi_str(req.path), "SCRIPT_NAME": "",
        "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)),
    })
    return environ


def answer_head(req, status: str, headers, *, close: bool) -> bytes:
    """The head gunicorn's Response writes for these headers (its default_headers first)."""
    lines = [f"HTTP/{req.version[0]}.{req.version[1]} {status}\r\n", f"Server: {SERVER}\r\n",
             f"Date: {util.http_date()}\r\n", f"Connection: {'close' if close else 'keep-alive'}\r\n"]
    lines.extend(f"{name}: {value}\r\n" for name, value in headers)
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")
