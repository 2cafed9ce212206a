"""Message ids and replay: nothing missed across a reconnect, within the history window.

Against the tests' redis-server and the real stack (uWSGI from deploy/uwsgi.ini behind nginx),
with real WebSocket clients. Sockets that ask for ``ids`` get ``<id>\\n<message>`` frames and
``@<id>\\n`` position markers; ``last-id=<id>`` replays what came after that id.
"""
from __future__ import annotations

import threading
import time
import uuid

import pytest
import redis
from django.test import override_settings
from websockets.exceptions import InvalidStatus

from ws4redis_server import RedisPublisher, history
from ws4redis_server.testing import connect


def facility() -> str:
    return "h" + uuid.uuid4().hex[:12]


def frame(ws, timeout: float = 10) -> tuple[str, str]:  # noqa: ANN001
    """Returns (header, message) of the next frame of a socket with ids."""
    data = ws.recv(timeout=timeout)
    header, newline, message = data.partition("\n")
    assert newline, f"frame without a header line: {data!r}"
    return header, message


def until_marker(ws) -> tuple[list[tuple[str, str]], str]:  # noqa: ANN001
    """Reads frames up to the position marker; returns (messages with their ids, marker)."""
    messages = []
    while True:
        header, message = frame(ws)
        if header.startswith("@"):
            return messages, header
        messages.append((header, message))


# -- the history itself, on the tests' Redis ------------------------------------------------------

def test_ids_grow_across_channels_and_replay_returns_what_came_after(redis_server) -> None:
    client = redis_server.client()
    a, b = f"broadcast:{facility()}", f"broadcast:{facility()}"
    ids = [history.publish(client, "", [channel], f"m{i}".encode(), length=100, seconds=60)[0]
           for i, channel in enumerate([a, b, a, b, a])]
    assert ids == sorted(ids, key=history.parse_id) and len(set(ids)) == 5
    found = history.replay(client, "", [a, b], ids[1], 60)
    assert found.position == history.position(client, "") == ids[-1]
    assert not found.gap
    assert found.entries == [(ids[2], a, b"m2", True), (ids[3], b, b"m3", True), (ids[4], a, b"m4", True)]
    assert history.replay(client, "", [a, b], ids[-1], 60).entries == []


def test_one_message_on_two_channels_has_one_id_and_the_persisted_copy_stays_plain(redis_server) -> None:
    client = redis_server.client()
    a, b = f"broadcast:{facility()}", f"broadcast:{facility()}"
    message_id, _ = history.publish(client, "", [a, b], b"both", length=100, seconds=60, expire=30)
    assert client.xrange(history.stream_key("", a)) == client.xrange(history.stream_key("", b)) \
        == [(message_id.encode(), {b"m": b"both", b"o": b"t"})]
    assert client.get(a) == client.get(b) == b"both"
    assert 0 < client.pttl(history.stream_key("", a)) <= 60_000


def test_a_trimmed_history_reports_a_gap(redis_server) -> None:
    client = redis_server.client()
    channel = f"broadcast:{facility()}"
    first, _ = history.publish(client, "", [channel], b"first", length=10, seconds=60)
    for i in range(500):  # far past the length: whole nodes of the stream are trimmed
        history.publish(client, "", [channel], str(i).encode(), length=10, seconds=60)
    found = history.replay(client, "", [channel], first, 60)
    assert found.gap
    assert 10 <= len(found.entries) < 500
    assert found.entries[-1][2] == b"499"


def test_an_id_newer_than_the_position_reports_a_gap(redis_server) -> None:
    client = redis_server.client()
    channel = f"broadcast:{facility()}"
    history.publish(client, "", [channel], b"x", length=10, seconds=60)
    found = history.replay(client, "", [channel], "99999999999999-0", 60)
    assert found.gap and found.entries == []


@pytest.mark.parametrize("value", ["", "12", "12-", "a-1", "1-2-3", "1" * 21 + "-0"])
def test_parse_id_refuses_what_is_not_an_id(value: str) -> None:
    with pytest.raises(ValueError, match="a message id looks like"):
        history.parse_id(value)


