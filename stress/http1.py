"""A lean HTTP/1.1 keep-alive client connection for the load engine (stress.load).

The load generator shares the machine's two cores with the server it measures, so every
microsecond it spends per request is taken from the server. A general client (aiohttp)
spends ~0.1-0.2 ms of CPU per request on things a load run never needs: cookie jars,
redirects, header objects, URL parsing. This one sends bytes prepared once per request
shape and reads answers straight off the socket: status line, headers up to the blank
line, then a body framed by Content-Length or chunked encoding (none for 1xx, 204, 304;
interim 1xx answers are skipped). Anything it cannot frame (no length on a keep-alive
answer, a malformed status line or chunk, bytes no request asked for) is a
`ProtocolError`, counted as a transport failure, never guessed at. It never sends HEAD,
whose answers announce a length for a body that does not come.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

_MAX_HEAD = 65536
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: |$)")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,15}")


class ProtocolError(Exception):
    """The server's bytes are not an HTTP/1.1 answer this client can frame."""


class ConnectionClosed(ConnectionError):
    """The server closed the connection before a whole answer arrived."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    keep_alive: bool


def prepare(method: str, path: str, *, host: str, headers: dict[str, str] | None = None,
            body: bytes | None = None) -> bytes:
    """One request's bytes: sent as they are, as often as the load wants."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


class ClientConnection(asyncio.Protocol):
    """One connection, one request at a time (no pipelining): `await exchange(data)`."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future | None = None
        self._closed: BaseException | None = None

    @classmethod
    async def open(cls, host: str, port: int) -> ClientConnection:
        _, connection = await asyncio.get_running_loop().create_connection(cls, host, port)
        return connection

    # asyncio.Protocol

    def connection_made(self, transport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._waiter is not None and not self._waiter.done():
            self._try_answer()

    def eof_received(self):
        self._lost(ConnectionClosed("the server closed the connection"))
        return False

    def connection_lost(self, exc) -> None:
        self._lost(exc or ConnectionClosed("the connection was closed"))

    # the client's side

    @property
    def usable(self) -> bool:
        return self._closed is None and self._transport is not None and not self._transport.is_closing()

    async def exchange(self, data: bytes, *, timeout: float) -> Answer:
        if not self.usable:
            raise ConnectionClosed("the connection is no longer usable")
        if self._buffer:  # bytes no request asked for: whatever comes next could not be told apart
            self.close()
            raise ProtocolError(f"{len(self._buffer)} bytes arrived before the request was sent")
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        self._transport.write(data)
        timer = loop.call_later(timeout, self._time_out, waiter)
        try:
            answer = await waiter
        except BaseException:
            self.close()  # timed out, cancelled or broken: a late answer must not meet the next request
            raise
        finally:
            timer.cancel()
            self._waiter = None
        if not answer.keep_alive:
            self.close()
        return answer

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _time_out(self, waiter: asyncio.Future) -> None:
        if not waiter.done():
            waiter.set_exception(TimeoutError("no whole answer in time"))

    def _lost(self, exc: BaseException) -> None:
        self._closed = exc
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    def _try_answer(self) -> None:
        try:
            answer = self._parse()
        except Exception as exc:  # anything unframeable fails this request, never the whole run
            failure = exc if isinstance(exc, ProtocolError) else ProtocolError(f"{type(exc).__name__}: {exc}")
            self._waiter.set_exception(failure)
            self.close()
            return
        if answer is not None:
            self._waiter.set_result(answer)

    def _parse(self) -> Answer | None:
        """A whole final answer taken off the buffer, or None while it is still arriving
        (interim 1xx answers are taken off and skipped)."""
        while True:
            answer = self._parse_one()
            if answer is None or answer.status >= 200:
                return answer

    def _parse_one(self) -> Answer | None:
        buffer = self._buffer
        head_end = buffer.find(b"\r\n\r\n")
        if head_end < 0:
            if len(buffer) > _MAX_HEAD:
                raise ProtocolError("answer headers longer than 64 KiB")
            return None
        head = bytes(buffer[:head_end]).split(b"\r\n")
        found = _STATUS_LINE.match(head[0])
        if found is None:
            raise ProtocolError(f"not an HTTP/1.x status line: {head[0][:80]!r}")
        version, status = found.group(1), int(found.group(2))
        length, chunked, tokens = None, False, set()
        for line in head[1:]:
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                if not value.isdigit() or len(value) > 18 or (length is not None and int(value) != length):
                    raise ProtocolError(f"Content-Length {value[:40]!r}")
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = value.rsplit(b",", 1)[-1].strip() == b"chunked"
            elif name == b"connection":
                tokens.update(token.strip() for token in value.split(b","))
        keep_alive = b"close" not in tokens and (version == b"1" or b"keep-alive" in tokens)
        start = head_end + 4
        if status < 200 or status in (204, 304):  # never a body, whatever the headers say
            body, end = b"", start
        elif chunked:
            framed = _dechunk(buffer, start)
            if framed is None:
                return None
            body, end = framed
        elif length is not None:
            end = start + length
            if len(buffer) < end:
                return None
            body = bytes(buffer[start:end])
        else:
            raise ProtocolError("an answer with neither Content-Length nor chunked framing")
        del buffer[:end]
        return Answer(status=status, body=body, keep_alive=keep_alive)


def _dechunk(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    """(body, end offset) of a whole chunked body at `start`, or None while it is incomplete."""
    parts, at = [], start
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            if len(buffer) - at > _MAX_HEAD:
                raise ProtocolError("a chunk-size line longer than 64 KiB")
            return None
        size_text = bytes(buffer[at:line_end]).split(b";", 1)[0].strip()
        if not _HEX.fullmatch(size_text):
            raise ProtocolError(f"chunk size {size_text[:20]!r}")
        size = int(size_text, 16)
        at = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", at - 2)
            if trailer_end < 0:
                if len(buffer) - at > _MAX_HEAD:
                    raise ProtocolError("chunked trailers longer than 64 KiB")
                return None
            return b"".join(parts), trailer_end + 4
        if len(buffer) < at + size + 2:
            return None
        if buffer[at + size:at + size + 2] != b"\r\n":
            raise ProtocolError("a chunk not followed by CRLF")
        parts.append(bytes(buffer[at:at + size]))
        at += size + 2
