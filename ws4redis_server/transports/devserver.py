"""The development transport: a gevent socket with wsproto doing the framing.

Used by ``manage.py runserver`` so the same handlers and facilities run without nginx or uWSGI.
A reader greenlet turns bytes into whole messages; the socket loop takes them with
``recv_nowait``.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable

import gevent
from gevent.lock import Semaphore
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.utilities import generate_accept_token

from . import ConnectionClosed

PONG_TIMEOUT = 10.0


class DevTransport:
    def __init__(self, sock: Any, environ: dict[str, Any], max_message_size: int) -> None:
        self.sock = sock
        self.environ = environ
        self.max_message_size = max_message_size
        self.ws = Connection(ConnectionType.SERVER)
        self.inbound: deque[bytes] = deque()
        self.closed: ConnectionClosed | None = None
        self._on_readable: Callable[[], None] = lambda: None
        self._reader: gevent.Greenlet | None = None
        self._write_lock = Semaphore()
        self._fragments: list[bytes] = []
        self._size = 0
        self._awaiting_pong = False

    def accept(self) -> None:
        key = self.environ["HTTP_SEC_WEBSOCKET_KEY"].strip().encode("ascii")
        response = (
            "HTTP/1.1 101 Switching Protocols\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {generate_accept_token(key).decode('ascii')}\r\n\r\n"
        )
        self._write(response.encode("ascii"))

    def watch(self, on_readable: Callable[[], None]) -> None:
        self._on_readable = on_readable
        self._reader = gevent.spawn(self._read_forever)

    def recv_nowait(self) -> bytes | None:
        if self.inbound:
            return self.inbound.popleft()
        if self.closed is not None:
            raise self.closed
        return None

    def send(self, data: bytes, is_text: bool) -> None:
        if self.closed is not None:
            raise self.closed
        event = TextMessage(data.decode("utf-8")) if is_text else BytesMessage(data)
        self._write(self.ws.send(event))

    def keepalive(self) -> None:
        if self.closed is not None or self.ws.state is not ConnectionState.OPEN:
            return
        if self._awaiting_pong:
            self._fail(1006, f"no pong within {PONG_TIMEOUT:.0f}s")
            return
        self._awaiting_pong = True
        self._write(self.ws.send(Ping()))

    def close(self, code: int, reason: str) -> None:
        try:
            if self.ws.state is ConnectionState.OPEN:
                self._write(self.ws.send(CloseConnection(code=code, reason=reason[:120])))
        except OSError:
            pass
        if self._reader is not None and self._reader is not gevent.getcurrent():
            self._reader.kill(block=False)
        try:
            self.sock.close()
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
            self.ws.receive_data(data or None)
            for event in self.ws.events():
                self._handle(event)
            self._on_readable()
            if not data:
                self._fail(1006, "connection lost")
                return

    def _handle(self, event: Any) -> None:
        if isinstance(event, (TextMessage, BytesMessage)):
            chunk = event.data.encode("utf-8") if isinstance(event, TextMessage) else bytes(event.data)
            self._size += len(chunk)
            if self._size > self.max_message_size:
                self._fragments, self._size = [], 0
                self._fail(1009, f"message over {self.max_message_size} bytes")
                return
            self._fragments.append(chunk)
            if event.message_finished:
                self.inbound.append(b"".join(self._fragments))
                self._fragments, self._size = [], 0
        elif isinstance(event, Ping):
            self._write(self.ws.send(event.response()))
        elif isinstance(event, Pong):
            self._awaiting_pong = False
        elif isinstance(event, CloseConnection):
            if self.ws.state is ConnectionState.REMOTE_CLOSING:
                try:
                    self._write(self.ws.send(event.response()))
                except ConnectionClosed:
                    pass
            self._fail(event.code, event.reason or "")
