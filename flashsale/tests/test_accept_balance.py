"""Keep-alive connections spread over the gevent workers (flashsale.accept_balance): the
shared table and the step-back rule, then real gunicorn workers holding a crowd of sockets."""

import os
import socket
import time
from pathlib import Path

import pytest

from flashsale import accept_balance
from flashsale.accept_balance import HEARTBEAT, MAX_PAUSES, SLACK, Balance, Table
from tests.servers import running_app, wait_until


def _workers(count: int, *, slots: int = 8, full_at: int = 100) -> tuple[Table, list[Balance]]:
    """A table with `count` workers whose servers are accepting, as the master and they set it up."""
    table = Table(slots=slots)
    balances = []
    for _ in range(count):
        balance = Balance(table, table.assign({b.slot for b in balances}), full_at=full_at)
        balance.start()
        balances.append(balance)
    return table, balances


def test_the_master_hands_out_slots_no_live_worker_holds():
    table = Table(slots=4)
    assert table.assign(set()) == 0
    assert table.assign({0, 1}) == 2
    assert table.assign({0, 1, 2, 3}) is None  # that worker accepts unbalanced; the master goes on


def test_a_worker_steps_back_only_while_it_holds_more_than_a_live_not_full_worker():
    table, (mine, other) = _workers(2)
    for _ in range(SLACK + 1):
        mine.opened()
    assert mine.should_step_back()  # SLACK + 1 against 0
    assert not other.should_step_back()
    other.opened()
    assert not mine.should_step_back()  # within SLACK now
    mine.opened()
    assert mine.should_step_back()

    table._cells[1 + other.slot * 3 + HEARTBEAT] -= int((accept_balance.STALE_SECONDS + 1) * 1000)
    assert not mine.should_step_back()  # a worker that has not beaten lately is not counted
    other.beat()
    assert mine.should_step_back()
    _, (alone,) = _workers(1)
    alone.opened(), alone.opened(), alone.opened()
    assert not alone.should_step_back()  # nobody to leave the connection to


def test_a_worker_counts_for_the_others_only_while_its_server_accepts():
    table = Table(slots=4)
    mine = Balance(table, table.assign(set()), full_at=100)
    booting = Balance(table, table.assign({mine.slot}), full_at=100)
    mine.start()
    mine.opened(), mine.opened(), mine.opened()
    assert not mine.should_step_back()  # the other has a slot but no server yet
    booting.start()
    assert mine.should_step_back()
    booting.stop()  # closing, draining: it takes no connection
    assert not mine.should_step_back()
    booting.opened()  # what a draining worker still counts is not published
    assert table.held(booting.slot) == 0


def test_a_full_worker_takes_nothing_so_it_is_not_counted():
    table, (_mine, crowded) = _workers(2, full_at=3)
    for _ in range(3):
        crowded.opened()
    assert table.least_held_elsewhere(0, full_at=4) == 3
    assert table.least_held_elsewhere(0, full_at=3) is None  # gevent stops accepting when its pool is full


def test_stepping_back_is_bounded_so_a_connection_never_waits_for_long():
    _, (mine, _idle) = _workers(2)
    for _ in range(SLACK + 5):
        mine.opened()
    steps = 0
    while mine.should_step_back():
        mine.paused()
        steps += 1
        assert steps <= MAX_PAUSES
    assert steps == MAX_PAUSES
    assert mine.should_step_back()  # the accept went ahead; a new streak may step back again


def test_an_exited_worker_released_by_the_master_is_no_longer_counted():
    table, (mine, gone) = _workers(2)
    mine.opened(), mine.opened(), mine.opened()
    assert mine.should_step_back()
    table.release(gone.slot)
    assert not mine.should_step_back()
    assert table.assign({mine.slot}) == gone.slot


def test_closing_lowers_the_count_the_others_see():
    table, (mine, other) = _workers(2)
    for _ in range(3):
        other.opened()
    assert table.least_held_elsewhere(mine.slot, full_at=100) == 3
    other.closed(), other.closed()
    assert table.least_held_elsewhere(mine.slot, full_at=100) == 1
    assert mine.held == 0


