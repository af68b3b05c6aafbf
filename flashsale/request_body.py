"""The request body, read whole before Django sees the request: bounded in size and in time.

gunicorn hands a chunked body over without a CONTENT_LENGTH (it sets
`wsgi.input_terminated`), and Django reads no body without one: a chunked purchase was
silently seen as empty. Here every body, chunked or with a Content-Length, is read up to
DATA_UPLOAD_MAX_MEMORY_SIZE within REQUEST_BODY_TIMEOUT seconds, then given to Django as
an in-memory stream with its true CONTENT_LENGTH, so a chunked body is treated exactly like
the same body sent with a Content-Length.

Reading it here, before the view, also means a client that announces a body and withholds
it holds no database connection, no rate-limit slot and no row lock while it dawdles.

Refusals (JSON `{"detail", "code": "invalid"}` under /api/, plain text elsewhere, and the
connection closed, since the rest of the body is unread):

- 413 when the body is larger than the limit (from Content-Length at once, or while
  reading a chunked body);
- 408 when the body has not fully arrived in time;
- 400 when the client closed before sending what Content-Length announced, or the chunked
  framing is malformed.
"""

import contextlib
import io
import json
import sys
import time

from django.conf import settings

from flashsale.api_errors import error_body

_READ_SIZE = 64 * 1024


class BodyRefused(Exception):
    def __init__(self, status: str, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


class _BodyDeadline(Exception):
    pass


def refusal_response(path: str, status: str, detail: str, *,
                     code: str = "invalid") -> tuple[str, list[tuple[str, str]], bytes]:
    """(status, headers, body) of a transport refusal: the contract's JSON under /api/."""
    if path.startswith("/api/"):
        body = json.dumps(error_body(code, detail)).encode()
        content_type = "application/json"
    else:
        body = f"{status}\n{detail}\n".encode()
        content_type = "text/plain; charset=utf-8"
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body))), ("Connection", "close")]
    return status, headers, body


class RequestBodyGate:
    """WSGI middleware: see the module docstring."""

    def __init__(self, app, *, max_bytes: int | None = None, timeout: float | None = None):
        self.app = app
        self.max_bytes = settings.DATA_UPLOAD_MAX_MEMORY_SIZE if max_bytes is None else max_bytes
        self.timeout = settings.REQUEST_BODY_TIMEOUT if timeout is None else timeout

    def __call__(self, environ, start_response):
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        announced = environ.get("CONTENT_LENGTH") or ""
        if chunked or (announced and announced != "0"):
            try:
                body = self._read(environ, chunked=chunked, announced=announced)
            except BodyRefused as refused:
                status, headers, body = refusal_response(environ.get("PATH_INFO", ""), refused.status, refused.detail)
                start_response(status, headers)
                return [body]
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("HTTP_TRANSFER_ENCODING", None)
        return self.app(environ, start_response)

    def _read(self, environ, *, chunked: bool, announced: str) -> bytes:
        too_large = BodyRefused("413 Request Entity Too Large",
                                f"The request body is larger than the {self.max_bytes}-byte limit.")
        if chunked:
            expected = None
        else:
            try:
                expected = int(announced)
            except ValueError:
                raise BodyRefused("400 Bad Request", "Content-Length is not a number.") from None
            if expected > self.max_bytes:
                raise too_large  # refused before a byte of it is read
        stream = environ["wsgi.input"]
        if expected is not None and _already_received(stream) >= expected:
            return stream.read(expected)  # in memory already: nothing to wait for, no deadline to keep
        wanted = self.max_bytes + 1 if expected is None else expected
        parts, received = [], 0
        try:
            with _deadline(self.timeout, environ) as read:
                while received < wanted:
                    part = read(stream, min(_READ_SIZE, wanted - received))
                    if not part:
                        break
                    parts.append(part)
                    received += len(part)
        except (TimeoutError, _BodyDeadline):
            raise BodyRefused("408 Request Timeout",
                              f"The request body did not arrive within {self.timeout:g} seconds.") from None
        except OSError:
            raise  # the client is gone: nothing to answer
        except Exception as exc:
            # gunicorn's own framing errors (InvalidChunkSize, ChunkMissingTerminator, ...)
            raise BodyRefused("400 Bad Request", f"The chunked body is malformed: {type(exc).__name__}.") from None
        if received > self.max_bytes:
            raise too_large
        if expected is not None and received < expected:
            raise BodyRefused("400 Bad Request",
                              f"The body ended after {received} of the {expected} bytes Content-Length announced.")
        return b"".join(parts)


def _already_received(stream) -> int:
    """How many bytes of a Content-Length body gunicorn already holds in memory (it reads
    the first segment whole, so a small body has usually arrived with its head); 0 when
    this is not gunicorn's body reader (then the body is read under the deadline)."""
    buffer = getattr(getattr(getattr(stream, "reader", None), "unreader", None), "buf", None)
    if not isinstance(buffer, io.BytesIO) or type(stream.reader).__name__ != "LengthReader":
        return 0
    return buffer.getbuffer().nbytes


class _deadline:
    """A hard deadline for the whole body.

    Under gevent (the shipped worker) a gevent.Timeout interrupts the read wherever it
    blocks. Other workers get a socket timeout of whatever time is left before each read:
    a bound per read, which a client dribbling a byte just under it can stretch.
    """

    def __init__(self, seconds: float, environ):
        self.seconds = seconds
        self.sock = environ.get("gunicorn.socket")
        self.timer = None

    def __enter__(self):
        self.until = time.monotonic() + self.seconds
        monkey = sys.modules.get("gevent.monkey")
        if monkey is not None and monkey.is_module_patched("socket"):
            import gevent

            self.timer = gevent.Timeout(self.seconds, _BodyDeadline)
            self.timer.start()
            return self._read_under_timer
        self.previous = self.sock.gettimeout() if self.sock is not None else None
        return self._read_with_socket_timeout

    def __exit__(self, *exc_info):
        if self.timer is not None:
            self.timer.close()
        elif self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.settimeout(self.previous)
        return False

    @staticmethod
    def _read_under_timer(stream, size):
        return stream.read(size)

    def _read_with_socket_timeout(self, stream, size):
        left = self.until - time.monotonic()
        if left <= 0:
            raise _BodyDeadline()
        if self.sock is not None:
            self.sock.settimeout(left)
        return stream.read(size)
