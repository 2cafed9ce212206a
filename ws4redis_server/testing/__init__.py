"""Test helpers for projects using ws4redis_server: test your own handlers and facilities
against a real server, as a browser would reach them.

unittest style (Django's test runner, or pytest)::

    from ws4redis_server import RedisPublisher
    from ws4redis_server.testing import WebSocketLiveServerTestCase, expect_message

    class NewsTests(WebSocketLiveServerTestCase):
        def test_user_news(self):
            user = User.objects.create_user("john")
            with self.connect("/ws/news?subscribe-user", user=user) as ws:
                RedisPublisher(facility="news", users=["john"]).publish_message("hi")
                assert expect_message(ws, "hi") == "hi"

pytest style: ``pytest_plugins = ["ws4redis_server.testing.pytest"]`` in the root conftest.py,
then the ``ws4redis_live_server`` fixture (:mod:`ws4redis_server.testing.pytest`).

The live server runs in a child process (gevent's monkey patching stays out of the test process)
on the test process's settings module and test databases, so the database must be a file or a
server (an in-memory SQLite database is refused) and the session store must be shared (database,
files, signed cookies or a shared cache). Redis is the one the settings name.

Once :func:`connect` has returned, the socket's subscriptions are confirmed: publish, then
:func:`expect_message`, with no sleep and no race. Importing this package needs neither pytest
nor gevent, nor configured settings.
"""
from .client import connect, expect_message, login_cookie, raw_socket, receive
from .live import LiveServer, WebSocketLiveServerTestCase
from .redis_server import RedisServer

__all__ = [
    "connect",
    "login_cookie",
    "receive",
    "expect_message",
    "raw_socket",
    "LiveServer",
    "WebSocketLiveServerTestCase",
    "RedisServer",
]
