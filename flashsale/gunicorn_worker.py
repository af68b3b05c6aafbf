"""gunicorn's gevent worker, with deadlines for slow clients and the contract's JSON for refusals.

`worker_class = "flashsale.gunicorn_worker.ShopGeventWorker"` (gunicorn.conf.py). What it
adds to gunicorn's GeventWorker (docs/http-edges.md has the whole picture):

- **A deadline for the request head.** From the moment the worker waits for a request on
  a connection until the blank line after its headers: REQUEST_HEAD_TIMEOUT seconds
  (default 10). A connection that sent nothing in that time (a new one, or an idle
  keep-alive one) is closed silently; one that sent part of a request gets `408` (JSON
  under /api/) and is closed. gunicorn's own gevent worker bounds this wait by `keepalive`
  only when keep-alive is on, and ends it silently.
- **Refusals made before Django are JSON under /api/**: header block too large (431),
  request line too long (414), malformed request line or header, control characters,
  conflicting Content-Length / Transfer-Encoding (400), unknown transfer coding (501).
  The request target is read from the bytes received so far, so this works even when
  gunicorn gave up before it built a request. Elsewhere gunicorn's HTML stays.
- **One send for a small answer.** gunicorn writes the status line and headers, then the
  body, in two sends; `CoalescingResponse` holds the head and sends it with the first body
  bytes (an answer of the shop is one body chunk), so a sold-out answer or a stock read
  costs one system call and one greenlet round through the hub instead of two.
- **A body left unread is not drained for ever.** When the application answered without
  reading the whole body (flashsale.request_body refuses a too-large one from its
  Content-Length), the connection closes after a lingering close (at most 2 s and 256 KiB
  read and dropped, so the client can read the answer before the socket goes away).

The body's own deadline (REQUEST_BODY_TIMEOUT) is kept by flashsale.request_body, a WSGI
middleware, which reads the body before Django does.

Slow clients cost a greenlet each, not a worker: gunicorn's `worker_connections` (1000 per
worker by default) bounds how many one worker holds. TLS and HTTP/2 are left to gunicorn's
own code paths (they end at the proxy in the shipped stacks).
"""

import errno
import os
import socket
import time
from email.utils import formatdate
from urllib.parse import urlsplit

import gevent
from gunicorn import util
from gunicorn.http import errors as http_errors
from gunicorn.http import wsgi
from gunicorn.http.message import Request
from gunicorn.http.parser import RequestParser
from gunicorn.workers import ggevent
from gunicorn.workers.ggevent import GeventWorker

from flashsale import early_refusals
from flashsale.accept_balance import Balance, BalancedStreamServer

REQUEST_HEAD_TIMEOUT = float(os.environ.get("REQUEST_HEAD_TIMEOUT", "10"))
# Enough of a request's first bytes to read its target from.
_HEAD_SAMPLE = 8192
_MAX_PEERS = 10_000  # client addresses whose forwarding verdict is remembered; emptied when full
_trusted_peers: dict[tuple[int, str], bool] = {}


class RequestHeadTimeout(Exception):
    """The request line and headers did not arrive within REQUEST_HEAD_TIMEOUT."""


class ShopRequest(Request):
    """gunicorn's Request, remembering the first bytes of its head.

    When parsing fails or times out, gunicorn has no request object to ask for the path;
    those bytes tell whether the client was talking to /api/.
    """

    def __init__(self, cfg, unreader, peer_addr, req_number=1):
        self.head_seen = bytearray()
        try:
            super().__init__(cfg, unreader, peer_addr, req_number)
        except BaseException as exc:
            exc.head_seen = bytes(self.head_seen)
            raise

    def _peer_is_trusted_proxy(self):
        """gunicorn's verdict on the peer (may it set forwarding headers?), remembered per
        address: gunicorn parses the address with `ipaddress` for every request, ~3 % of a
        sold-out answer's CPU. The verdict depends only on the address and the settings."""
        if not isinstance(self.peer_addr, tuple):
            return super()._peer_is_trusted_proxy()
        key = (id(self.cfg), self.peer_addr[0])
        trusted = _trusted_peers.get(key)
        if trusted is None:
            trusted = super()._peer_is_trusted_proxy()
            if len(_trusted_peers) >= _MAX_PEERS:
                _trusted_peers.clear()
            _trusted_peers[key] = trusted
        return trusted

    def read_into(self, unreader, buf, stop=False):
        before = len(buf)
        super().read_into(unreader, buf, stop)
        if len(self.head_seen) < _HEAD_SAMPLE:
            self.head_seen += buf[before:before + _HEAD_SAMPLE - len(self.head_seen)]


class ShopRequestParser(RequestParser):
    mesg_class = ShopRequest


def request_target(head: bytes) -> str:
    """The path of the request line in `head` (possibly cut short), or ''."""
    line = head.lstrip(b"\r\n").split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    if len(parts) < 2:
        return ""
    target = parts[1].decode("latin-1")
    if target.startswith(("http://", "https://")):
        return urlsplit(target).path
    return target


