"""Transports: how a socket loop reaches the bytes of one WebSocket connection.

A transport completes the opening handshake (``accept``, answering the negotiated extensions
if any), lets the socket outlive the request that opened it (``detach``; ``detaches`` says
whether the request may then end), reports readability through a callback (``watch``), reads
what is there without blocking (``read``: bytes, b"" once the peer has gone, None when nothing is
ready), writes without blocking (``write_nowait``: how much the socket took, ``watch_writable``
for a callback once it has room) or blocking only the calling greenlet (``write``), waits for
more (``wait_readable``), closes TCP once the closing handshake is over (``close``) or cuts the
connection (``abort``). Frames are the protocol core's business
(``ws4redis_server.protocol``); a transport moves bytes. Implementations: uWSGI (production)
and gevent.pywsgi (``manage.py runserver``), both over the connection's file descriptor.
"""
from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any, Protocol

import gevent
import gevent.socket
from wsproto.utilities import generate_accept_token

from ..frames import BinaryMessage

READ_SIZE = 65536


class ConnectionClosed(Exception):
    """The connection broke (a write failed or timed out)."""

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
    detaches: bool

    def accept(self, extensions: str | None = None) -> None: ...

    def detach(self) -> None: ...

    def write_nowait(self, data: bytes | memoryview) -> int: ...

    def watch_writable(self, on_writable: Callable[[], None]) -> Any: ...

    def watch(self, on_readable: Callable[[], None]) -> None: ...

    def read(self) -> bytes | None: ...

    def write(self, data: bytes, timeout: float) -> None: ...

    def wait_readable(self, timeout: float) -> bool: ...

    def close(self) -> None: ...

    def abort(self) -> None:
        """Cuts the connection at once, failing a write blocked on it."""


def handshake_response(environ: dict[str, Any], extensions: str | None) -> bytes:
    """The 101 that completes the handshake of ``environ``'s request (checked by the handshake
    module), answering the first offered subprotocol and ``extensions``."""
    key = environ["HTTP_SEC_WEBSOCKET_KEY"].strip().encode("ascii")
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {generate_accept_token(key).decode('ascii')}",
    ]
    protocol = first_subprotocol(environ)
    if protocol:
        lines.append(f"Sec-WebSocket-Protocol: {protocol}")
    if extensions:
        lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


class FdTransport:
    """The shared part: a non-blocking file descriptor, read and written from the gevent loop.
    Subclasses set ``fd`` in ``accept``. ``detaches``: False here (the request that opened the
    socket stays until it closes; ``detach`` does nothing)."""

    __slots__ = ("_drained", "_watcher", "fd")
    detaches = False

    def __init__(self) -> None:
        self.fd = -1
        self._watcher: Any = None
        # The last read emptied the socket: nothing to read until the watcher fires again.
        self._drained = False

    def watch(self, on_readable: Callable[[], None]) -> None:
        def readable() -> None:
            self._drained = False
            on_readable()

        self._watcher = gevent.get_hub().loop.io(self.fd, 1)
        self._watcher.start(readable)

    def read(self) -> bytes | None:
        if self._drained:
            return None  # a read now would only fail with EAGAIN
        try:
            data = os.read(self.fd, READ_SIZE)
        except BlockingIOError:
            self._drained = True
            return None
        except OSError:
            return b""
        # A short read took all the socket had (the watcher is level-triggered: it fires again
        # for anything that arrives later).
        self._drained = 0 < len(data) < READ_SIZE
        return data

    def detach(self) -> None:
        pass

    def write_nowait(self, data: bytes | memoryview) -> int:
        """Writes what the socket takes of ``data`` now; returns how much (0: no room)."""
        try:
            return os.write(self.fd, data)
        except BlockingIOError:
            return 0
        except OSError as exc:
            raise ConnectionClosed(1006, f"write failed: {exc}") from exc

    def watch_writable(self, on_writable: Callable[[], None]) -> Any:
        """Calls ``on_writable`` (from the loop) once the socket has room; returns the watcher,
        which the caller stops and closes."""
        watcher = gevent.get_hub().loop.io(self.fd, 2)
        watcher.start(on_writable)
        return watcher

    def write(self, data: bytes, timeout: float) -> None:
        view = memoryview(data)
        while view:
            view = view[self.write_nowait(view):]
            if view:
                try:
                    gevent.socket.wait_write(self.fd, timeout)
                except (OSError, TimeoutError) as exc:
                    raise ConnectionClosed(1006, f"write failed: {exc}") from exc

    def wait_readable(self, timeout: float) -> bool:
        try:
            gevent.socket.wait_read(self.fd, timeout)
        except (OSError, TimeoutError):
            return False
        self._drained = False
        return True

    def unwatch(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None

    def abort(self) -> None:
        if self.fd >= 0:
            try:
                with socket.socket(fileno=os.dup(self.fd)) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


__all__ = ["BinaryMessage", "ConnectionClosed", "FdTransport", "Transport", "first_subprotocol", "handshake_response"]
