"""A client that stops reading is closed (4000) once its outbox is full, while a socket beside it
receives the whole stream; what the stalled client can still read afterwards is bounded."""
import socket
import threading
import time
import uuid

import pytest
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, TextMessage

from deploy.stack import wait_for
from ws4redis_server.testing import connect, raw_socket

MESSAGE = 16 * 1024                 # bytes per published message
STREAM = 2000                       # messages: 32 MiB, far over the 4 MiB outbox and the buffers between
AHEAD = 64                          # messages the publisher may be ahead of the reading socket


def read_to_the_end(sock: socket.socket, timeout: float) -> tuple[int, list]:
    """Reads until the server ends the connection; returns (payload bytes, wsproto events)."""
    protocol = Connection(ConnectionType.CLIENT)
    events, payload = [], 0
    sock.settimeout(timeout)
    while True:
        data = sock.recv(1 << 20)
        protocol.receive_data(data or None)
        for event in protocol.events():
            if isinstance(event, (TextMessage, BytesMessage)):
                payload += len(event.data)
            else:
                events.append(event)
        if not data:
            return payload, events


@pytest.mark.slow
def test_a_client_that_stops_reading_is_closed_and_the_others_get_everything(stack, redis_server) -> None:
    name = "slow" + uuid.uuid4().hex[:8]
    channel = f"broadcast:{name}"
    log = stack.run_dir / "uwsgi.log"
    closed_before = log.read_text(errors="replace").count("closing a slow consumer")
    stalled = raw_socket(f"{stack.ws_url}/ws/{name}?subscribe-broadcast", receive_buffer=4096)  # never read
    reader = connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast", timeout=30)
    received: list[int] = []

    def read() -> None:
        try:
            while len(received) < STREAM:
                received.append(int(reader.recv(timeout=30)[:8]))
        except TimeoutError:
            pass

    thread = threading.Thread(target=read)
    try:
        wait_for(lambda: redis_server.client().pubsub_numsub(channel)[0][1] >= 1, 10, "the subscriptions")
        thread.start()
        client = redis_server.client()
        padding = "x" * (MESSAGE - 8)
        deadline = time.monotonic() + 120
        for number in range(STREAM):
            # Keep pace with the reading socket (it must not become a slow consumer itself).
            while number - len(received) > AHEAD and time.monotonic() < deadline:
                time.sleep(0.001)
            client.publish(channel, f"{number:08d}{padding}")
        thread.join(60)
        assert received == list(range(STREAM))
        wait_for(lambda: log.read_text(errors="replace").count("closing a slow consumer") > closed_before,
                 10, "the slow consumer's closing")
        # The stalled client now reads: it gets what was in the pipes, then the close frame.
        payload, events = read_to_the_end(stalled, timeout=30)
    finally:
        reader.close()
        stalled.close()
    closes = [(event.code, event.reason) for event in events if isinstance(event, CloseConnection)]
    # The server's close frame, then the end of the connection (wsproto reports it as 1006).
    assert closes == [(4000, "slow consumer: outbox full"), (1006, None)]
    # Its outbox was dropped: it got far less than the stream, at most the outbox and the buffers.
    assert payload < STREAM * MESSAGE / 2, payload
    print(f"\nstalled client read {payload / 2**20:.1f} MiB of a {STREAM * MESSAGE / 2**20:.0f} MiB stream")
