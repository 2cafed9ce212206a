"""Old-style and new-style publishers and subscribers on one Redis, as during a rolling migration
from django-websocket-redis 0.6.0: all four combinations, against the library's live server.

- An **old-style publisher** is what ws4redis 0.6.0's ``RedisStore.publish_message`` does
  (ws4redis/redis_store.py at tag 0.6.0): for each channel ``PUBLISH channel message`` and, when
  ``expire > 0``, ``SETEX channel expire message``; the message is a ``RedisMessage``, i.e. bytes.
- An **old-style subscriber** is a plain redis-py ``SUBSCRIBE`` on ws4redis's channel names, which
  is what a 0.6.0 server does before forwarding the bytes to its browsers (its
  ``RedisSubscriber``), plus the ``GET channel`` with which it replays the persisted message.
- New style: this library's ``RedisPublisher``, its sockets' ``publish-*`` flags, its sockets.

Absences are proved with a marker published after what must not arrive.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import override_settings
from plain_redis import MARKER, PlainSubscriber
from websockets.sync.client import ClientConnection

from ws4redis_server import RedisMessage, RedisPublisher, wire
from ws4redis_server.testing import LiveServer, login_cookie, receive

FLAGS = "subscribe-broadcast&subscribe-user&subscribe-group&subscribe-session"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def old_publish(client: Any, channels: list[str], message: bytes, expire: int) -> None:
    """ws4redis 0.6.0's ``RedisStore.publish_message(message, expire)``, line for line::

        for channel in self._publishers:
            self._connection.publish(channel, message)
            if expire > 0:
                self._connection.setex(channel, expire, message)

    (the same SETEX command, sent as such: redis-py now warns that its ``setex`` is deprecated)."""
    for channel in channels:
        client.publish(channel, message)
        if expire > 0:
            client.execute_command("SETEX", channel, expire, message)


class OldSubscriber(PlainSubscriber):
    """A ws4redis 0.6.0 server's view of some channels: ``pubsub().subscribe(channel)`` for each
    (its ``RedisSubscriber.set_pubsub_channels``) and ``GET channel`` for the persisted message
    (its ``send_persisted_messages``)."""

    def persisted(self, channel: str) -> bytes | None:
        """What a 0.6.0 server would replay to a new socket on ``channel``: GET (a WRONGTYPE error
        here would break it), so the key must be a plain string."""
        assert self.client.type(channel) in (b"string", b"none")
        return self.client.get(channel)  # type: ignore[no-any-return]


def with_ids(ws: ClientConnection) -> list[tuple[str | None, bytes, bool]]:
    """Reads a socket with ``ids`` up to its position marker; returns the frames before it as
    (id, message, came as text)."""
    frames = []
    while True:
        data = receive(ws, timeout=10)
        frame = wire.parse_frame(data.encode() if isinstance(data, str) else data)
        if frame.position:
            return frames
        frames.append((frame.message_id, frame.data, isinstance(data, str)))


def frames(ws: ClientConnection, count: int) -> list[tuple[str | None, bytes, bool]]:
    """The next ``count`` messages of a socket with ``ids``, as in :func:`with_ids`."""
    found = []
    for _ in range(count):
        data = receive(ws, timeout=10)
        frame = wire.parse_frame(data.encode() if isinstance(data, str) else data)
        assert not frame.position, f"a position marker where a message was expected: {data!r}"
        found.append((frame.message_id, frame.data, isinstance(data, str)))
    return found


@pytest.fixture(scope="module")
def server(redis_server: Any) -> Iterator[LiveServer]:
    """The library's live server with the library's defaults (ids and history on, WS4REDIS_EXPIRE
    3600, anonymous sockets may not publish)."""
    with LiveServer() as live:
        yield live


@pytest.fixture
def client(redis_server: Any) -> Any:
    """A redis-py client of the tests' Redis that is not the library's."""
    return redis_server.client()


@pytest.fixture
def old_subscribers(client: Any) -> Iterator[Any]:
    opened: list[OldSubscriber] = []

    def subscribe(*channels: str) -> OldSubscriber:
        opened.append(OldSubscriber(client, *channels))
        return opened[-1]

    yield subscribe
    for each in opened:
        each.close()


@pytest.fixture
def member() -> Iterator[Any]:
    """A user in a group of their own, logged in: ``member.session`` is the session key."""
    user = User.objects.create_user(unique("john"))
    group = Group.objects.create(name=unique("chatters"))
    user.groups.add(group)
    user.group_name = group.name
    user.session = login_cookie(user)
    yield user
    user.delete()
    group.delete()


def audiences(user: Any, facility: str) -> dict[str, str]:
    """ws4redis's channel names (no WS4REDIS_PREFIX) of a socket ``?{FLAGS}`` of ``user``."""
    return {"broadcast": f"broadcast:{facility}", "user": f"user:{user.username}:{facility}",
            "group": f"group:{user.group_name}:{facility}", "session": f"session:{user.session}:{facility}"}


