"""WebSocket clients for tests: open a real socket as a logged-in user, wait for what it receives.

The server confirms a socket's Redis subscriptions before it answers 101, so once
:func:`connect` has returned, a message published afterwards is delivered: "connect, then
publish, then :func:`expect_message`" needs no sleep and has no race.
"""
from __future__ import annotations

import base64
import os
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

Message = str | bytes


def connect(url: str, user: Any = None, *, session: str | None = None, origin: str | None = None,
            timeout: float = 10, headers: dict[str, str] | None = None, **kwargs: Any) -> ClientConnection:
    """Opens a WebSocket to ``url`` as ``user`` (logged in for the occasion with
    :func:`login_cookie`) or with the Django session cookie ``session``, anonymous without either.
    Returns once the server has accepted it, i.e. once its subscriptions are confirmed. Raises
    websockets.exceptions.InvalidStatus when the server refuses the handshake. Other keyword
    arguments go to ``websockets.sync.client.connect``."""
    if isinstance(user, str):
        raise TypeError("connect(url, user): pass a user object; a session key goes in session=...")
    if user is not None:
        if session is not None:
            raise TypeError("connect() takes a user or a session, not both")
        session = login_cookie(user)
    extra = dict(headers or {})
    if session is not None:
        extra["Cookie"] = f"{settings.SESSION_COOKIE_NAME}={session}"
    return ws_connect(url, additional_headers=extra, origin=origin, open_timeout=timeout,  # type: ignore[call-overload]
                      close_timeout=timeout, max_size=None, legacy=True, **kwargs)


def login_cookie(user: Any) -> str:
    """Logs ``user`` in as a browser would (``user_logged_in`` included, so the username and groups
    are cached in the session) and returns the session cookie's value. The server must share the
    test process's database and session store."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def receive(ws: ClientConnection, timeout: float = 5) -> Message:
    """Returns the next message of ``ws``: str for a text frame, bytes for a binary one. Raises
    AssertionError if none arrives within ``timeout`` seconds or the socket closes first."""
    try:
        return ws.recv(timeout=timeout)
    except TimeoutError:
        raise AssertionError(f"no message within {timeout:g}s") from None
    except ConnectionClosed as exc:
        raise AssertionError(f"the socket closed before a message arrived: {_closed(exc)}") from exc


def expect_message(ws: ClientConnection, expected: Message | Callable[[Message], Any],
                   timeout: float = 5) -> Message:
    """Reads ``ws`` until a message equals ``expected`` (or, when it is a callable, until
    ``expected(message)`` is true) and returns that message; the messages before it (heartbeats,
    other traffic) are skipped. Raises AssertionError listing what arrived if no message matches
    within ``timeout`` seconds or the socket closes first."""
    deadline = time.monotonic() + timeout
    arrived: list[Message] = []
    while True:
        remaining = deadline - time.monotonic()
        try:
            message = ws.recv(timeout=max(remaining, 0))
        except TimeoutError:
            ending = f"no match within {timeout:g}s"
        except ConnectionClosed as exc:
            ending = f"the socket closed ({_closed(exc)})"
        else:
            if expected(message) if callable(expected) else message == expected:
                return message
            arrived.append(message)
            continue
        raise AssertionError(f"expected {_describe(expected)}: {ending}; {_listing(arrived)}")


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


def _closed(exc: ConnectionClosed) -> str:
    received = exc.rcvd
    return "no close frame" if received is None else f"code {received.code}, reason {received.reason!r}"


def _describe(expected: Any) -> str:
    if callable(expected):
        return f"a message that {getattr(expected, '__name__', repr(expected))} accepts"
    return repr(expected)


def _listing(arrived: list[Message], most: int = 20) -> str:
    if not arrived:
        return "nothing arrived"
    shown = ", ".join(_short(message) for message in arrived[-most:])
    skipped = f" (the last {most})" if len(arrived) > most else ""
    return f"{len(arrived)} other message(s) arrived{skipped}: {shown}"


def _short(message: Message, width: int = 80) -> str:
    text = repr(message)
    return text if len(text) <= width else text[:width - 3] + "..."
