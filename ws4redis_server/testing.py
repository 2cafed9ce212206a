"""Test helpers for projects using ws4redis_server: real WebSocket clients with a session.

    from ws4redis_server.testing import connect, login_cookie
    with connect(stack_ws_url + "/ws/news?subscribe-user", session=login_cookie(user)) as ws:
        assert ws.recv(timeout=5) == "hello"
"""
from __future__ import annotations

from typing import Any

from django.conf import settings
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect


def connect(url: str, session: str | None = None, origin: str | None = None, timeout: float = 10,
            headers: dict[str, str] | None = None, **kwargs: Any) -> ClientConnection:
    """Opens a WebSocket to ``url`` carrying the Django session cookie ``session``; raises
    websockets.exceptions.InvalidStatus when the server refuses the handshake."""
    extra = dict(headers or {})
    if session is not None:
        extra["Cookie"] = f"{settings.SESSION_COOKIE_NAME}={session}"
    return ws_connect(url, additional_headers=extra, origin=origin, open_timeout=timeout,  # type: ignore[arg-type]
                      close_timeout=timeout, max_size=None, legacy=True, **kwargs)


def login_cookie(user: Any) -> str:
    """Logs ``user`` in as a browser would (signals included) and returns the session cookie's
    value. The test process must share the site's database and session store."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value
