"""Inbound WebSocket frames parsed by wsproto, for the transports that read the socket themselves.

Whole messages come out in order; a message over the size limit (1009), a text frame that is
not UTF-8 (1007) or any protocol violation (1002) ends the stream with that code, whatever the
bytes were: parsing never raises. Pings are answered; what must be written back is returned
by :meth:`InboundFrames.feed`, so the caller writes it the way its server writes.
"""
from __future__ import annotations

from collections import deque

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage

from . import ConnectionClosed


class InboundFrames:
    def __init__(self, max_message_size: int) -> None:
        self.protocol = Connection(ConnectionType.SERVER)
        self.max_message_size = max_message_size
        self.messages: deque[bytes] = deque()
        self.closed: ConnectionClosed | None = None
        self.awaiting_pong = False
        self._fragments: list[bytes] = []
        self._size = 0

    @property
    def open(self) -> bool:
        return self.closed is None and self.protocol.state is ConnectionState.OPEN

    def feed(self, data: bytes | None) -> bytes:
        """Parses ``data`` from the peer (None: it has gone). Complete messages are appended to
        ``messages``; ``closed`` is set once the stream ends. Returns the bytes to send back."""
        if self.closed is not None:
            return b""
        reply = b""
        self.protocol.receive_data(data)
        for event in self.protocol.events():
            if isinstance(event, (TextMessage, BytesMessage)):
                chunk = event.data.encode("utf-8") if isinstance(event, TextMessage) else bytes(event.data)
                self._size += len(chunk)
                if self._size > self.max_message_size:
                    self._fragments, self._size = [], 0
                    self.closed = ConnectionClosed(1009, f"message over {self.max_message_size} bytes")
                    break
                self._fragments.append(chunk)
                if event.message_finished:
                    self.messages.append(b"".join(self._fragments))
                    self._fragments, self._size = [], 0
            elif isinstance(event, Ping):
                reply += self.protocol.send(event.response())
            elif isinstance(event, Pong):
                self.awaiting_pong = False
            elif isinstance(event, CloseConnection):
                if self.protocol.state is ConnectionState.REMOTE_CLOSING:
                    reply += self.protocol.send(event.response())
                # A parse failure comes as a CloseConnection with the code to close with.
                self.closed = ConnectionClosed(event.code, event.reason or "")
                break
        if data is None and self.closed is None:
            self.closed = ConnectionClosed(1006, "connection lost")
        return reply

    @property
    def closing(self) -> bool:
        """True between our close frame and the peer's."""
        return self.protocol.state is ConnectionState.LOCAL_CLOSING

    def peer_closed(self, data: bytes) -> bool:
        """Parses ``data`` arriving after our close frame; True once the peer's close frame (or
        anything unparsable) has come: the closing handshake is over."""
        self.protocol.receive_data(data)
        return any(isinstance(event, CloseConnection) for event in self.protocol.events())

    def ping(self) -> bytes:
        """Returns a ping to send; ``awaiting_pong`` stays true until the peer answers."""
        self.awaiting_pong = True
        return self.protocol.send(Ping())

    def close_frame(self, code: int, reason: str) -> bytes:
        """Returns the close frame to send, or b"" if the closing handshake is already done."""
        if self.protocol.state is not ConnectionState.OPEN:
            return b""
        return self.protocol.send(CloseConnection(code=code, reason=reason[:120]))
