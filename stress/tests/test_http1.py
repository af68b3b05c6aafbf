"""The load engine's HTTP/1.1 client against a real socket server that answers scripted bytes,
and `run_load` against it: framing, keep-alive, a server that closes, garbage, a silent server."""

import asyncio

import pytest

from stress.http1 import ClientConnection, ConnectionClosed, ProtocolError, prepare
from stress.load import TRANSPORT_ERROR, NotLoopback, loopback_target, run_load


class ScriptedServer:
    """A TCP server on 127.0.0.1: each request read (up to its blank line and Content-Length body)
    is answered with the next scripted reply, sent in pieces of `piece` bytes; after each reply,
    `close_after` decides whether the server hangs up."""

    def __init__(self, replies, *, piece=None, close_after=lambda n: False):
        self.replies, self.piece, self.close_after = list(replies), piece, close_after
        self.requests: list[bytes] = []
        self.connections = 0
        self._handlers: set[asyncio.Task] = set()

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        for handler in self._handlers:  # a silent handler would otherwise outlive the test
            handler.cancel()
        await self.server.wait_closed()

    async def _serve(self, reader, writer):
        self.connections += 1
        self._handlers.add(asyncio.current_task())
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                self.requests.append(head + await reader.readexactly(length))
                reply = self.replies[(len(self.requests) - 1) % len(self.replies)]
                if reply is None:
                    await asyncio.sleep(3600)  # never answers
                step = self.piece or len(reply)
                for at in range(0, len(reply), step):
                    writer.write(reply[at:at + step])
                    await writer.drain()
                    await asyncio.sleep(0)
                if self.close_after(len(self.requests)):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def ok(body=b'{"stock": 3}', extra=b""):
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s" % (
        len(body), extra, body)


def run(coroutine):
    return asyncio.run(coroutine)


def test_prepare_frames_a_request_with_host_headers_and_length():
    data = prepare("POST", "/api/orders/", host="127.0.0.1:8000", headers={"Authorization": "Token abc"},
                   body=b'{"product_id": 1}')
    assert data == (b"POST /api/orders/ HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nAuthorization: Token abc\r\n"
                    b"Content-Length: 17\r\n\r\n{\"product_id\": 1}")
    assert prepare("GET", "/x", host="h") == b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n"


@pytest.mark.parametrize("piece", [None, 1, 7])
def test_answers_framed_by_length_or_chunks_arrive_whole_however_they_are_split(piece):
    chunked = (b"HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\n{\"cod\r\nf;ext=1\r\ne\": \"sold_out\"}\r\n0\r\nX-Trailer: 1\r\n\r\n")
    no_content = b"HTTP/1.1 204 No Content\r\nServer: scripted\r\n\r\n"

    async def scenario():
        async with ScriptedServer([ok(), chunked, no_content], piece=piece) as server:
            connection = await ClientConnection.open("127.0.0.1", server.port)
            answers = [await connection.exchange(prepare("GET", f"/{n}", host="h"), timeout=5) for n in range(4)]
            connection.close()
            return answers, server.connections, server.requests

    answers, connections, requests = run(scenario())
    assert [(a.status, a.body) for a in answers] == [
        (200, b'{"stock": 3}'), (409, b'{"code": "sold_out"}'), (204, b""), (200, b'{"stock": 3}')]
    assert connections == 1 and all(a.keep_alive for a in answers)  # one connection for all four
    assert [r.split(b" ")[1] for r in requests] == [b"/0", b"/1", b"/2", b"/3"]


@pytest.mark.parametrize("closing", [
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nConnection: Upgrade, close\r\nContent-Length: 2\r\n\r\n{}",  # a list of tokens
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",  # 1.0 without keep-alive
])
def test_an_answer_that_ends_the_connection_is_honoured_and_the_engine_opens_a_new_one(closing):
    async def scenario():
        async with ScriptedServer([closing]) as server:  # the server keeps every connection open itself
            tally = await run_load(lambda i: prepare("GET", f"/{i}", host="h"), base_url=server.url,
                                   concurrency=2, total=6)
            return tally, server.connections

    tally, connections = run(scenario())
    assert tally.answers == {(200, "ok"): 6}
    assert connections == 6


def test_keep_alive_holds_for_http_1_0_that_asks_for_it_and_for_1_1_by_default():
    answers = [b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n{}",
               b"HTTP/1.1 200 OK\r\nConnection: TE\r\nContent-Length: 2\r\n\r\n{}"]

    async def scenario():
        async with ScriptedServer(answers) as server:
            tally = await run_load(lambda i: prepare("GET", "/", host="h"), base_url=server.url,
                                   concurrency=1, total=4)
            return tally, server.connections

    tally, connections = run(scenario())
    assert tally.answers == {(200, "ok"): 4} and connections == 1


