"""Transports: the small interface between a socket loop and a WebSocket server.

A transport completes the handshake (``accept``), reports readability through a callback
(``watch``), returns whole inbound messages without blocking (``recv_nowait``: bytes, or None
when none is ready), sends (``send``), closes with a code (``close``), or cuts the connection
(``abort``). ``ConnectionClosed`` is raised once the peer has gone. Implementations: uWSGI
(production) and gevent.pywsgi + wsproto (``manage.py runserver``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class ConnectionClosed(Exception):
    """The peer closed the socket, or the connection broke."""

    def __init__(self, code: int = 1006, reason: str = "") -> None:
        super().__init__(f"connection closed ({code}{': ' + reason if reason else ''})")
        self.code = code
        self.reason = reason


class Transport(Protocol):
    def accept(self) -> None: ...

    def watch(self, on_readable: Callable[[], None]) -> None: ...

    def recv_nowait(self) -> bytes | None: ...

    def send(self, data: bytes, is_text: bool) -> None: ...

    def keepalive(self) -> None: ...

    def close(self, code: int, reason: str) -> None: ...

    def abort(self) -> None:
        """Cuts the connection at once, failing a send blocked on it."""