# -- old publisher -> our sockets ------------------------------------------------------------------

def test_an_old_publisher_reaches_our_sockets_live_and_persisted(server: LiveServer, client: Any,
                                                                 member: Any) -> None:
    facility = unique("oldpub")
    channels = audiences(member, facility)
    url = f"/ws/{facility}?{FLAGS}"
    plain = server.connect(url, session=member.session)
    ids = server.connect(f"{url}&ids", session=member.session)
    assert with_ids(ids) == []  # nothing persisted yet: just its position
    live = {"broadcast": "old broadcast héllo".encode(), "user": b"\xff\x00 old user",
            "group": b"old group", "session": b""}
    for audience, message in live.items():
        old_publish(client, [channels[audience]], RedisMessage(message), expire=0)
    # In publishing order; text when UTF-8 (ws4redis's rule), else binary; no id.
    assert [receive(plain, timeout=10) for _ in live] == ["old broadcast héllo", b"\xff\x00 old user",
                                                          "old group", ""]
    assert frames(ids, len(live)) == [(None, message, message != b"\xff\x00 old user")
                                      for message in live.values()]

    persisted = {"broadcast": b"kept broadcast", "user": b"kept user \xfe", "group": "kept gröup".encode(),
                 "session": b"kept session"}
    for audience, message in persisted.items():
        old_publish(client, [channels[audience]], RedisMessage(message), expire=60)
    assert sorted(map(repr, (receive(plain, timeout=10) for _ in persisted))) == sorted(
        ["'kept broadcast'", "b'kept user \\xfe'", "'kept gröup'", "'kept session'"])
    # A socket connecting now gets each channel's persisted message first, as from a 0.6.0 server.
    later = server.connect(url, session=member.session)
    assert sorted(map(repr, (receive(later, timeout=10) for _ in persisted))) == sorted(
        ["'kept broadcast'", "b'kept user \\xfe'", "'kept gröup'", "'kept session'"])
    later_ids = server.connect(f"{url}&ids", session=member.session)
    assert sorted(with_ids(later_ids)) == sorted(
        (None, message, message != b"kept user \xfe") for message in persisted.values())
    # And then what is published live (nothing else came before it).
    old_publish(client, [channels["broadcast"]], MARKER, expire=0)
    assert receive(later, timeout=10) == MARKER.decode()
    assert frames(later_ids, 1) == [(None, MARKER, True)]


# -- our publishers -> an old subscriber -----------------------------------------------------------