def _refusal_status(exc) -> tuple[str, str]:
    """(status line, detail) for gunicorn's refusal of a request it could not parse."""
    if isinstance(exc, http_errors.LimitRequestLine):
        return "414 URI Too Long", "The request line is too long."
    if isinstance(exc, http_errors.LimitRequestHeaders):
        return "431 Request Header Fields Too Large", "The request headers are too large."
    if isinstance(exc, http_errors.UnsupportedTransferCoding):
        return "501 Not Implemented", "Only the chunked transfer coding is supported."
    if isinstance(exc, http_errors.ExpectationFailed):
        return "417 Expectation Failed", "Only 'Expect: 100-continue' is supported."
    if isinstance(exc, http_errors.ForbiddenProxyRequest):
        return "403 Forbidden", "Request forbidden."
    if isinstance(exc, (http_errors.InvalidChunkSize, http_errors.ChunkMissingTerminator,
                        http_errors.InvalidChunkExtension)):
        return "400 Bad Request", "The chunked body is malformed."
    if isinstance(exc, (http_errors.InvalidRequestLine, http_errors.InvalidRequestMethod,
                        http_errors.InvalidHTTPVersion)):
        return "400 Bad Request", "The request line is malformed."
    if isinstance(exc, (http_errors.InvalidHeader, http_errors.InvalidHeaderName, http_errors.ObsoleteFolding)):
        return "400 Bad Request", ("A request header is malformed, or Content-Length and "
                                   "Transfer-Encoding do not agree.")
    return "400 Bad Request", "The request is not valid HTTP."


def _is_client_error(exc) -> bool:
    # A response header the application made up is the application's fault (gunicorn: 500).
    return isinstance(exc, http_errors.ParseException) and not isinstance(
        exc, (http_errors.ConfigurationProblem, http_errors.InvalidResponseHeader,
              http_errors.InvalidResponseHeaderName))


def _body_left_unread(req) -> bool:
    body = getattr(req, "body", None)
    if body is None:
        return False
    reader = body.reader
    return bool(body.failed or getattr(reader, "length", 0) or getattr(reader, "parser", None))


class CoalescingResponse(wsgi.Response):
    """gunicorn's Response, sending the head together with the first body bytes.

    `headers_sent` turns true only once the head is on the wire, so gunicorn's error
    handling (a 500 only while nothing was sent) sees exactly what it saw before.
    """

    _head = b""

    def send_headers(self):
        if self.headers_sent or self._head:
            return
        lines = self.default_headers()
        lines.extend(f"{name}: {value}\r\n" for name, value in self.headers)
        self._head = util.to_bytestring("{}\r\n".format("".join(lines)), "latin-1")

    def _flush_head(self, body: bytes = b"") -> None:
        head, self._head = self._head, b""
        if head:
            _send_whole(self.sock, head + body)
            self.headers_sent = True

    def _emit_body(self, data):
        if self._head and not self.chunked:
            self._flush_head(data)
            return
        self._flush_head()
        super()._emit_body(data)

    def write_file(self, respiter):
        self.send_headers()
        self._flush_head()
        return super().write_file(respiter)

    def close(self):
        self.send_headers()
        self._flush_head()
        super().close()


def _send_whole(sock, data: bytes) -> None:
    """`sendall`, in one `send` when the kernel takes it all (an answer of the shop fits):
    gevent's sendall first asks the socket its buffer size, a system call per answer."""
    sent = sock.send(data)
    if sent < len(data):
        sock.sendall(memoryview(data)[sent:])


_date_line = (0, "")  # (second, HTTP date): gunicorn formats the Date header anew for every answer


def http_date(timestamp=None) -> str:
    """gunicorn.util.http_date, formatted once per second for the current time."""
    global _date_line  # noqa: PLW0603 (one worker process's clock-second memo)
    if timestamp is not None:
        return formatdate(timestamp, localtime=False, usegmt=True)
    now = int(time.time())
    second, text = _date_line
    if second != now:
        text = formatdate(now, localtime=False, usegmt=True)
        _date_line = (now, text)
    return text


