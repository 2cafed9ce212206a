"""Bad frames through nginx and uWSGI, and under runserver: a clear close code, and never a dead
worker, whatever bytes arrive on the socket."""
import random
import subprocess
import uuid

import pytest
from websockets.exceptions import ConnectionClosed
from wsproto.connection import Connection, ConnectionType
from wsproto.events import CloseConnection

from ws4redis_server.testing import connect, raw_socket

FUZZ_CONNECTIONS = 60      # garbage streams sent after a valid handshake
FUZZ_BYTES = 4096          # at most, per stream
MASK = b"\x01\x02\x03\x04"


def close_of(ws) -> tuple[int, str]:  # noqa: ANN001
    """Reads until the server closes ``ws``; returns its close code and reason."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None, "no close frame from the server"
    return closed.value.rcvd.code, closed.value.rcvd.reason


@pytest.mark.parametrize("size", [64 * 1024 + 1, 512 * 1024, 2 * 1024 * 1024])
def test_a_message_over_the_limit_closes_with_1009(stack, size: int) -> None:
    with connect(f"{stack.ws_url}/ws/big{uuid.uuid4().hex[:8]}?subscribe-broadcast") as ws:
        ws.send("x" * size)
        assert close_of(ws)[0] == 1009


def test_a_message_at_the_limit_is_served(stack) -> None:
    with connect(f"{stack.ws_url}/ws/echo/") as ws:
        assert ws.recv(timeout=10) == "Hello!"
        ws.send("x" * (64 * 1024))
        assert ws.recv(timeout=10) == "1. " + "x" * (64 * 1024)


@pytest.mark.parametrize("server", ["stack", "devserver"])
def test_invalid_utf8_in_a_text_frame_closes_with_1007(server: str, request) -> None:  # noqa: ANN001
    with connect(f"{request.getfixturevalue(server).ws_url}/ws/echo/") as ws:
        assert ws.recv(timeout=10) == "Hello!"
        ws.send(b"\xff\xfe not utf-8", text=True)  # a text frame that is not UTF-8
        assert close_of(ws)[0] == 1007


def worker_pids(master: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True, check=False)
    return {int(pid) for pid in out.stdout.split()}


def masked(first_byte: int, payload: bytes) -> bytes:
    """Returns a client frame (masked, payload under 126 bytes) with ``first_byte`` as sent."""
    body = bytes(byte ^ MASK[i % 4] for i, byte in enumerate(payload))
    return bytes([first_byte, 0x80 | len(payload)]) + MASK + body


@pytest.mark.parametrize("frame", [
    bytes([0x81, 0x02]) + b"hi",                 # not masked
    masked(0x80, b"continuation first"),          # continuation without a first fragment
    masked(0x83, b"reserved opcode"),
    masked(0xC1, b"RSV1 without an extension"),
    masked(0x09, b"fragmented ping"),
], ids=["unmasked", "lone-continuation", "reserved-opcode", "rsv1", "fragmented-control"])
def test_a_protocol_violation_closes_with_1002_and_the_worker_lives(stack, frame: bytes) -> None:
    # uWSGI's own frame reader dies (SIGSEGV) on a lone continuation frame: it is never used.
    master = stack.pid_of("websocket")
    workers = worker_pids(master)
    sock = raw_socket(f"{stack.ws_url}/ws/echo/")
    try:
        sock.sendall(frame)
        protocol = Connection(ConnectionType.CLIENT)
        closes: list = []
        while not closes:
            data = sock.recv(65536)
            protocol.receive_data(data or None)
            closes = [event for event in protocol.events() if isinstance(event, CloseConnection)]
    finally:
        sock.close()
    assert closes[0].code == 1002, closes
    assert worker_pids(master) == workers


@pytest.mark.slow
def test_garbage_after_the_handshake_never_takes_a_worker_down(stack) -> None:
    master = stack.pid_of("websocket")
    workers = worker_pids(master)
    assert workers
    rng = random.Random(7)
    for number in range(FUZZ_CONNECTIONS):
        path = "/ws/echo/" if number % 2 else f"/ws/fuzz{number}?subscribe-broadcast&echo"
        sock = raw_socket(stack.ws_url + path)
        try:
            garbage = rng.randbytes(rng.randint(1, FUZZ_BYTES))
            if number % 3 == 0:  # a plausible frame header first, with a lying length
                garbage = bytes([rng.choice([0x81, 0x82, 0x01, 0x88, 0x89, 0x8A, 0x0F]),
                                 rng.randint(0, 255)]) + garbage
            sock.sendall(garbage)
            sock.settimeout(0.5)  # a lying frame length keeps the server waiting: move on
            try:
                while sock.recv(65536):
                    pass
            except (TimeoutError, ConnectionError):
                pass
        finally:
            sock.close()
    with connect(f"{stack.ws_url}/ws/echo/") as ws:
        assert ws.recv(timeout=10) == "Hello!"
        ws.send("still here")
        assert ws.recv(timeout=10) == "1. still here"
    assert worker_pids(master) == workers
