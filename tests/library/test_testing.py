"""ws4redis_server.testing used as a project's tests would use it: a live server in a child
process on this project's settings and database, sockets opened as logged-in users, delivery
awaited with expect_message; unittest style and pytest style."""
from __future__ import annotations

import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from ws4redis_server import JS_CLIENT, RedisPublisher
from ws4redis_server.testing import (
    LiveServer,
    RedisServer,
    WebSocketLiveServerTestCase,
    expect_message,
    receive,
)

pytest_plugins = ["ws4redis_server.testing.pytest"]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


def assert_user_delivery(connect: Callable[..., Any], user: Any) -> None:
    """Connect, then publish, then expect: a message for ``user`` reaches ``user``'s socket and
    not an anonymous one, which gets the broadcast published after it first."""
    facility = unique("news")
    mine = connect(f"/ws/{facility}?subscribe-user", user=user)
    anonymous = connect(f"/ws/{facility}?subscribe-user&subscribe-broadcast")
    RedisPublisher(facility=facility, users=[user.username]).publish_message("hi")
    RedisPublisher(facility=facility, broadcast=True).publish_message("marker")
    assert expect_message(mine, "hi") == "hi"
    # Published after "hi" through the same Redis: had "hi" reached this socket, it would be first.
    assert receive(anonymous) == "marker"


@pytest.mark.usefixtures("redis_server")
class LiveServerTestCaseTests(WebSocketLiveServerTestCase):
    def test_a_socket_opened_as_a_user_is_that_user(self) -> None:
        user = User.objects.create_user(unique("john"))
        with self.connect("/ws/whoami/", user=user) as ws:
            assert receive(ws) == user.username

    def test_a_user_message_reaches_the_users_socket_and_not_an_anonymous_one(self) -> None:
        assert_user_delivery(self.connect, User.objects.create_user(unique("mary")))

    def test_echo(self) -> None:
        ws = self.connect("/ws/echo/")
        ws.send("ping")
        ws.send(b"\x00\xff")
        assert receive(ws) == "ping"
        assert receive(ws) == b"\x00\xff"

    def test_pages_and_static_files_are_served(self) -> None:
        status, body = get(f"{self.live_server_url}/admin/login/")
        assert status == 200 and b"csrfmiddlewaretoken" in body
        status, body = get(f"{self.live_server_url}/static/{JS_CLIENT}")
        assert status == 200 and b"export class WS4Redis" in body
        assert self.ws_url == self.live_server_url.replace("http://", "ws://")


@pytest.fixture
def user() -> Iterator[Any]:
    user = User.objects.create_user(unique("ann"))
    yield user
    user.delete()


@pytest.mark.usefixtures("redis_server")
def test_the_pytest_fixture_serves_the_projects_handlers_and_facilities(ws4redis_live_server: LiveServer,
                                                                         user: Any) -> None:
    assert receive(ws4redis_live_server.connect("/ws/whoami/", user=user)) == user.username
    assert_user_delivery(ws4redis_live_server.connect, user)
    assert get(f"{ws4redis_live_server.http_url}/admin/login/")[0] == 200


@pytest.mark.usefixtures("redis_server")
def test_expect_message_skips_other_messages_and_names_what_arrived(ws4redis_live_server: LiveServer) -> None:
    ws = ws4redis_live_server.connect("/ws/echo/")
    for message in ("one", "two", "three"):
        ws.send(message)
    assert expect_message(ws, lambda message: message.startswith("th")) == "three"
    ws.send("four")
    with pytest.raises(AssertionError, match=r"^expected 'five': no match within 0.2s; 1 other message\(s\) "
                                              r"arrived: 'four'$"):
        expect_message(ws, "five", timeout=0.2)


@pytest.mark.usefixtures("redis_server")
def test_expect_message_reports_a_closed_socket(ws4redis_live_server: LiveServer) -> None:
    ws = ws4redis_live_server.connect("/ws/whoami/")  # answers "" (anonymous) and closes with 1000
    with pytest.raises(AssertionError, match=r"^expected 'someone': the socket closed \(code 1000, reason ''\); "
                                              r"1 other message\(s\) arrived: ''$"):
        expect_message(ws, "someone")


@pytest.mark.usefixtures("redis_server")
def test_receive_names_its_timeout(ws4redis_live_server: LiveServer) -> None:
    ws = ws4redis_live_server.connect(f"/ws/{unique('quiet')}?subscribe-broadcast")
    with pytest.raises(AssertionError, match=r"^no message within 0.2s$"):
        receive(ws, timeout=0.2)


def test_an_in_memory_test_database_is_refused_with_the_setting_to_change() -> None:
    setting = r'DATABASES\["default"\]\["TEST"\]\["NAME"\]'
    with mock.patch.dict(connections["default"].settings_dict, {"NAME": ":memory:"}):
        with pytest.raises(ImproperlyConfigured, match=setting):
            LiveServer().start()
        with pytest.raises(ImproperlyConfigured, match=setting):
            WebSocketLiveServerTestCase.setUpClass()


def test_a_session_store_in_local_memory_is_refused() -> None:
    from django.test import override_settings

    with override_settings(SESSION_ENGINE="django.contrib.sessions.backends.cache"):
        with pytest.raises(ImproperlyConfigured, match="SESSION_ENGINE"):
            LiveServer().start()


def test_redis_server_starts_answers_and_stops() -> None:
    with RedisServer() as redis_server:
        assert redis_server.client().ping()
        workdir = redis_server.workdir
    assert not redis_server.running
    assert workdir is not None and not workdir.exists()


def test_redis_server_says_when_the_binary_is_missing() -> None:
    with pytest.raises(RuntimeError, match="redis-server not found.*apt-get install redis-server"):
        RedisServer(binary="/nonexistent/redis-server").start()
