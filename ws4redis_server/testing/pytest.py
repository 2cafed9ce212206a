"""pytest fixtures for a live server: in the root conftest.py,
``pytest_plugins = ["ws4redis_server.testing.pytest"]``, then::

    def test_user_news(ws4redis_live_server):
        user = User.objects.create_user("john")
        ws = ws4redis_live_server.connect("/ws/news?subscribe-user", user=user)
        RedisPublisher(facility="news", users=["john"]).publish_message("hi")
        assert expect_message(ws, "hi") == "hi"

- ``ws4redis_live_server``: the session's :class:`~ws4redis_server.testing.LiveServer`
  (``.http_url``, ``.ws_url``, ``.connect(path, user=None, ...)``); the sockets a test opens with
  its ``connect`` are closed after the test.
- ``ws4redis_live_server_settings``: settings (JSON values) applied in the server's process;
  ``{}`` unless a conftest.py overrides this session-scoped fixture.

With pytest-django, the server starts after the test databases are made and a test using it is
marked ``django_db(transaction=True)``: what it saves is committed, so the server sees it, and
flushed after it.
Without it, Django must be set up by a conftest.py, and the server uses the databases as the
settings name them. Either way, see :mod:`ws4redis_server.testing.live` for what the test
process must share with the server (no in-memory SQLite, a shared session store).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .live import LiveServer


def _with_pytest_django(config: pytest.Config) -> bool:
    return config.pluginmanager.hasplugin("django")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # pytest-django decides from a test's markers and static fixture names whether its data is
    # committed: a fixture requested on the fly would be too late.
    if not _with_pytest_django(config):
        return
    for item in items:
        if "ws4redis_live_server" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("django_db"):
            item.add_marker(pytest.mark.django_db(transaction=True))


@pytest.fixture(scope="session")
def ws4redis_live_server_settings() -> dict[str, Any]:
    """Settings applied over the settings module in the live server's process."""
    return {}


@pytest.fixture(scope="session")
def ws4redis_live_server_process(request: pytest.FixtureRequest,
                                 ws4redis_live_server_settings: dict[str, Any]) -> Iterator[LiveServer]:
    """The live server, started once for the session (prefer ``ws4redis_live_server``)."""
    if _with_pytest_django(request.config):
        request.getfixturevalue("django_db_setup")
    with LiveServer(ws4redis_live_server_settings) as server:
        yield server


@pytest.fixture
def ws4redis_live_server(ws4redis_live_server_process: LiveServer) -> Iterator[LiveServer]:
    """The session's live server; the sockets this test opens with its ``connect`` are closed
    after it. With pytest-django, a test using it is marked ``django_db(transaction=True)``
    unless it has a ``django_db`` mark already (then give that one ``transaction=True``)."""
    yield ws4redis_live_server_process
    ws4redis_live_server_process.close_clients()
