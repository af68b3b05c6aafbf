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


def test_the_master_hands_out_slots_no_live_worker_holds():
    table = Table(slots=4)
    assert table.assign(set()) == 0
    assert table.assign({0, 1}) == 2
    with pytest.raises(RuntimeError):
        table.assign({0, 1, 2, 3})


def test_a_worker_steps_back_only_while_it_holds_more_than_a_live_not_full_worker():
    table = Table(slots=4)
    mine, other = Balance(table, 0, full_at=100), Balance(table, 1, full_at=100)
    for _ in range(SLACK + 1):
        mine.opened()
    assert mine.should_step_back()  # SLACK + 1 against 0
    assert not other.should_step_back()
    other.opened()
    assert not mine.should_step_back()  # within SLACK now
    mine.opened()
    assert mine.should_step_back()

    table._cells[1 * 3 + HEARTBEAT] -= int((accept_balance.STALE_SECONDS + 1) * 1000)
    assert not mine.should_step_back()  # a worker that has not beaten lately is not counted
    other.beat()
    assert mine.should_step_back()
    assert not Balance(Table(slots=2), 0, full_at=100).should_step_back()  # alone: nobody to leave it to


def test_a_full_worker_takes_nothing_so_it_is_not_counted():
    table = Table(slots=2)
    crowded = Balance(table, 1, full_at=3)
    for _ in range(3):
        crowded.opened()
    assert table.least_held_elsewhere(0, full_at=4) == 3
    assert table.least_held_elsewhere(0, full_at=3) is None  # gevent stops accepting when its pool is full


def test_stepping_back_is_bounded_so_a_connection_never_waits_for_long():
    table = Table(slots=2)
    mine, _idle = Balance(table, 0, full_at=100), Balance(table, 1, full_at=100)
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
    table = Table(slots=2)
    mine, gone = Balance(table, 0, full_at=100), Balance(table, 1, full_at=100)
    mine.opened(), mine.opened(), mine.opened()
    assert mine.should_step_back()
    table.release(gone.slot)
    assert not mine.should_step_back()
    assert table.assign({0}) == 1


def test_closing_lowers_the_count_the_others_see():
    table = Table(slots=2)
    mine, other = Balance(table, 0, full_at=100), Balance(table, 1, full_at=100)
    for _ in range(3):
        other.opened()
    assert table.least_held_elsewhere(0, full_at=100) == 3
    other.closed(), other.closed()
    assert table.least_held_elsewhere(0, full_at=100) == 1
    assert mine.held == 0


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
