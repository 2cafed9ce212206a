"""django-websocket-redis's publisher API, in every form of 0.6.0 and of its master branch, checked
on the wire: a plain redis-py PubSub subscribed to ws4redis's channel names reads what arrives,
and the persisted values are read back with GET. Real Redis, real database; no mocks."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, Group, User
from django.contrib.sessions.backends.db import SessionStore
from django.core.handlers.wsgi import WSGIHandler
from django.test import Client, RequestFactory, override_settings
from plain_redis import PlainSubscriber

from ws4redis_server import SELF, RedisMessage, RedisPublisher, delivery_count, get_redis
from ws4redis_server.history import replay
from ws4redis_server.publisher import MessageTypeError


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(autouse=True)
def _redis(redis_server: Any) -> None:
    """Every test here uses the library tests' Redis."""


@pytest.fixture
def client(redis_server: Any) -> Any:
    """A redis-py client of the tests' Redis that is not the library's (no pool settings of ours)."""
    return redis_server.client()


class Wire(PlainSubscriber):
    """A plain redis-py subscription to some channels, as any other Redis client would have."""

    def messages(self, count: int) -> list[tuple[str, bytes]]:
        """The next ``count`` messages as (channel, payload), then checks nothing else came."""
        found = []
        while len(found) < count:
            message = self.pubsub.get_message(timeout=5)
            assert message is not None, f"only {found} of {count} messages arrived"
            # Exactly the published bytes, ids on or off: what a ws4redis server forwards.
            found.append((message["channel"].decode(), message["data"]))
        self.nothing()
        return sorted(found)

    def raw(self) -> bytes:
        message = self.pubsub.get_message(timeout=5)
        assert message is not None
        return message["data"]


@pytest.fixture
def wire(client: Any) -> Iterator[Any]:
    opened: list[Wire] = []

    def subscribe(*channels: str) -> Wire:
        opened.append(Wire(client, *channels))
        return opened[-1]

    yield subscribe
    for each in opened:
        each.close()


@pytest.fixture
def john() -> User:
    """A user in two groups of their own, with a session and a logged-in request."""
    user = User.objects.create_user(unique("john"), password="secret")
    user.group_names = sorted(unique(name) for name in ("chatters", "admins"))
    for name in user.group_names:
        user.groups.add(Group.objects.create(name=name))
    browser = Client()
    browser.force_login(user)
    request = RequestFactory().get("/chat/")
    request.session = SessionStore(browser.cookies[settings.SESSION_COOKIE_NAME].value)
    request.user = user
    user.request = request
    return user


# -- RedisPublisher: every constructor form -----------------------------------------------------


def test_keyword_audiences_publish_on_ws4redis_channel_names(wire: Any, john: User) -> None:
    facility = unique("foobar")
    group = Group.objects.get(name=john.group_names[0])
    cases = [
        ({"broadcast": True}, [f"broadcast:{facility}"]),
        ({"users": ["john", "mary"]}, [f"user:john:{facility}", f"user:mary:{facility}"]),
        ({"users": ("john",)}, [f"user:john:{facility}"]),
        ({"users": [john]}, [f"user:{john.username}:{facility}"]),  # user objects, as ws4redis's '{0}'.format(u)
        ({"groups": ["chatters"]}, [f"group:chatters:{facility}"]),
        ({"groups": [group]}, [f"group:{group.name}:{facility}"]),
        ({"sessions": ["wnqd0gbw5obpnj50zwh6yaq2yz4o8g9x"]}, [f"session:wnqd0gbw5obpnj50zwh6yaq2yz4o8g9x:{facility}"]),
        ({"broadcast": True, "users": ["mary"], "groups": ["chatters"], "sessions": ["k"]},
         [f"broadcast:{facility}", f"user:mary:{facility}", f"group:chatters:{facility}", f"session:k:{facility}"]),
        ({"broadcast": False, "users": [], "groups": (), "sessions": []}, []),
    ]
    for audience, channels in cases:
        decoys = [f"broadcast:{facility}-other", f"user:bob:{facility}", f"group:other:{facility}"]
        listener = wire(*channels, *decoys)
        publisher = RedisPublisher(facility=facility, **audience)
        assert sorted(publisher.channels) == sorted(channels)
        message = f"for {audience}"
        assert publisher.publish_message(RedisMessage(message), expire=0) == len(channels)
        assert listener.messages(len(channels)) == sorted((channel, message.encode()) for channel in channels)
        listener.close()