def test_bodiless_statuses_ignore_a_length_and_interim_answers_are_skipped():
    replies = [b"HTTP/1.1 304 Not Modified\r\nContent-Length: 120\r\n\r\n",
               b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + ok(),
               b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n"]

    async def scenario():
        async with ScriptedServer(replies, piece=5) as server:
            connection = await ClientConnection.open("127.0.0.1", server.port)
            answers = [await connection.exchange(prepare("GET", "/", host="h"), timeout=5) for _ in range(4)]
            connection.close()
            return answers

    assert [(a.status, a.body) for a in run(scenario())] == [(304, b""), (200, b'{"stock": 3}'), (204, b""), (304, b"")]


def test_a_server_that_hangs_up_mid_answer_is_a_transport_failure_and_the_next_request_reconnects():
    truncated = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part"

    async def scenario():
        async with ScriptedServer([truncated, ok()], close_after=lambda n: n == 1) as server:
            tally = await run_load(lambda i: prepare("GET", "/", host="h"), base_url=server.url,
                                   concurrency=1, total=2)
            return tally, server.connections

    tally, connections = run(scenario())
    assert tally.answers == {(TRANSPORT_ERROR, "ConnectionClosed"): 1, (200, "ok"): 1}
    assert connections == 2
    assert len(tally.latencies) == 1  # only answered requests have a latency


@pytest.mark.parametrize("garbage", [
    b"SMTP ready\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: lots\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nServer: no framing\r\n\r\nbody until close",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\n{}\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-Huge: " + b"x" * 70_000,
])
def test_what_cannot_be_framed_is_a_protocol_error_never_a_guess(garbage):
    async def scenario():
        async with ScriptedServer([garbage]) as server:
            connection = await ClientConnection.open("127.0.0.1", server.port)
            with pytest.raises(ProtocolError):
                await connection.exchange(prepare("GET", "/", host="h"), timeout=5)
            assert not connection.usable

    run(scenario())


def test_bytes_no_request_asked_for_are_never_taken_for_the_next_answer():
    doubled = ok(b"1") + ok(b"2")  # one request, two answers

    async def scenario():
        async with ScriptedServer([doubled]) as server:
            connection = await ClientConnection.open("127.0.0.1", server.port)
            first = await connection.exchange(prepare("GET", "/", host="h"), timeout=5)
            await asyncio.sleep(0.05)
            with pytest.raises(ProtocolError):
                await connection.exchange(prepare("GET", "/", host="h"), timeout=5)
            return first, connection.usable

    first, usable = run(scenario())
    assert first.body == b"1" and not usable


def test_a_cancelled_exchange_leaves_no_answer_for_the_next_request():
    async def scenario():
        async with ScriptedServer([None]) as server:
            connection = await ClientConnection.open("127.0.0.1", server.port)
            pending = asyncio.ensure_future(connection.exchange(prepare("GET", "/", host="h"), timeout=5))
            await asyncio.sleep(0.05)
            pending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await pending
            await asyncio.sleep(0)
            return connection.usable

    assert run(scenario()) is False


def test_run_load_tallies_timeouts_and_unframeable_answers_instead_of_failing():
    async def scenario():
        async with ScriptedServer([None]) as silent:
            timed_out = await run_load(lambda i: prepare("GET", "/", host="h"), base_url=silent.url,
                                       concurrency=2, total=2, timeout=0.2)
        async with ScriptedServer([b"HTTP/1.1 200 OK\r\n\r\n"]) as unframed:
            garbled = await run_load(lambda i: prepare("GET", "/", host="h"), base_url=unframed.url,
                                     concurrency=1, total=2)
        async with ScriptedServer([ok()]) as steady:
            sustained = await run_load(lambda i: prepare("GET", "/", host="h"), base_url=steady.url,
                                       concurrency=3, duration=0.3)
        return timed_out, garbled, sustained, steady.connections

    timed_out, garbled, sustained, connections = run(scenario())
    assert timed_out.answers == {(TRANSPORT_ERROR, "TimeoutError"): 2}
    assert garbled.answers == {(TRANSPORT_ERROR, "ProtocolError"): 2}
    assert sustained.done > 3 and sustained.answers == {(200, "ok"): sustained.done} and connections == 3


def test_targets_name_their_host_as_a_host_header_and_only_plain_http_on_loopback_is_loaded():
    assert loopback_target("http://[::1]:8000/").host_header == "[::1]:8000"
    assert (loopback_target("http://[::1]:8000").host, loopback_target("http://[::1]:8000").port) == ("::1", 8000)
    assert loopback_target("http://127.0.0.1:9/").host_header == "127.0.0.1:9"
    assert loopback_target("http://localhost").port == 80
    for refused in ("https://127.0.0.1:8000", "http://10.0.0.1:8000", "ftp://127.0.0.1"):
        with pytest.raises(NotLoopback):
            loopback_target(refused)


def test_a_silent_server_times_out_and_the_late_connection_is_dropped():
    async def scenario():
        async with ScriptedServer([None]) as server:
            connection = await ClientConnection.open("127.0.0.1", server.port)
            with pytest.raises(TimeoutError):
                await connection.exchange(prepare("GET", "/", host="h"), timeout=0.2)
            await asyncio.sleep(0)
            assert not connection.usable
            with pytest.raises(ConnectionClosed):
                await connection.exchange(prepare("GET", "/", host="h"), timeout=0.2)

    run(scenario())


def test_error_codes_are_read_from_the_body_and_refused_connections_are_counted():
    refusal = b'{"code": "sold_out", "detail": "Sold out."}'
    not_json = b"<html>oops</html>"

    async def scenario():
        async with ScriptedServer([
            ok(refusal).replace(b"200 OK", b"409 Conflict"), ok(not_json).replace(b"200 OK", b"502 Bad Gateway"),
        ]) as server:
            answered = await run_load(lambda i: prepare("GET", "/", host="h"), base_url=server.url,
                                      concurrency=1, total=4)
        closed_port = server.port  # the server is gone: nothing listens there now
        refused = await run_load(lambda i: prepare("GET", "/", host="h"), base_url=f"http://127.0.0.1:{closed_port}",
                                 concurrency=2, total=3)
        return answered, refused

    answered, refused = run(scenario())
    assert answered.answers == {(409, "sold_out"): 2, (502, "non_json"): 2}
    assert refused.answers == {(TRANSPORT_ERROR, "ConnectionRefusedError"): 3}
