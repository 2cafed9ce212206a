"""The development transport: a gevent socket with wsproto doing the framing.

Used by ``manage.py runserver`` so the same handlers and facilities run without nginx or uWSGI.
A reader greenlet turns bytes into whole messages; the socket loop takes them with
``recv_nowait``.
"""
from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import gevent
from gevent.lock import Semaphore
from wsproto.connection import Connection
from wsproto.events import BytesMessage, TextMessage
from wsproto.utilities import generate_accept_token

from . import ConnectionClosed, first_subprotocol
from .frames import InboundFrames


class DevTransport:
    def __init__(self, sock: Any, environ: dict[str, Any], max_message_size: int) -> None:
        self.sock = sock
        self.environ = environ
        self.frames = InboundFrames(max_message_size)
        self.closed: ConnectionClosed | None = None
        self._on_readable: Callable[[], None] = lambda: None
        self._reader: gevent.Greenlet | None = None
        self._write_lock = Semaphore()

    @property
    def ws(self) -> Connection:
        return self.frames.protocol

    def accept(self) -> None:
        key = self.environ["HTTP_SEC_WEBSOCKET_KEY"].strip().encode("ascii")
        lines = [
            "HTTP/1.1 101 Switching Protocols",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Accept: {generate_accept_token(key).decode('ascii')}",
        ]
        protocol = first_subprotocol(self.environ)
        if protocol:
            lines.append(f"Sec-WebSocket-Protocol: {protocol}")
        self._write(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))

    def watch(self, on_readable: Callable[[], None]) -> None:
        self._on_readable = on_readable
        self._reader = gevent.spawn(self._read_forever)

    def recv_nowait(self) -> bytes | None:
        if self.frames.messages:
            return self.frames.messages.popleft()
        if self.closed is not None:
            raise self.closed
        return None

    def send(self, data: bytes, is_text: bool) -> None:
        if self.closed is not None:
            raise self.closed
        event = TextMessage(data.decode("utf-8")) if is_text else BytesMessage(data)
        self._write(self.ws.send(event))

    def keepalive(self) -> None:
        if self.closed is not None or not self.frames.open:
            return
        if self.frames.awaiting_pong:
            self._fail(1006, "no pong to the last ping")
            return
        self._write(self.frames.ping())

    def close(self, code: int, reason: str) -> None:
        try:
            frame = self.frames.close_frame(code, reason)
            if frame:
                self._write(frame)
        except (OSError, ConnectionClosed):
            pass
        if self._reader is not None and self._reader is not gevent.getcurrent():
            self._reader.kill(block=False)
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _write(self, data: bytes) -> None:
        with self._write_lock:
            try:
                self.sock.sendall(data)
            except OSError as exc:
                self._fail(1006, str(exc))
                raise self.closed from exc  # type: ignore[misc]

    def _fail(self, code: int, reason: str) -> None:
        if self.closed is None:
            self.closed = ConnectionClosed(code, reason)
        self._on_readable()

    def _read_forever(self) -> None:
        while self.closed is None:
            try:
                data = self.sock.recv(65536)
            except OSError as exc:
                self._fail(1006, str(exc))
                return
            reply = self.frames.feed(data or None)
            if reply:
                try:
                    self._write(reply)
                except ConnectionClosed:
                    return
            if self.frames.closed is not None:
                self._fail(self.frames.closed.code, self.frames.closed.reason)
                return
            self._on_readable()