def test_prefix_as_ws4redis(wire: Any) -> None:
    facility = unique("f")
    with override_settings(WS4REDIS_PREFIX="demo"):
        listener = wire(f"demo:broadcast:{facility}", f"demo:user:john:{facility}")
        RedisPublisher(facility=facility, broadcast=True, users=["john"]).publish_message(RedisMessage("hi"), 0)
        assert listener.messages(2) == [(f"demo:broadcast:{facility}", b"hi"), (f"demo:user:john:{facility}", b"hi")]
        assert RedisPublisher.get_prefix() == "demo:"
    assert RedisPublisher().get_prefix() == ""


def test_true_and_self_mean_the_requests_own_user_groups_and_session(wire: Any, john: User) -> None:
    facility = unique("foobar")
    request = john.request
    session_key = request.session.session_key
    own = sorted([f"user:{john.username}:{facility}", f"session:{session_key}:{facility}"]
                 + [f"group:{name}:{facility}" for name in john.group_names])
    mary = f"user:mary:{facility}"
    listener = wire(*own, mary)
    # ws4redis 0.6.0's older spelling (users=True ...) and its current one ([SELF]) are the same.
    for audience, others in (({"users": True, "groups": True, "sessions": True}, []),
                             ({"users": [SELF], "groups": [SELF], "sessions": [SELF]}, []),
                             ({"users": (SELF, "mary"), "groups": [SELF], "sessions": [SELF]}, [mary])):
        publisher = RedisPublisher(facility=facility, request=request, **audience)
        expected = own + others
        assert sorted(publisher.channels) == sorted(expected)
        publisher.publish_message(RedisMessage("mine"), expire=0)
        assert listener.messages(len(expected)) == sorted((channel, b"mine") for channel in expected)


def test_true_for_a_request_without_user_is_no_one(john: User) -> None:
    request = RequestFactory().get("/")
    request.session = SessionStore()
    request.session["seen"] = True
    request.session.save()  # an anonymous visitor's session
    request.user = AnonymousUser()
    publisher = RedisPublisher(facility="f", users=True, groups=True, sessions=True, request=request)
    assert publisher.channels == [f"session:{request.session.session_key}:f"]
    # A request made by RequestFactory with only .user set (ws4redis's own tests do that).
    bare = RequestFactory().get("/")
    bare.user = john
    assert RedisPublisher(facility="f", users=True, request=bare).channels == [f"user:{john.username}:f"]
    bare.user = None
    assert RedisPublisher(facility="f", users=True, groups=[SELF], request=bare).channels == []


def test_no_argument_publisher_is_for_fetch_message(client: Any) -> None:
    facility = unique("foobar")
    publisher = RedisPublisher()
    assert publisher.facility is None and publisher.channels == []
    assert publisher.publish_message(RedisMessage("nowhere")) == 0  # ws4redis: no channel, nothing sent
    assert publisher.pipeline_publish_message(RedisMessage("nowhere")) == 0
    RedisPublisher(facility=facility, broadcast=True).publish_message(RedisMessage("kept"), expire=30)
    assert publisher.fetch_message(None, facility) == b"kept"
    assert publisher.fetch_message(RequestFactory().get("/"), facility, "broadcast") == b"kept"


def test_what_ws4redis_could_not_do_is_refused_clearly(john: User) -> None:
    # ws4redis published on the literal channel "broadcast:{facility}" without a facility.
    with pytest.raises(ValueError, match="needs facility="):
        RedisPublisher(broadcast=True)
    # ws4redis made a channel of the SELF object's repr without a request (or raised NameError).
    for audience in ({"users": [SELF]}, {"groups": True}, {"sessions": True}):
        with pytest.raises(ValueError, match="needs request="):
            RedisPublisher(facility="f", **audience)
    # A bare string raised NameError ('basestring') in ws4redis on Python 3.
    with pytest.raises(TypeError, match="must be a list"):
        RedisPublisher(facility="f", groups="chatters")
    with pytest.raises(TypeError):
        RedisPublisher(facility="f", channel="x")  # as ws4redis: an unknown keyword
    with pytest.raises(ValueError, match="facility"):
        RedisPublisher(facility="a:b", broadcast=True)  # would forge another channel's name


# -- publish_message and pipeline_publish_message ------------------------------------------------


