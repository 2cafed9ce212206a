"""``manage.py runserver`` serves pages and the same WebSocket handlers and facilities on one port."""
import urllib.request

import pytest
from websockets.exceptions import InvalidStatus

from ws4redis_server import RedisPublisher
from ws4redis_server.testing import connect

TRANSCRIPT = ["Hello!", "1. Spam?", "2. Eggs!", "3. Python.", "Goodbye!"]


def echo_transcript(url: str) -> list[str]:
    with connect(url) as ws:
        got = [ws.recv(timeout=10)]
        for word in ("Spam?", "Eggs!", "Python."):
            ws.send(word)
            got.append(ws.recv(timeout=10))
        got.append(ws.recv(timeout=10))
    return got


def test_echo_transcript_through_nginx_and_uwsgi(stack) -> None:
    assert echo_transcript(f"{stack.ws_url}/ws/echo/") == TRANSCRIPT


def test_echo_transcript_under_runserver(devserver) -> None:
    assert echo_transcript(f"{devserver.ws_url}/ws/echo/") == TRANSCRIPT


def test_runserver_serves_pages_and_static_files(devserver) -> None:
    with urllib.request.urlopen(f"{devserver.http_url}/") as page:
        assert b"Real-time Django" in page.read()
    with urllib.request.urlopen(f"{devserver.http_url}/static/ws4redis/ws4redis.js") as script:
        assert b"export class WS4Redis" in script.read()


def test_runserver_facilities_publish_and_persist(devserver, make_user, login_cookie) -> None:
    user = make_user()
    RedisPublisher(facility="devnews", broadcast=True).publish_message("persisted", expire=30)
    with connect(f"{devserver.ws_url}/ws/devnews?subscribe-broadcast&subscribe-user&publish-broadcast&echo",
                 session=login_cookie(user)) as ws:
        assert ws.recv(timeout=10) == "persisted"
        RedisPublisher(facility="devnews", users=[user]).publish_message("private", expire=0)
        assert ws.recv(timeout=10) == "private"
        ws.send("from socket")
        assert ws.recv(timeout=10) == "from socket"


def test_runserver_refuses_bad_handshakes_with_reasons(devserver) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{devserver.ws_url}/ws/a:b?subscribe-broadcast")
    assert refused.value.response.status_code == 400
    request = urllib.request.Request(f"{devserver.http_url}/ws/foobar")
    with pytest.raises(urllib.error.HTTPError) as plain:
        urllib.request.urlopen(request)
    assert plain.value.code == 426
    assert b"expects a WebSocket upgrade" in plain.value.read()


@pytest.mark.parametrize("server", ["stack", "devserver"])
def test_the_first_offered_subprotocol_is_answered(server, request) -> None:
    from websockets.sync.client import connect as plain_connect

    url = f"{request.getfixturevalue(server).ws_url}/ws/echo/"
    with plain_connect(url, subprotocols=["chat.v1"], open_timeout=10) as ws:
        assert ws.subprotocol == "chat.v1"
        assert ws.recv(timeout=10) == "Hello!"
    # Of several, the 101 names one (RFC 6455 4.2.2); the client refuses any other answer.
    with plain_connect(url, subprotocols=["chat.v2", "chat.v1"], open_timeout=10) as ws:
        assert ws.subprotocol == "chat.v2"
        assert ws.recv(timeout=10) == "Hello!"
    with plain_connect(url, open_timeout=10) as ws:
        assert ws.subprotocol is None