def test_publishing_without_history_keeps_ws4redis_behaviour(redis_server) -> None:
    channel_facility = facility()
    with override_settings(WS4REDIS_HISTORY_LENGTH=0):
        RedisPublisher(facility=channel_facility, broadcast=True).publish_message("plain", expire=30)
    client = redis_server.client()
    assert client.get(f"broadcast:{channel_facility}") == b"plain"
    assert not client.exists(history.stream_key("", f"broadcast:{channel_facility}"))


# -- sockets -------------------------------------------------------------------------------------

def test_a_socket_with_ids_gets_a_position_then_messages_with_their_ids(stack) -> None:
    name = facility()
    with connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast&ids") as ws:
        replayed, marker = until_marker(ws)
        assert replayed == [] and marker.startswith("@") and not marker.endswith("gap")
        publisher = RedisPublisher(facility=name, broadcast=True)
        for text in ("one", "two", "three"):
            publisher.publish_message(text, expire=0)
        got = [frame(ws) for _ in range(3)]
    assert [message for _, message in got] == ["one", "two", "three"]
    ids = [history.parse_id(header) for header, _ in got]
    assert ids == sorted(ids) and ids[0] > history.parse_id(marker[1:])


def test_a_persisted_message_comes_first_without_an_id(stack) -> None:
    name = facility()
    RedisPublisher(facility=name, broadcast=True).publish_message("kept", expire=30)
    with connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast&ids") as ws:
        assert frame(ws) == ("", "kept")
        assert frame(ws)[0].startswith("@")


def test_reconnecting_with_the_last_id_replays_what_was_missed_in_order_once(stack) -> None:
    name = facility()
    url = f"{stack.ws_url}/ws/{name}?subscribe-broadcast&ids"
    publisher = RedisPublisher(facility=name, broadcast=True)
    with connect(url) as ws:
        until_marker(ws)
        publisher.publish_message("seen", expire=0)
        last_id, message = frame(ws)
        assert message == "seen"
    for i in range(5):
        publisher.publish_message(f"missed {i}", expire=0)
    with connect(f"{url}&last-id={last_id}") as ws:
        replayed, marker = until_marker(ws)
        assert [message for _, message in replayed] == [f"missed {i}" for i in range(5)]
        assert marker == f"@{replayed[-1][0]}"
        publisher.publish_message("live", expire=0)
        assert frame(ws)[1] == "live"
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.5)


def test_a_binary_message_keeps_its_bytes_behind_the_header(stack) -> None:
    name = facility()
    with connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast&ids") as ws:
        until_marker(ws)
        RedisPublisher(facility=name, broadcast=True).publish_message(b"\xff\x00\x01", expire=0)
        data = ws.recv(timeout=10)
    assert isinstance(data, bytes)
    header, _, payload = data.partition(b"\n")
    history.parse_id(header.decode())
    assert payload == b"\xff\x00\x01"


def test_reconnects_under_a_steady_stream_lose_nothing_and_repeat_nothing(stack) -> None:
    name = facility()
    url = f"{stack.ws_url}/ws/{name}?subscribe-broadcast&ids"
    total = 300
    publisher = RedisPublisher(facility=name, broadcast=True)
    received: list[str] = []
    last_id = None
    started = threading.Event()

    def publish_all() -> None:
        started.wait(10)
        for i in range(total):
            publisher.publish_message(str(i), expire=0)
            time.sleep(0.003)

    thread = threading.Thread(target=publish_all)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while len(received) < total and time.monotonic() < deadline:
            with connect(url + (f"&last-id={last_id}" if last_id else "")) as ws:
                started.set()
                for _ in range(40):  # a few dozen frames, then drop the socket mid-stream
                    try:
                        header, message = frame(ws, timeout=5)
                    except TimeoutError:
                        break
                    if header.startswith("@"):
                        assert not header.endswith("gap")
                        last_id = header[1:]
                    else:
                        received.append(message)
                        last_id = header
    finally:
        thread.join(30)
    assert received == [str(i) for i in range(total)]