def test_our_publishers_reach_an_old_subscriber_as_exactly_the_payload(server: LiveServer, client: Any,
                                                                       member: Any, old_subscribers: Any) -> None:
    facility = unique("newpub")
    broadcast, own = f"broadcast:{facility}", f"user:{member.username}:{facility}"
    old = old_subscribers(broadcast, own)
    ours = server.connect(f"/ws/{facility}?subscribe-broadcast&ids")  # so our hubs are on the channel too
    with_ids(ours)
    publisher = RedisPublisher(facility=facility, broadcast=True, users=[member.username])
    sent: list[bytes] = []
    for message, kwargs in [
        ("héllo", {}),                                # str: UTF-8, persisted for WS4REDIS_EXPIRE
        (RedisMessage("a RedisMessage"), {"expire": 0}),
        (b"\xff\x00\xfe binary", {"expire": 0}),
        (b"", {"expire": 0}),
        (b"\x00ws4r:i:1-0\x00 looks like 0.2.0's envelope", {"expire": 0}),
        ('{"counted": true}', {"expire": 0, "count_deliveries": True}),
    ]:
        publisher.publish_message(message, **kwargs)
        sent.append(message.encode() if isinstance(message, str) else bytes(message))
    publisher.pipeline_publish_message(RedisMessage("through a pipeline"), expire=30)
    sent.append(b"through a pipeline")
    # A logged-in socket publishing text and binary frames (b"abc" is binary though UTF-8).
    socket_sent: list[str | bytes] = ["from a socket", b"\x00\x01 socket binary", b"abc"]
    with server.connect(f"/ws/{facility}?publish-broadcast&publish-user&subscribe-broadcast&echo",
                        session=member.session) as sender:
        assert receive(sender, timeout=10) == "through a pipeline"  # the persisted message, on connect
        for message in socket_sent:
            sender.send(message)
        for message in socket_sent:  # echoed: all published (each socket message on both channels)
            assert receive(sender, timeout=10) == message
    sent += [message.encode() if isinstance(message, str) else message for message in socket_sent]

    assert old.until_marker(broadcast) == sent
    assert old.until_marker(own) == sent
    # What a 0.6.0 server replays to its new sockets: the last persisted payload, a plain string.
    assert old.persisted(broadcast) == b"abc"
    assert old.persisted(own) == b"abc"
    # Our own socket on the same channel still gets ids, and text or binary as published.
    got = frames(ours, len(sent))
    assert [data for _, data, _ in got] == sent
    assert all(message_id is not None for message_id, _, _ in got)
    assert [text for _, _, text in got] == [True, True, False, True, True, True, True, True, False, False]


# -- old publisher -> old subscriber, with our hubs on the same channels ---------------------------

def test_an_old_publisher_and_an_old_subscriber_are_not_affected_by_our_hubs(
        server: LiveServer, client: Any, member: Any, old_subscribers: Any) -> None:
    facility = unique("oldold")
    channels = audiences(member, facility)
    url = f"/ws/{facility}?{FLAGS}"
    # Our sockets, plain and with ids, subscribe every channel: our hubs read them all.
    plain = server.connect(url, session=member.session)
    ids = server.connect(f"{url}&ids", session=member.session)
    with_ids(ids)
    old = old_subscribers(*channels.values())
    sent = {audience: [f"{audience} one".encode(), b"\xfe\xff " + audience.encode(), b"", f"{audience} last".encode()]
            for audience in channels}
    for index in range(4):
        for audience, channel in channels.items():
            old_publish(client, [channel], RedisMessage(sent[audience][index]), expire=60 if index % 2 else 0)
    for audience, channel in channels.items():
        assert old.until_marker(channel) == sent[audience]  # exactly, and nothing else
        assert old.persisted(channel) == f"{audience} last".encode()  # the last SETEX
    # Our hubs add nothing to Redis for raw messages: no other key names the facility.
    assert sorted(key.decode() for key in client.scan_iter(match=f"*{facility}*")) == sorted(channels.values())
    # Our sockets did get them all (hubs subscribed), without ids; markers included.
    expected = [message for index in range(4) for message in (sent[audience][index] for audience in channels)]
    expected += [MARKER] * len(channels)
    assert [receive(plain, timeout=10) for _ in expected] == [
        message if message.startswith(b"\xfe") else message.decode() for message in expected]
    assert frames(ids, len(expected)) == [(None, message, not message.startswith(b"\xfe")) for message in expected]