def test_publish_message_persists_as_ws4redis(client: Any, wire: Any) -> None:
    facility = unique("f")
    channel = f"broadcast:{facility}"
    listener = wire(channel)
    publisher = RedisPublisher(facility=facility, broadcast=True)
    publisher.publish_message(RedisMessage("default"))  # expire=None: WS4REDIS_EXPIRE, 3600 by default
    assert listener.messages(1) == [(channel, b"default")]
    assert client.get(channel) == b"default" and 3590 < client.ttl(channel) <= 3600
    publisher.publish_message(RedisMessage("ten"), 10)
    assert client.get(channel) == b"ten" and 0 < client.ttl(channel) <= 10
    client.delete(channel)
    publisher.publish_message(RedisMessage("live only"), expire=0)
    publisher.publish_message(RedisMessage("negative"), expire=-1)  # ws4redis: SETEX only if expire > 0
    assert client.get(channel) is None
    with override_settings(WS4REDIS_EXPIRE=0):
        publisher.publish_message(RedisMessage("off"))
    assert client.get(channel) is None
    assert listener.messages(4) == sorted((channel, message) for message in (b"ten", b"live only", b"negative", b"off"))


def test_publish_message_takes_messages_and_refuses_the_rest(wire: Any) -> None:
    facility = unique("f")
    listener = wire(f"broadcast:{facility}")
    publisher = RedisPublisher(facility=facility, broadcast=True)
    for message in (RedisMessage("é"), "é", "é".encode(), bytearray("é".encode())):
        assert publisher.publish_message(message, expire=0) == 1  # the subscribed connections
    assert [data for _, data in listener.messages(4)] == ["é".encode()] * 4
    with override_settings(WS4REDIS_HEARTBEAT="--heartbeat--"):
        heartbeat = RedisMessage("--heartbeat--")
    assert heartbeat is None
    for wrong in (heartbeat, 42, ["message"]):
        # ws4redis raised ValueError for anything but a RedisMessage; this is both.
        with pytest.raises(ValueError):
            publisher.publish_message(wrong)
        with pytest.raises(TypeError):
            publisher.pipeline_publish_message(wrong)
    assert issubclass(MessageTypeError, TypeError) and issubclass(MessageTypeError, ValueError)
    listener.nothing()


def commands(client: Any) -> dict[str, int]:
    return {name.removeprefix("cmdstat_"): stats["calls"] for name, stats in client.info("commandstats").items()}


def delta(before: dict[str, int], after: dict[str, int], *names: str) -> list[int]:
    return [after.get(name, 0) - before.get(name, 0) for name in names]


def test_pipeline_publish_message_as_ws4redis_master(client: Any, wire: Any) -> None:
    facility = unique("f")
    users = ["john", "mary", "joe", "sue", "sally"]
    channels = [f"user:{name}:{facility}" for name in users]
    listener = wire(*channels)
    publisher = RedisPublisher(facility=facility, users=users)
    publisher.publish_message("load the script", expire=0)
    listener.messages(len(channels))
    # With message ids (the default) every publish is one atomic script, whatever ``transaction``.
    for transaction in (True, False):
        before = commands(client)
        assert publisher.pipeline_publish_message(RedisMessage("piped"), 10, transaction=transaction) == 5
        after = commands(client)
        assert delta(before, after, "evalsha", "exec") == [1, 0]
        assert listener.messages(5) == sorted((channel, b"piped") for channel in channels)
        assert all(client.get(channel) == b"piped" and 0 < client.ttl(channel) <= 10 for channel in channels)
    # Without message ids: plain PUBLISH and SET in one pipeline, in MULTI/EXEC with transaction.
    with override_settings(WS4REDIS_HISTORY_LENGTH=0):
        for transaction, execs in ((True, 1), (False, 0)):
            before = commands(client)
            publisher.pipeline_publish_message(RedisMessage(f"plain {transaction}"), expire=0, transaction=transaction)
            after = commands(client)
            assert delta(before, after, "exec", "publish", "evalsha") == [execs, 5, 0]
            for _ in channels:
                assert listener.raw() == f"plain {transaction}".encode()  # no envelope: plain payloads
            listener.nothing()
        publisher.pipeline_publish_message(RedisMessage("default expire"))
        assert all(3590 < client.ttl(channel) <= 3600 for channel in channels)
        for _ in channels:
            assert listener.raw() == b"default expire"


def test_extras_still_work_with_the_ws4redis_forms(client: Any, wire: Any) -> None:
    facility = unique("f")
    channel = f"broadcast:{facility}"
    listener = wire(channel)
    publisher = RedisPublisher(facility=facility, broadcast=True)
    for publish in (publisher.publish_message, publisher.pipeline_publish_message):
        message_id = publish(RedisMessage("counted"), expire=0, count_deliveries=True)
        assert isinstance(message_id, str) and delivery_count(message_id) == 0  # no hub here: nobody counted
        assert listener.messages(1) == [(channel, b"counted")]
    entries = replay(get_redis(), "", [channel], "0-0", 600).entries
    assert [(entry[1], entry[2]) for entry in entries] == [(channel, b"counted")] * 2  # the history keeps them


