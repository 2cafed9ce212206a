"""Test helpers for projects using ws4redis_server: real WebSocket clients with a session.

    from ws4redis_server.testing import connect, login_cookie
    with connect(stack_ws_url + "/ws/news?subscribe-user", session=login_cookie(user)) as ws:
        assert ws.recv(timeout=5) == "hello"
"""
from __future__ import annotations

import base64
import os
import socket
from typing import Any
from urllib.parse import urlsplit

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
    return ws_connect(url, additional_headers=extra, origin=origin, open_timeout=timeout,  # type: ignore[call-overload]
                      close_timeout=timeout, max_size=None, legacy=True, **kwargs)


def raw_socket(url: str, receive_buffer: int | None = None, timeout: float = 10) -> socket.socket:
    """Does the opening handshake of the ws:// ``url`` on a plain TCP socket and returns it, with
    nothing read past the response's headers: for tests that send bytes no client library would
    (bad frames) or that stop reading. ``receive_buffer`` sets SO_RCVBUF before connecting."""
    parts = urlsplit(url)
    sock = socket.socket()
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(timeout)
    sock.connect((parts.hostname, parts.port or 80))
    key = base64.b64encode(os.urandom(16)).decode()
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(1)  # byte by byte: the first frame stays in the socket
        if not chunk:
            raise ConnectionError(f"connection closed during the handshake: {response[:200]!r}")
        response += chunk
    status = response.split(b"\r\n", 1)[0]
    if not status.startswith(b"HTTP/1.1 101"):
        sock.close()
        raise ConnectionError(f"handshake refused: {status!r}")
    return sock


def login_cookie(user: Any) -> str:
    """Logs ``user`` in as a browser would (signals included) and returns the session cookie's
    value. The test process must share the site's database and session store."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value
