"""The server's side of the protocol, driven by hand through nginx and uWSGI: it counts, starts
and relays whatever the cells send, and closes with 1008 and a reason on anything else."""
from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from ws4redis_server.testing import connect

pytestmark = pytest.mark.slow

POLICY, GOING_AWAY = 1008, 1001


@pytest.fixture
def url(stack):
    return stack.ws_url + "/ws/gameoflife/"


def new_run(url: str, size: int) -> int:
    with connect(url + "reset/") as ws:
        ws.send(str(size))
        kind, run = ws.recv(timeout=10).split()
    assert kind == "run"
    return int(run)


def watch(url: str) -> Any:
    """A watcher's socket. It closes the connection itself, so waits little for nginx's
    lingering close of the TCP connection."""
    return connect(url + "watch/", timeout=3)


def closed_with(ws) -> tuple[int, str]:
    """Reads until the server closes ``ws``; returns its close code and reason."""
    with pytest.raises(ConnectionClosed) as closed:
        for _ in range(100):
            ws.recv(timeout=10)
    received = closed.value.rcvd
    assert received is not None, "the connection dropped without a close frame"
    return received.code, received.reason


def received(ws, count: int) -> list[str]:
    """Returns the next ``count`` states relayed to a cell, however they were framed."""
    tokens: list[str] = []
    while len(tokens) < count:
        tokens.extend(ws.recv(timeout=10).split())
    return tokens


@contextlib.contextmanager
def cells_of(url: str, run: int, indices: Iterable[int]) -> Iterator[dict[int, Any]]:
    """Connects cells ``indices`` of ``run``. On the way out a new run closes them from the
    server's side (a closing handshake started by the client waits for nginx's lingering close)."""
    cells: dict[int, Any] = {}
    try:
        for index in indices:
            cells[index] = connect(f"{url}cell/{run}/{index}/")
        yield cells
    finally:
        new_run(url, 1)
        for ws in cells.values():
            ws.close()


def subscribe(cells: dict[int, Any], listens: dict[int, list[int]]) -> None:
    """Subscribes each cell to the cells ``listens`` gives it when the server says so, and
    returns once the server says "run"."""
    for index, ws in cells.items():
        assert ws.recv(timeout=10) == "sub"
        ws.send(" ".join(["sub", *map(str, listens[index])]))
    for ws in cells.values():
        assert ws.recv(timeout=10) == "run"


@pytest.mark.parametrize("size", ["zero", "0", "1025", "-3", "2.5", ""])
def test_reset_wants_a_size(url, size):
    with connect(url + "reset/") as ws:
        ws.send(size)
        assert closed_with(ws) == (POLICY, "send the grid's side, a whole number from 1 to 1024")


def test_cells_outside_the_current_run_are_refused(url):
    run = new_run(url, 2)
    with connect(f"{url}cell/{run + 1}/0/") as ws:
        assert closed_with(ws) == (POLICY, f"run {run + 1} is not the current run")
    with connect(f"{url}cell/{run}/4/") as ws:
        assert closed_with(ws) == (POLICY, f"cell 4 is not in run {run} (0 to 3)")
    with cells_of(url, run, (0, 1, 3)) as cells:
        with connect(f"{url}cell/{run}/3/") as second:
            assert closed_with(second) == (POLICY, f"cell 3 of run {run} is already connected")
        cells[2] = connect(f"{url}cell/{run}/2/")
        # The duplicate did not count: the fourth distinct cell completes the run.
        assert [ws.recv(timeout=10) for ws in cells.values()] == ["sub"] * 4