class ShopGeventWorker(GeventWorker):

    def init_process(self):
        # wsgi.create() builds `wsgi.Response` for every HTTP/1 request of this worker process,
        # and its default_headers() asks util.http_date() for each one's Date.
        wsgi.Response = CoalescingResponse
        util.http_date = http_date
        self.balance = None
        table = getattr(self, "accept_table", None)  # made by gunicorn.conf.py's hooks in the master
        if table is not None and getattr(self, "accept_slot", None) is not None and self.cfg.workers > 1 \
                and not self.cfg.reuse_port:
            # GeventWorker.run builds its servers by this module-level name; this process only.
            self.balance = BalancedStreamServer.balance = Balance(table, self.accept_slot,
                                                                  full_at=self.worker_connections)
            ggevent.StreamServer = BalancedStreamServer
        super().init_process()

    def notify(self):
        super().notify()
        if self.balance is not None:
            if self.alive:
                self.balance.beat()
            else:
                self.balance.stop()  # draining: it accepts nothing more

    def handle(self, listener, client, addr):
        if self.cfg.is_ssl:
            return super().handle(listener, client, addr)
        client.setblocking(1)
        parser = ShopRequestParser(self.cfg, client, addr)
        listener_name = listener.getsockname()
        req = None
        try:
            while True:
                req = None
                with gevent.Timeout(REQUEST_HEAD_TIMEOUT, RequestHeadTimeout):
                    req = next(parser)
                if not req:
                    break
                answered = self._answer_early(listener_name, req, client, addr)
                if answered is None:
                    self.handle_request(listener_name, req, client, addr)
                elif not answered:
                    break  # the answer said Connection: close
                if not self.cfg.keepalive:
                    break
                if _body_left_unread(req):
                    # gunicorn would drain it, unbounded, before reading the next request.
                    _linger(client)
                    break
        except (StopIteration, http_errors.NoMoreData):
            pass  # the client closed, or the answer said Connection: close
        except RequestHeadTimeout as exc:
            head = getattr(exc, "head_seen", b"")
            if head:  # silence on an idle connection is not worth an answer
                self.log.info("Request head not complete within %gs from ip=%s", REQUEST_HEAD_TIMEOUT, addr[0])
                self._refuse(client, request_target(head), "408 Request Timeout",
                             f"The request headers did not arrive within {REQUEST_HEAD_TIMEOUT:g} seconds.")
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                self.log.exception("Socket error processing request.")
        except Exception as exc:
            self.handle_error(req, client, addr, exc)
        finally:
            util.close(client)

    def load_wsgi(self):
        super().load_wsgi()
        self.early_refusal = early_refusals.answerer(self.wsgi, self.cfg, self.log)

    def _answer_early(self, listener_name, req, client, addr) -> bool | None:
        """A sold-out answer made before the WSGI stack (flashsale.early_refusals): True when
        answered on a connection kept alive, False when answered and it closes, None when the
        request is left, untouched, to `handle_request`."""
        known_refusal = getattr(self, "early_refusal", None)
        if known_refusal is None or req.method != "POST" or req.path != early_refusals.PATH:
            return None
        body = early_refusals.buffered_body(req)
        if body is None:
            return None
        environ = early_refusals.environ_for(req, addr, listener_name, body)
        if environ is None:
            return None
        answer = known_refusal(environ)
        if answer is None:
            return None
        status, headers, content = answer
        early_refusals.take_body(req, body)
        self.nr += 1  # as handle_request counts toward max_requests
        if self.nr >= self.max_requests and self.alive:
            self.log.info("Autorestarting worker after current request.")
            self.alive = False
        close = not self.alive or not self.cfg.keepalive or req.should_close()
        _send_whole(client, early_refusals.answer_head(req, status, headers, close=close) + content)
        return not close

    def handle_error(self, req, client, addr, exc):
        known = req if req is not None else getattr(exc, "req", None)
        path = getattr(known, "path", None) or request_target(getattr(exc, "head_seen", b""))
        if not path.startswith("/api/"):
            return super().handle_error(req, client, addr, exc)
        if _is_client_error(exc):
            status, detail = _refusal_status(exc)
            self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], exc)
            self._refuse(client, path, status, detail)
        else:
            self.log.exception("Error handling request %s", path)
            from flashsale.api_errors import SERVER_ERROR_DETAIL

            self._refuse(client, path, "500 Internal Server Error", SERVER_ERROR_DETAIL,
                         code="server_error")

    def _refuse(self, client, path: str, status: str, detail: str, *, code: str = "invalid") -> None:
        from flashsale.request_body import refusal_response

        status, headers, body = refusal_response(path, status, detail, code=code)
        head = "".join(f"{name}: {value}\r\n" for name, value in headers)
        try:
            util.write_nonblock(client, f"HTTP/1.1 {status}\r\n{head}\r\n".encode("latin-1") + body)
            _linger(client)
        except OSError:
            self.log.debug("Failed to send the refusal.")


def _linger(client, *, seconds: float = 2.0, max_bytes: int = 256 * 1024) -> None:
    """Read and drop what the client is still sending before closing (a lingering close).

    Closing a socket with unread bytes makes the kernel send a reset, and the client may
    then lose the refusal it has not read yet (seen with an over-long request line).
    """
    client.shutdown(socket.SHUT_WR)
    deadline = time.monotonic() + seconds
    dropped = 0
    while dropped < max_bytes:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        client.settimeout(left)
        try:
            data = client.recv(65536)
        except TimeoutError:
            return
        if not data:
            return
        dropped += len(data)