# -- our publisher -> our sockets, with raw messages interleaved -----------------------------------

def test_ids_and_replay_hold_when_an_old_publisher_interleaves(server: LiveServer, client: Any,
                                                               member: Any) -> None:
    facility = unique("mixed")
    channel = f"broadcast:{facility}"
    url = f"/ws/{facility}?subscribe-broadcast"
    plain = server.connect(url)
    ids = server.connect(f"{url}&ids")
    assert with_ids(ids) == []
    publisher = RedisPublisher(facility=facility, broadcast=True)
    sender = server.connect(f"/ws/{facility}?publish-broadcast", session=member.session)
    # (who publishes, the message, text): ours through RedisPublisher, old raw, a socket's frame.
    steps: list[tuple[str, bytes, bool]] = [
        ("ours", b"A", True), ("old", b"raw 1", True), ("ours", b"B \xff binary", False),
        ("old", b"\xfe raw 2", False), ("socket", b"S", True), ("old", b"raw 3", True), ("ours", b"C", True)]
    for kind, message, text in steps:
        if kind == "ours":
            publisher.publish_message(message, expire=0)
        elif kind == "old":
            old_publish(client, [channel], RedisMessage(message), expire=0)
        else:
            sender.send(message.decode())
        # Each in turn: the plain socket gets it before the next is published, so the order is known.
        assert receive(plain, timeout=10) == (message.decode() if text else message)
    received = frames(ids, len(steps))
    assert received == [(received[index][0], message, text) for index, (_, message, text) in enumerate(steps)]
    assert [message_id is not None for message_id, _, _ in received] == [kind != "old" for kind, _, _ in steps]
    numbered = [message_id for message_id, _, _ in received if message_id is not None]
    assert numbered == sorted(numbered, key=wire.parse_id) and len(set(numbered)) == 4
    # Resuming after A: ours only (raw messages have no id and no place in the history), in order.
    resumed = server.connect(f"{url}&ids&last-id={numbered[0]}")
    assert with_ids(resumed) == [(message_id, data, text) for message_id, data, text in received[2:]
                                 if message_id is not None]
    # And the replay does not hide what follows: a raw message, then one of ours, arrive live.
    old_publish(client, [channel], RedisMessage(b"raw 4"), expire=0)
    publisher.publish_message("D", expire=0)
    after = frames(resumed, 2)
    assert after[0] == (None, b"raw 4", True)
    assert after[1][1:] == (b"D", True) and wire.parse_id(after[1][0] or "") > wire.parse_id(numbered[-1])


# -- the same, under WS4REDIS_PREFIX ---------------------------------------------------------------

def test_both_ways_under_a_prefix(client: Any, member: Any, old_subscribers: Any) -> None:
    """ws4redis 0.6.0 puts ``WS4REDIS_PREFIX`` and a colon before every channel name (its
    ``RedisStore.get_prefix``); with the same setting on both sides, old and new meet."""
    facility = unique("prefixed")
    channel = f"legacy:broadcast:{facility}"
    with LiveServer(settings={"WS4REDIS_PREFIX": "legacy"}) as server, override_settings(WS4REDIS_PREFIX="legacy"):
        old = old_subscribers(channel)
        ids = server.connect(f"/ws/{facility}?subscribe-broadcast&ids")
        with_ids(ids)
        old_publish(client, [channel], RedisMessage(b"old, prefixed"), expire=0)
        RedisPublisher(facility=facility, broadcast=True).publish_message("new, prefixed", expire=0)
        assert old.until_marker(channel) == [b"old, prefixed", b"new, prefixed"]
        got = frames(ids, 3)
    assert [(message_id is not None, data) for message_id, data, _ in got] == [
        (False, b"old, prefixed"), (True, b"new, prefixed"), (False, MARKER)]