# -- fetch_message ---------------------------------------------------------------------------------


def test_fetch_message_looks_in_ws4redis_order(client: Any, john: User) -> None:
    facility = unique("f")
    request = john.request
    group = john.group_names[1]
    keys = {
        "session": f"session:{request.session.session_key}:{facility}",
        "user": f"user:{john.username}:{facility}",
        "group": f"group:{group}:{facility}",
        "broadcast": f"broadcast:{facility}",
    }
    publisher = RedisPublisher()
    assert publisher.fetch_message(request, facility) is None
    for audience in ("broadcast", "group", "user", "session"):  # each new one comes first for "any"
        client.set(keys[audience], f"for {audience}")
        assert publisher.fetch_message(request, facility) == f"for {audience}".encode()
    for audience in keys:
        assert publisher.fetch_message(request, facility, audience) == f"for {audience}".encode()
    client.set(keys["session"], b"")  # ws4redis skips an empty value
    assert publisher.fetch_message(request, facility) == b"for user"
    assert publisher.fetch_message(None, facility) == b"for broadcast"
    assert publisher.fetch_message(None, facility, "user") is None
    # A RequestFactory request with .user and no session, as in ws4redis's tests.
    bare = RequestFactory().get("/chat/")
    bare.user = john
    assert publisher.fetch_message(bare, facility, "user") == b"for user"
    assert publisher.fetch_message(bare, facility, "session") is None
    bare.user = None
    assert publisher.fetch_message(bare, facility, "user") is None
    with pytest.raises(ValueError, match="audience"):
        publisher.fetch_message(request, facility, "users")


def test_fetch_message_after_publish_with_persistence(john: User) -> None:
    facility = unique("f")
    RedisPublisher(facility=facility, users=[SELF], request=john.request).publish_message(RedisMessage("x"), 30)
    assert RedisPublisher(facility=facility).fetch_message(john.request, facility, "user") == b"x"


# -- RedisMessage --------------------------------------------------------------------------------------


def test_redis_message_forms() -> None:
    text = "".join(chr(c) for c in range(33, 128)) + "é€"
    message = RedisMessage(text)
    assert isinstance(message, bytes) and message == text.encode("utf-8")
    assert RedisMessage(b"\x00\x12\xaa") == b"\x00\x12\xaa"
    assert RedisMessage(bytearray(b"ab")) == b"ab" and type(RedisMessage(bytearray(b"ab"))) is RedisMessage
    assert RedisMessage(message) == message
    assert RedisMessage("") == b"" and not RedisMessage("")
    # Replies of redis-py's PubSub.parse_response(): a message's data; anything else None.
    assert RedisMessage([b"message", b"broadcast:f", b"data"]) == b"data"
    assert RedisMessage([b"subscribe", b"broadcast:f", 1]) is None
    assert RedisMessage([b"pmessage", b"*", b"broadcast:f", b"data"]) is None
    assert RedisMessage([b"message", b"broadcast:f"]) is None
    for other in (None, 42, 1.5, (b"message", b"c", b"d"), {"data": b"x"}, memoryview(b"x")):
        assert RedisMessage(other) is None


def test_redis_message_drops_the_heartbeat() -> None:
    assert RedisMessage("--heartbeat--") == b"--heartbeat--"  # WS4REDIS_HEARTBEAT is None by default
    with override_settings(WS4REDIS_HEARTBEAT="--heartbeat--"):
        assert RedisMessage("--heartbeat--") is None
        assert RedisMessage(b"--heartbeat--") is None
        assert RedisMessage(bytearray(b"--heartbeat--")) is None
        assert RedisMessage("--heartbeat-- ") == b"--heartbeat-- "
        # ws4redis takes a pub/sub reply's data as it is, heartbeat or not.
        assert RedisMessage([b"message", b"c", b"--heartbeat--"]) == b"--heartbeat--"


# -- the development set-up ----------------------------------------------------------------------------


def test_django_runserver_application_is_the_plain_django_app() -> None:
    from ws4redis_server.django_runserver import application

    assert isinstance(application, WSGIHandler)
    environ = RequestFactory().get("/admin/login/", HTTP_HOST="127.0.0.1").environ
    statuses: list[str] = []
    body = b"".join(application(environ, lambda status, headers, exc_info=None: statuses.append(status)))
    assert statuses == ["200 OK"] and b"csrfmiddlewaretoken" in body
