"""A lean HTTP/1.1 keep-alive client connection for the load engine (stress.load).

The load generator shares the machine's two cores with the server it measures, so every
microsecond it spends per request is taken from the server. A general client (aiohttp)
spends ~0.1-0.2 ms of CPU per request on things a load run never needs: cookie jars,
redirects, header objects, URL parsing, per-request timers. This one sends bytes prepared
once per request shape and reads answers straight off the socket: status line, headers up
to the blank line, then a body framed by Content-Length or chunked encoding. Anything it
cannot frame (no length on a keep-alive answer, a malformed status line) is a
`ProtocolError`, counted as a transport failure, never guessed at.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


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
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        self._transport.write(data)
        if self._buffer:  # an answer cannot precede its request, but a stray byte must not hang us
            self._try_answer()
        timer = loop.call_later(timeout, self._time_out, waiter)
        try:
            answer = await waiter
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
        self.close()  # what arrives later belongs to no request

    def _lost(self, exc: BaseException) -> None:
        self._closed = exc
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    def _try_answer(self) -> None:
        try:
            answer = self._parse()
        except ProtocolError as exc:
            self._waiter.set_exception(exc)
            self.close()
            return
        if answer is not None:
            self._waiter.set_result(answer)

    def _parse(self) -> Answer | None:
        """A whole answer taken off the buffer, or None while it is still arriving."""
        buffer = self._buffer
        head_end = buffer.find(b"\r\n\r\n")
        if head_end < 0:
            if len(buffer) > 65536:
                raise ProtocolError("answer headers longer than 64 KiB")
            return None
        head = bytes(buffer[:head_end]).split(b"\r\n")
        status_line = head[0].split(b" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1.") or not status_line[1].isdigit():
            raise ProtocolError(f"not an HTTP/1.x status line: {head[0][:80]!r}")
        status = int(status_line[1])
        length, chunked, keep_alive = None, False, status_line[0] == b"HTTP/1.1"
        for line in head[1:]:
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                if not value.isdigit():
                    raise ProtocolError(f"Content-Length {value!r}")
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = value.endswith(b"chunked")
            elif name == b"connection":
                keep_alive = value == b"keep-alive" or (keep_alive and value != b"close")
        start = head_end + 4
        if chunked:
            framed = _dechunk(buffer, start)
            if framed is None:
                return None
            body, end = framed
        elif length is not None:
            end = start + length
            if len(buffer) < end:
                return None
            body = bytes(buffer[start:end])
        elif status in (204, 304) or 100 <= status < 200:
            body, end = b"", start
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
            return None
        size_text = bytes(buffer[at:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolError(f"chunk size {size_text[:20]!r}") from None
        at = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", at - 2)
            if trailer_end < 0:
                return None
            return b"".join(parts), trailer_end + 4
        if len(buffer) < at + size + 2:
            return None
        parts.append(bytes(buffer[at:at + size]))
        at += size + 2
