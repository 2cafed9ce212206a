"""The pub/sub facilities end to end: real Redis, uWSGI from deploy/uwsgi.ini, nginx from
deploy/nginx.conf, real WebSocket clients."""
import uuid

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ws4redis_server import SELF, RedisMessage, RedisPublisher
from ws4redis_server.testing import connect


def facility() -> str:
    return "t" + uuid.uuid4().hex[:12]


def nothing_within(ws, seconds: float = 0.5) -> bool:  # noqa: ANN001
    try:
        message = ws.recv(timeout=seconds)
    except TimeoutError:
        return True
    pytest.fail(f"unexpected message {message!r}")


def test_raw_publish_reaches_every_subscriber_unchanged(stack, redis_server) -> None:
    name = facility()
    url = f"{stack.ws_url}/ws/{name}?subscribe-broadcast"
    with connect(url) as one, connect(url) as two:
        redis_server.client().publish(f"broadcast:{name}", "héllo <b>world</b>")
        assert one.recv(timeout=10) == "héllo <b>world</b>"
        assert two.recv(timeout=10) == "héllo <b>world</b>"


def test_redis_publisher_broadcast_str_bytes_and_message(stack) -> None:
    name = facility()
    with connect(f"{stack.ws_url}/ws/{name}/?subscribe-broadcast") as ws:
        publisher = RedisPublisher(facility=name, broadcast=True)
        publisher.publish_message("text", expire=0)
        publisher.publish_message(b"bytes", expire=0)
        publisher.publish_message(RedisMessage("message"), expire=0)
        assert [ws.recv(timeout=10) for _ in range(3)] == ["text", "bytes", "message"]


def test_user_group_and_session_audiences_stay_private(stack, make_user, login_cookie) -> None:
    name = facility()
    alice, bob = make_user(groups=("red",)), make_user(groups=("blue",))
    flags = "subscribe-user&subscribe-group&subscribe-session"
    alice_session, bob_session = login_cookie(alice), login_cookie(bob)
    with connect(f"{stack.ws_url}/ws/{name}?{flags}", session=alice_session) as a, \
            connect(f"{stack.ws_url}/ws/{name}?{flags}", session=bob_session) as b, \
            connect(f"{stack.ws_url}/ws/{name}?{flags}") as anonymous:
        RedisPublisher(facility=name, users=[alice]).publish_message("for alice", expire=0)
        RedisPublisher(facility=name, groups=["blue"]).publish_message("for blue", expire=0)
        RedisPublisher(facility=name, sessions=[alice_session]).publish_message("for alice's session", expire=0)
        RedisPublisher(facility=name, users=[bob.username]).publish_message("for bob", expire=0)
        assert [a.recv(timeout=10) for _ in range(2)] == ["for alice", "for alice's session"]
        assert [b.recv(timeout=10) for _ in range(2)] == ["for blue", "for bob"]
        nothing_within(a)
        nothing_within(anonymous)


def test_publisher_self_resolves_the_requests_identity(make_user, login_cookie) -> None:
    from django.contrib.sessions.backends.cached_db import SessionStore
    from django.test import RequestFactory

    user = make_user(groups=("g1",))
    request = RequestFactory().get("/")
    request.session = SessionStore(login_cookie(user))
    publisher = RedisPublisher(facility="f", users=[SELF], groups=[SELF], sessions=[SELF], request=request)
    assert publisher.channels == [f"user:{user.username}:f", "group:g1:f", f"session:{request.session.session_key}:f"]
    with pytest.raises(ValueError, match="needs request="):
        RedisPublisher(facility="f", users=[SELF])
    with pytest.raises(TypeError, match="must be a list"):
        RedisPublisher(facility="f", users="john")


