"""The server's pings: an idle socket is pinged every WS4REDIS_WAKE_INTERVAL; a peer that does
not answer the previous ping is dropped; one that answers stays. The heartbeat (WS4REDIS_HEARTBEAT)
goes to sockets that were sent nothing for an interval, and only to those. On a stack of its own
with a 1 s interval (uWSGI from deploy/uwsgi.ini behind nginx)."""
from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator

import pytest

from deploy.stack import Stack, free_port
from tests.clients import all_workers
from tests.fixtures import WORK
from ws4redis_server.testing import connect, raw_socket

INTERVAL = 1.0


@pytest.fixture(scope="module")
def pinging_stack(redis_server) -> Iterator[Stack]:  # noqa: ANN001
    env = {"WS_WORKERS": "1", "DJANGO_WORKERS": "1", "WS4REDIS_WAKE_INTERVAL": str(INTERVAL)}
    with Stack(free_port(), redis_server.url, run_dir=WORK / "run-keepalive", static_root=WORK / "static",
               env=env, nginx_workers=1) as running:
        all_workers(running, "websocket")
        with connect(f"{running.ws_url}/ws/echo/", timeout=60) as ws:
            assert ws.recv(timeout=60) == "Hello!"
        yield running


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    """Reads one unmasked server frame; returns (first byte, payload)."""
    head = sock.recv(2, socket.MSG_WAITALL)
    if len(head) < 2:
        raise ConnectionError("closed")
    length = head[1] & 0x7F
    if length == 126:
        length = int.from_bytes(sock.recv(2, socket.MSG_WAITALL), "big")
    return head[0], sock.recv(length, socket.MSG_WAITALL) if length else b""


def test_a_peer_that_never_answers_pings_is_dropped(pinging_stack) -> None:
    sock = raw_socket(f"{pinging_stack.ws_url}/ws/k{uuid.uuid4().hex[:8]}?subscribe-broadcast")
    sock.settimeout(10 * INTERVAL)
    started = time.monotonic()
    first, payload = read_frame(sock)
    while first == 0x81:  # the site's heartbeat (WS4REDIS_HEARTBEAT) comes first
        assert payload == b"--heartbeat--", payload
        first, payload = read_frame(sock)
    assert first == 0x89, (first, payload)  # FIN + ping
    with pytest.raises((ConnectionError, OSError)):
        while time.monotonic() - started < 10 * INTERVAL:
            first, _ = read_frame(sock)
            assert first in (0x81, 0x89, 0x88)  # heartbeats, pings, or a close frame, then the end
            if first == 0x88:
                raise ConnectionError("closed")
    sock.close()


def test_a_peer_that_answers_pings_stays_and_receives(pinging_stack, redis_server) -> None:
    name = f"k{uuid.uuid4().hex[:8]}"
    with connect(f"{pinging_stack.ws_url}/ws/{name}?subscribe-broadcast") as ws:  # answers pings itself
        time.sleep(4 * INTERVAL)
        redis_server.client().publish(f"broadcast:{name}", "still here")
        message = ws.recv(timeout=10)
        while message == "--heartbeat--":  # one per idle interval meanwhile
            message = ws.recv(timeout=10)
        assert message == "still here"


def test_an_idle_socket_gets_the_heartbeat_and_a_busy_one_does_not(pinging_stack, redis_server) -> None:
    name = f"k{uuid.uuid4().hex[:8]}"
    with connect(f"{pinging_stack.ws_url}/ws/{name}?subscribe-broadcast") as ws:
        started = time.monotonic()
        assert ws.recv(timeout=5 * INTERVAL) == "--heartbeat--"
        assert time.monotonic() - started < 2.5 * INTERVAL
        # A message every half interval: no interval passes without one, so no heartbeat.
        client = redis_server.client()
        received = []
        for number in range(8):
            client.publish(f"broadcast:{name}", f"m{number}")
            received.append(ws.recv(timeout=5))
            time.sleep(INTERVAL / 2)
        while True:
            try:
                received.append(ws.recv(timeout=0.1))
            except TimeoutError:
                break
    assert [message for message in received if message != "--heartbeat--"] == [f"m{n}" for n in range(8)]
    assert received.count("--heartbeat--") <= 1, received  # at most one, right after the first tick


def test_a_handlers_socket_gets_no_heartbeat(pinging_stack) -> None:
    with connect(f"{pinging_stack.ws_url}/ws/echo/raw/") as ws:  # the handler's protocol is its own
        time.sleep(3 * INTERVAL)
        ws.send("only this")
        assert ws.recv(timeout=10) == "only this"
