"""Transports: the small interface between a socket loop and a WebSocket server.

A transport completes the handshake (``accept``), reports readability through a callback
(``watch``), returns whole inbound messages without blocking (``recv_nowait``: bytes, a
:class:`BinaryMessage` for a binary one, or None when none is ready), sends (``send``), closes
with a code (``close``), or cuts the connection (``abort``). ``ConnectionClosed`` is raised once
the peer has gone. Implementations: uWSGI (production) and gevent.pywsgi + wsproto
(``manage.py runserver``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class BinaryMessage(bytes):
    """The bytes of a message that came in binary frames (plain bytes: text frames). A bytes
    subclass, so everything that takes a message takes it; the relay publishes it as binary."""

    __slots__ = ()


class ConnectionClosed(Exception):
    """The peer closed the socket, or the connection broke."""

    def __init__(self, code: int = 1006, reason: str = "") -> None:
        super().__init__(f"connection closed ({code}{': ' + reason if reason else ''})")
        self.code = code
        self.reason = reason


def first_subprotocol(environ: dict[str, Any]) -> str | None:
    """The first subprotocol the client offers (``Sec-WebSocket-Protocol``), which the 101 answers.

    uWSGI's handshake echoes the offer as it came, which is the same answer for a client offering
    one; for a list, only one value is a valid answer (RFC 6455, 4.2.2), and a client checks it.
    """
    offered = environ.get("HTTP_SEC_WEBSOCKET_PROTOCOL", "")
    for name in offered.split(","):
        name = name.strip()
        if name and name.isascii() and name.isprintable():
            return name
    return None


class Transport(Protocol):
    def accept(self) -> None: ...

    def watch(self, on_readable: Callable[[], None]) -> None: ...

    def recv_nowait(self) -> bytes | None: ...

    def send(self, data: bytes, is_text: bool) -> None: ...

    def keepalive(self) -> None: ...

    def close(self, code: int, reason: str) -> None: ...

    def abort(self) -> None:
        """Cuts the connection at once, failing a send blocked on it."""