def test_a_replay_larger_than_the_outbox_keeps_the_newest_and_reports_a_gap(stack, redis_server) -> None:
    name = facility()
    url = f"{stack.ws_url}/ws/{name}?subscribe-broadcast&ids"
    with connect(url) as ws:
        _, marker = until_marker(ws)
    client = redis_server.client()
    body = "x" * 5000  # 900 of them: over the 4 MiB outbox of the stack's settings
    for i in range(900):
        history.publish(client, "", [f"broadcast:{name}"], f"{i} {body}".encode(), length=1000, seconds=600)
    with connect(f"{url}&last-id={marker[1:]}") as ws:
        replayed, marker = until_marker(ws)
    numbers = [int(message.split(" ", 1)[0]) for _, message in replayed]
    assert marker.endswith(" gap")
    assert 0 < len(numbers) < 900 and numbers == list(range(900 - len(numbers), 900))


def test_an_id_past_the_window_reports_a_gap(stack) -> None:
    name = facility()
    with connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast&last-id=1-0") as ws:
        assert frame(ws)[0].endswith(" gap")


def test_a_malformed_last_id_is_refused_with_400(stack) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{stack.ws_url}/ws/{facility()}?subscribe-broadcast&last-id=yesterday")
    assert refused.value.response.status_code == 400
    assert b"last-id: a message id looks like" in refused.value.response.body


def test_sockets_without_ids_still_get_plain_messages(stack) -> None:
    name = facility()
    with connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast") as ws:
        RedisPublisher(facility=name, broadcast=True).publish_message("plain", expire=0)
        assert ws.recv(timeout=10) == "plain"


# -- a hub outage: messages published while the sidecar's pub/sub connection was down -------------

@pytest.fixture
def cut_off_sidecar(redis_server):  # noqa: ANN001, ANN201
    """Yields a Redis client of another user, and a context that locks the default user (the
    stack's) out of Redis and drops its connections, so the sidecar's hubs are down while this
    client can still publish."""
    admin = redis_server.client()
    password = uuid.uuid4().hex
    admin.acl_setuser("ops", enabled=True, passwords=[f"+{password}"], keys=["*"], channels=["*"],
                      commands=["+@all"], reset=True)
    ops = redis.Redis(host="127.0.0.1", port=redis_server.port, username="ops", password=password)

    class Cut:
        def __enter__(self) -> None:
            ops.acl_setuser("default", enabled=False)
            ops.client_kill_filter(_type="pubsub")
            ops.client_kill_filter(_type="normal", skipme=True, user="default")

        def __exit__(self, *exc: object) -> None:
            ops.acl_setuser("default", enabled=True)

    try:
        yield ops, Cut()
    finally:
        ops.acl_setuser("default", enabled=True)
        ops.acl_deluser("ops")


def test_messages_published_while_the_hubs_were_down_arrive_in_order(stack, cut_off_sidecar) -> None:
    ops, cut = cut_off_sidecar
    name = facility()
    channel = f"broadcast:{name}"
    quiet = facility()  # a channel with no message before the outage
    with connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast&ids") as with_ids, \
            connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast") as plain, \
            connect(f"{stack.ws_url}/ws/{quiet}?subscribe-broadcast") as idle:
        until_marker(with_ids)
        history.publish(ops, "", [channel], b"before", length=100, seconds=60)
        assert frame(with_ids)[1] == "before" and plain.recv(timeout=10) == "before"
        with cut:
            for i in range(20):
                history.publish(ops, "", [channel], f"during {i}".encode(), length=100, seconds=60)
            history.publish(ops, "", [f"broadcast:{quiet}"], b"while away", length=100, seconds=60)
        # The hubs reconnect with backoff, catch up from the history, then go on live.
        history.publish(ops, "", [channel], b"after", length=100, seconds=60)
        expected = [f"during {i}" for i in range(20)] + ["after"]
        got = []
        while len(got) < len(expected):
            header, message = frame(with_ids, timeout=20)
            if not header.startswith("@"):
                got.append(message)
        assert got == expected
        assert [plain.recv(timeout=20) for _ in expected] == expected
        assert idle.recv(timeout=20) == "while away"
