"""On Redis a message is exactly its bytes; our sockets still get ids, replay, receipts and the
opcode (a notice on a companion channel carries them, see ws4redis_server/wire.py).

Against the tests' redis-server and the real stack (uWSGI from deploy/uwsgi.ini behind nginx,
three WebSocket workers), with real WebSocket clients and a plain redis-py subscriber standing
for a ws4redis server or a site's own service. Absences are proved with a marker sent after.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from deploy.stack import wait_for
from ws4redis_server import RedisPublisher, delivery_count, wire
from ws4redis_server.testing import connect

MARKER = b"-- marker --"


def facility() -> str:
    return "w" + uuid.uuid4().hex[:12]


class PlainSubscriber:
    """A redis-py subscriber of one channel, as a ws4redis server or any other service is."""

    def __init__(self, client: Any, channel: str) -> None:
        self.channel = channel
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(channel)
        assert self.pubsub.get_message(timeout=5) is None  # the confirmation
        self.client = client

    def read(self, timeout: float = 10) -> bytes:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.pubsub.get_message(timeout=max(0.0, deadline - time.monotonic()))
            if message is not None:
                assert message["channel"].decode() == self.channel
                return message["data"]  # type: ignore[no-any-return]
        raise TimeoutError(f"nothing on {self.channel} within {timeout} s")

    def read_until_marker(self, publish: bool = True) -> list[bytes]:
        """Publishes the marker raw (unless a socket sends it after its own messages, so that it
        comes after them) and returns everything read before it."""
        if publish:
            self.client.publish(self.channel, MARKER)
        got = []
        while (data := self.read()) != MARKER:
            got.append(data)
        return got


@pytest.fixture
def plain(redis_server) -> Iterator[Any]:  # noqa: ANN001
    subscribers: list[PlainSubscriber] = []

    def subscribe(name: str) -> PlainSubscriber:
        subscribers.append(PlainSubscriber(redis_server.client(), f"broadcast:{name}"))
        return subscribers[-1]

    yield subscribe
    for subscriber in subscribers:
        subscriber.pubsub.close()


def until_marker(ws) -> list[str | bytes]:  # noqa: ANN001
    """Reads a socket with ids up to its position marker; returns the frames before it."""
    frames = []
    while True:
        data = ws.recv(timeout=10)
        raw = data.encode() if isinstance(data, str) else data
        if raw.startswith(b"@"):
            return frames
        frames.append(data)


def framed(data: str | bytes) -> tuple[wire.Frame, bool]:
    """Parses a frame of a socket with ids; returns it and whether it came as text."""
    return wire.parse_frame(data.encode() if isinstance(data, str) else data), isinstance(data, str)


# -- exactly the published bytes on Redis -----------------------------------------------------------

def test_redis_publisher_messages_reach_plain_subscribers_as_published(stack, plain) -> None:
    name = facility()
    subscriber = plain(name)
    sent = [b"text", "héllo".encode(), b"\xff\x00\xfe", b"", b"\x00ws4r looks like an envelope"]
    with connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast&ids") as with_ids, \
            connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast") as without:
        until_marker(with_ids)
        publisher = RedisPublisher(facility=name, broadcast=True)
        for message in sent:
            publisher.publish_message(message, expire=0)
        assert subscriber.read_until_marker() == sent
        # Our sockets: ids, and text whenever the bytes are UTF-8 (ws4redis's rule for Django).
        got = [framed(with_ids.recv(timeout=10)) for _ in sent]
        assert [frame.data for frame, _ in got] == sent
        assert all(frame.message_id is not None and not frame.position for frame, _ in got)
        assert [text for _, text in got] == [True, True, False, True, True]
        assert [without.recv(timeout=10) for _ in sent] == ["text", "héllo", b"\xff\x00\xfe", "",
                                                            "\x00ws4r looks like an envelope"]


def test_count_deliveries_sends_the_plain_message_and_still_counts(stack, plain) -> None:
    name = facility()
    subscriber = plain(name)
    sockets = [connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast{'&ids' * (i % 2)}") for i in range(5)]
    try:
        for ws in sockets[1::2]:
            until_marker(ws)
        message_id = RedisPublisher(facility=name, broadcast=True).publish_message(
            '{"counted": true}', expire=0, count_deliveries=True)
        assert subscriber.read_until_marker() == [b'{"counted": true}']
        assert [ws.recv(timeout=10) for ws in sockets[::2]] == ['{"counted": true}'] * 3
        for ws in sockets[1::2]:
            frame, text = framed(ws.recv(timeout=10))
            assert frame.data == b'{"counted": true}' and frame.message_id and text
        wait_for(lambda: delivery_count(message_id) == 5, 10, "5 receipts")
    finally:
        for ws in sockets:
            ws.close()


def test_a_socket_publish_reaches_plain_subscribers_as_sent(stack, plain, make_user, login_cookie) -> None:
    name = facility()
    subscriber = plain(name)
    with connect(f"{stack.ws_url}/ws/{name}?publish-broadcast", session=login_cookie(make_user())) as ws:
        # The marker goes through the socket too: the socket publishes in the order it reads.
        for message in ("text", b"abc", b"\x01\xff", MARKER):
            ws.send(message)
        assert subscriber.read_until_marker(publish=False) == [b"text", b"abc", b"\x01\xff"]


# -- the opcode survives Redis ------------------------------------------------------------------------

SOCKET_MESSAGES = [b"abc", b"", "héllo".encode(), b"\xff\x00", "abc", "", "héllo"]


def test_binary_from_a_socket_arrives_binary_text_as_text(stack, make_user, login_cookie) -> None:
    name = facility()
    session = login_cookie(make_user())
    with connect(f"{stack.ws_url}/ws/{name}?publish-broadcast", session=session) as sender, \
            connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast") as plain_socket, \
            connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast&ids") as with_ids:
        until_marker(with_ids)
        for message in SOCKET_MESSAGES:
            sender.send(message)
        assert [plain_socket.recv(timeout=10) for _ in SOCKET_MESSAGES] == SOCKET_MESSAGES
        got = [framed(with_ids.recv(timeout=10)) for _ in SOCKET_MESSAGES]
    assert [(frame.data, text) for frame, text in got] == [
        (m.encode() if isinstance(m, str) else m, isinstance(m, str)) for m in SOCKET_MESSAGES]
    assert all(frame.message_id for frame, _ in got)


def test_replay_and_the_persisted_message_keep_the_opcode(stack, make_user, login_cookie) -> None:
    name = facility()
    url = f"{stack.ws_url}/ws/{name}?subscribe-broadcast&ids"
    sender_url = f"{stack.ws_url}/ws/{name}?subscribe-broadcast&publish-broadcast&echo"
    session = login_cookie(make_user())
    with connect(url) as ws:
        until_marker(ws)
        RedisPublisher(facility=name, broadcast=True).publish_message("first", expire=0)
        last_id = framed(ws.recv(timeout=10))[0].message_id
    sent = [b"abc", "text", b"\xfe"]
    with connect(sender_url, session=session) as sender:
        for message in sent:
            sender.send(message)  # persisted (WS4REDIS_EXPIRE) and kept in the history
        assert [sender.recv(timeout=10) for _ in sent] == sent  # echoed: all published
    with connect(f"{url}&last-id={last_id}") as ws:
        replayed = [framed(data) for data in until_marker(ws)]
    assert [(frame.data, text) for frame, text in replayed] == [(b"abc", False), (b"text", True), (b"\xfe", False)]
    with connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast") as ws:
        assert ws.recv(timeout=10) == b"\xfe"  # the persisted message: the last one
    with connect(sender_url, session=session) as sender:
        assert sender.recv(timeout=10) == b"\xfe"  # the persisted message
        sender.send(b"abc")
        assert sender.recv(timeout=10) == b"abc"
    with connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast") as ws:
        assert ws.recv(timeout=10) == b"abc"  # binary, although UTF-8: its marker says so


def test_a_raw_publish_arrives_text_if_utf8_without_an_id(stack, redis_server) -> None:
    name = facility()
    client = redis_server.client()
    with connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast&ids") as with_ids, \
            connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast") as without:
        until_marker(with_ids)
        RedisPublisher(facility=name, broadcast=True).publish_message(b"\x01binary?", expire=0)
        client.publish(f"broadcast:{name}", "raw héllo")
        client.publish(f"broadcast:{name}", b"\xff raw")
        got = [framed(with_ids.recv(timeout=10)) for _ in range(3)]
        assert [without.recv(timeout=10) for _ in range(3)] == ["\x01binary?", "raw héllo", b"\xff raw"]
    assert got[0][0].message_id is not None
    assert [(frame.message_id, frame.data, text) for frame, text in got[1:]] == [
        (None, "raw héllo".encode(), True), (None, b"\xff raw", False)]


def test_a_notice_applies_to_the_very_next_message_only(stack, redis_server, make_user, login_cookie) -> None:
    """A notice published by hand on a companion channel, then a raw message on another channel
    of the same hub connection (one socket on two channels), then a raw one on the notice's own
    channel: neither message gets the notice's id."""
    name = facility()
    user = make_user()
    broadcast, own = f"broadcast:{name}", f"user:{user.username}:{name}"
    client = redis_server.client()
    with connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast&subscribe-user&ids",
                 session=login_cookie(user)) as ws:
        until_marker(ws)
        client.publish(wire.notice_channel("", broadcast), wire.notice("99999999999999-0", False, None))
        client.publish(own, "elsewhere")
        client.publish(broadcast, "raw")
        assert [framed(ws.recv(timeout=10)) for _ in range(2)] == [
            (wire.Frame(None, b"elsewhere"), True), (wire.Frame(None, b"raw"), True)]