def test_the_server_steps_back_then_accepts_and_every_connection_is_uncounted_when_it_ends():
    """gevent's own server and sockets, in this process: a worker ahead of an idle one steps
    back before each accept (and still accepts every client), and each connection, handled
    or failed, is uncounted exactly once."""
    import gevent
    from gevent import socket as gsocket
    from gevent.event import Event

    from flashsale.accept_balance import BalancedStreamServer

    table, (mine, idle) = _workers(2)
    release = Event()

    def handle(sock, _addr):
        if sock.recv(1) == b"x":
            raise RuntimeError("a handler that fails")
        release.wait()

    server = BalancedStreamServer(("127.0.0.1", 0), handle)
    server.balance, server.max_accept = mine, 1
    mine.stop()  # the server's start claims the slot again
    server.start()
    try:
        clients = [gsocket.create_connection(server.address) for _ in range(SLACK + 4)]
        for client in clients[:-1]:
            client.sendall(b"o")
        clients[-1].sendall(b"x")
        wait = gevent.Timeout(10)
        with wait:
            while mine.held < len(clients) - 1 or mine.stepped_back == 0:
                gevent.sleep(0.01)
            gevent.sleep(0.1)
        assert mine.stepped_back > 0  # it was ahead of the idle worker
        assert mine.held == len(clients) - 1 == table.held(mine.slot)  # the failed one is uncounted
        assert idle.held == 0
        release.set()
        with gevent.Timeout(10):
            while mine.held:
                gevent.sleep(0.01)
        assert table.held(mine.slot) == 0
        for client in clients:
            client.close()
    finally:
        server.close()
    assert table.least_held_elsewhere(idle.slot, full_at=100) is None  # a closed server is not counted


def _established_per_worker(base, workers: list[int]) -> dict[int, int]:
    """Client sockets each worker process holds open on the server's port, read from /proc."""
    port = int(base.rsplit(":", 1)[1])
    established = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port, state, inode = int(fields[1].rsplit(":", 1)[1], 16), fields[3], fields[9]
            if local_port == port and state == "01":  # ESTABLISHED, the server's side
                established.add(f"socket:[{inode}]")
    held = {}
    for pid in workers:
        links = []
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                links.append(os.readlink(fd))
            except OSError:
                continue
        held[pid] = sum(link in established for link in links)
    return held


def _crowd(base, count: int) -> list[socket.socket]:
    """`count` keep-alive clients that connect at once and each get one answer."""
    host, port = "127.0.0.1", int(base.rsplit(":", 1)[1])
    clients = [socket.create_connection((host, port)) for _ in range(count)]
    request = f"GET /api/health/ HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    for client in clients:
        client.sendall(request)
    for client in clients:
        client.settimeout(10)
        assert client.recv(65536).startswith(b"HTTP/1.1 ")
    return clients


@pytest.mark.django_db(transaction=True)
def test_a_crowd_of_keep_alive_clients_is_split_over_the_workers(rounds=3):
    with running_app(workers=2) as base:
        wait_until(lambda: len(base.worker_pids()) == 2, what="both workers")
        time.sleep(1.5)  # both have booted and beaten at least once
        workers = base.worker_pids()
        for _ in range(rounds):
            clients = _crowd(base, 64)
            held = _established_per_worker(base, workers)
            for client in clients:
                client.close()
            assert sum(held.values()) == 64, held
            assert max(held.values()) - min(held.values()) <= 8, held  # without the balance: up to 64 / 0
            wait_until(lambda: sum(_established_per_worker(base, workers).values()) == 0, what="the crowd gone")


@pytest.mark.django_db(transaction=True)
def test_with_the_balance_off_every_client_is_still_served():
    with running_app(workers=2, env={"ACCEPT_BALANCE": "0"}) as base:
        for client in _crowd(base, 32):
            client.close()