def test_out_of_protocol_messages_close_the_cell(url):
    run = new_run(url, 2)
    with connect(f"{url}cell/{run}/0/") as early:
        early.send("0:1")
        assert closed_with(early) == (POLICY, "state sent before the server said 'run'")
    with connect(f"{url}cell/{run}/1/") as eager:
        eager.send("sub 2")  # cells 2 and 3 are not connected: the server has not said "sub"
        assert closed_with(eager) == (POLICY, "subscribe once, after the server says 'sub'")
    run = new_run(url, 2)
    with cells_of(url, run, range(4)) as cells:
        for ws in cells.values():
            assert ws.recv(timeout=10) == "sub"
        cells[0].send("sub 1 4")
        assert closed_with(cells[0]) == (POLICY, "cells are numbered 0 to 3")
        cells[1].send("sub " + " 0" * 25)
        assert closed_with(cells[1]) == (POLICY, "subscribe to 24 cells at most")
        cells[2].send("hello")
        assert closed_with(cells[2]) == (POLICY, "unexpected message 'hello'")
        cells[3].send(b"\xff\xfe")
        assert closed_with(cells[3]) == (POLICY, "a message that is not UTF-8 text")


def test_start_up_is_counted_across_worker_processes_and_states_are_relayed_as_sent(url):
    run = new_run(url, 2)
    with watch(url) as watcher:
        assert watcher.recv(timeout=10) == f"run {run} 2"
        with cells_of(url, run, range(4)) as cells:
            # Cell 0 listens to the three others; they listen to cell 0, cell 3 twice.
            subscribe(cells, {0: [1, 2, 3], 1: [0], 2: [0], 3: [0, 0]})
            # The server applies no rule: whatever states the cells send are relayed.
            cells[1].send("0:1")
            cells[2].send("0:0")
            cells[3].send("0:1")
            assert sorted(cells[0].recv(timeout=10).split()) == ["1:0:1", "2:0:0", "3:0:1"]
            cells[0].send("0:1")
            for index in (1, 2):
                assert cells[index].recv(timeout=10) == "0:0:1"
            assert received(cells[3], 2) == ["0:0:1", "0:0:1"]  # it listens to cell 0 twice
            events = []
            while sum(event.count(":") for event in events if event.startswith("states")) < 4 * 2:
                events.append(watcher.recv(timeout=10))
    # Counted in Redis by the worker processes that hold the cells, in whatever order their
    # announcements reach the channel; each phase is announced by whoever completed the count.
    counted = [event for event in events if not event.startswith("states")]
    assert sorted(counted) == sorted([f"connected {run} {n}" for n in range(1, 5)] + [f"subscribe {run}"] + [
        f"subscribed {run} {n}" for n in range(1, 5)] + [f"start {run}"])
    assert counted.index(f"connected {run} 4") < counted.index(f"subscribe {run}")
    assert all(counted.index(f"subscribe {run}") < counted.index(f"subscribed {run} {n}") for n in range(1, 5))
    # Other processes' announcements of lower counts may still arrive after the start.
    assert counted.index(f"subscribed {run} 4") < counted.index(f"start {run}")
    relayed = sorted(token for event in events if event.startswith(f"states {run} ") for token in event.split()[2:])
    assert relayed == ["0:0:1", "1:0:1", "2:0:0", "3:0:1"]


def test_a_listener_gets_what_arrived_even_if_a_cell_it_listens_to_stays_silent(url):
    run = new_run(url, 2)
    with cells_of(url, run, range(4)) as cells:
        subscribe(cells, {0: [1, 2], 1: [], 2: [], 3: []})
        cells[1].send("0:1")
        assert cells[0].recv(timeout=10) == "1:0:1"


def test_a_new_run_closes_the_cells_of_the_previous_one(url):
    old = new_run(url, 3)
    with connect(f"{url}cell/{old}/4/") as cell:
        new = new_run(url, 2)
        assert closed_with(cell) == (GOING_AWAY, f"run {new} replaced run {old}")


def test_a_watcher_that_comes_late_is_told_where_the_run_is(url):
    run = new_run(url, 1)
    with cells_of(url, run, [0]) as cells:
        subscribe(cells, {0: [0, 0, 0]})
        with watch(url) as watcher:
            assert [watcher.recv(timeout=10) for _ in range(4)] == [
                f"run {run} 1", f"connected {run} 1", f"subscribed {run} 1", f"start {run}"]
            cells[0].send("0:1")
            assert watcher.recv(timeout=10) == f"states {run} 0:0:1"
            assert received(cells[0], 3) == ["0:0:1"] * 3  # it listens to itself three times