def test_publish_from_socket_and_the_echo_flag(stack, make_user, login_cookie) -> None:
    name = facility()
    base = f"{stack.ws_url}/ws/{name}?subscribe-broadcast&publish-broadcast"
    session = login_cookie(make_user())  # anonymous sockets may not publish (WS4REDIS_ANONYMOUS_PUBLISH)
    with connect(base, session=session) as quiet, connect(base + "&echo", session=session) as loud, \
            connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast") as reader:
        quiet.send("from quiet")
        assert reader.recv(timeout=10) == "from quiet"
        assert loud.recv(timeout=10) == "from quiet"
        loud.send("from loud")
        assert loud.recv(timeout=10) == "from loud"  # echo: its own message comes back
        assert quiet.recv(timeout=10) == "from loud"
        assert reader.recv(timeout=10) == "from loud"
        nothing_within(quiet)  # without echo, "from quiet" did not come back to its sender


def test_socket_without_publish_flag_cannot_publish(stack) -> None:
    name = facility()
    with connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast") as listener, \
            connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast") as other:
        listener.send("should go nowhere")
        nothing_within(other)


def test_persisted_message_is_replayed_on_connect(stack, redis_server) -> None:
    name = facility()
    RedisPublisher(facility=name, broadcast=True).publish_message("kept", expire=30)
    assert 0 < redis_server.client().ttl(f"broadcast:{name}") <= 30
    with connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast") as ws:
        assert ws.recv(timeout=10) == "kept"
    assert RedisPublisher(facility=name).fetch_message(None, name) == b"kept"
    RedisPublisher(facility=name, broadcast=True).publish_message("not kept", expire=0)
    with connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast") as ws:
        assert ws.recv(timeout=10) == "kept"  # still the last persisted one
        nothing_within(ws)


def test_heartbeat_is_answered_and_never_published(stack, make_user, login_cookie) -> None:
    name = facility()
    with connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast&publish-broadcast",
                 session=login_cookie(make_user())) as ws, \
            connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast") as other:
        ws.send("--heartbeat--")
        assert ws.recv(timeout=10) == "--heartbeat--"
        nothing_within(other)


def test_binary_payload_goes_out_as_binary(stack, redis_server) -> None:
    name = facility()
    with connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast") as ws:
        redis_server.client().publish(f"broadcast:{name}", b"\xff\x00\xfe")
        assert ws.recv(timeout=10) == b"\xff\x00\xfe"


@pytest.mark.parametrize("path, status, reason", [
    ("/ws/a:b?subscribe-broadcast", 400, "invalid facility"),
    ("/ws/a%20b?subscribe-broadcast", 400, "invalid facility"),
])
def test_bad_facility_is_refused_before_the_upgrade(stack, path: str, status: int, reason: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(stack.ws_url + path)
    assert refused.value.response.status_code == status
    assert reason in refused.value.response.body.decode()


def test_closing_the_client_releases_the_subscription(stack, redis_server) -> None:
    name = facility()
    channel = f"broadcast:{name}"
    with connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast"):
        assert redis_server.client().pubsub_numsub(channel)[0][1] == 1
    from deploy.stack import wait_for

    wait_for(lambda: redis_server.client().pubsub_numsub(channel)[0][1] == 0, 5, "UNSUBSCRIBE")


def test_server_closes_with_1000_when_handler_returns(stack) -> None:
    with connect(f"{stack.ws_url}/ws/echo/") as ws:
        for _ in range(1):
            ws.recv(timeout=10)
        for word in ("a", "b", "c"):
            ws.send(word)
            ws.recv(timeout=10)
        assert ws.recv(timeout=10) == "Goodbye!"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd.code == 1000


def test_delivery_receipts_count_sockets_across_workers(stack) -> None:
    from deploy.stack import wait_for
    from ws4redis_server.receipts import delivery_count

    name = facility()
    sockets = [connect(f"{stack.ws_url}/ws/{name}?subscribe-broadcast") for _ in range(7)]
    try:
        message_id = RedisPublisher(facility=name, broadcast=True).publish_message(
            "counted", expire=0, count_deliveries=True)
        assert [ws.recv(timeout=10) for ws in sockets] == ["counted"] * 7  # the envelope is stripped
        wait_for(lambda: delivery_count(message_id) == 7, 10, "7 receipts")
    finally:
        for ws in sockets:
            ws.close()
    assert delivery_count("no-such-id") == 0
