"""Inbound WebSocket frames, for the transports that read the socket themselves.

Whole messages come out in order (a binary one as a ``BinaryMessage``); a message over the size
limit (1009), a text frame that is not UTF-8 (1007) or any protocol violation (1002) ends the
stream with that code, whatever the bytes were: parsing never raises. Pings are answered; what
must be written back is returned by :meth:`InboundFrames.feed`, so the caller writes it the way
its server writes.

wsproto parses the stream. The common case, whole masked text or binary messages in one frame
each, is taken here without it (a few operations instead of wsproto's generators, which cost
more than the rest of a small message's way through the server), but only while wsproto holds
nothing: no partial frame, no message in progress. The first frame that is anything else, or
incomplete, or not what the fast path accepts (not UTF-8, over the limit, a needlessly long
length), goes to wsproto with everything after it, so wsproto judges it exactly as before.
"""
from __future__ import annotations

from collections import deque

from websockets.frames import apply_mask  # C, from websockets' speedups
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage

from . import BinaryMessage, ConnectionClosed

TEXT, BINARY = 0x81, 0x82  # first byte of a whole text / binary message: FIN, no RSV bits
MASKED = 0x80


class InboundFrames:
    def __init__(self, max_message_size: int) -> None:
        self._protocol: Connection | None = None
        self.max_message_size = max_message_size
        self.messages: deque[bytes] = deque()
        self.closed: ConnectionClosed | None = None
        self.awaiting_pong = False
        self._fragments: list[bytes] = []
        self._size = 0
        self._fast = True  # wsproto holds no bytes and no message in progress

    @property
    def protocol(self) -> Connection:
        """wsproto's side of the socket, made when it is first needed: most sockets only ever see
        whole messages, and wsproto's objects cost memory and garbage collection per socket."""
        if self._protocol is None:
            self._protocol = Connection(ConnectionType.SERVER)
        return self._protocol

    @property
    def open(self) -> bool:
        return self.closed is None and (self._protocol is None or self._protocol.state is ConnectionState.OPEN)

    def feed(self, data: bytes | None) -> bytes:
        """Parses ``data`` from the peer (None: it has gone). Complete messages are appended to
        ``messages``; ``closed`` is set once the stream ends. Returns the bytes to send back."""
        if self.closed is not None:
            return b""
        if data and self._fast:
            taken = self._take_whole_messages(data)
            if taken == len(data):
                return b""
            data = data[taken:]
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
                    whole = b"".join(self._fragments)
                    self.messages.append(BinaryMessage(whole) if isinstance(event, BytesMessage) else whole)
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
        self._fast = self.closed is None and self._wsproto_idle()
        return reply

    def _take_whole_messages(self, data: bytes) -> int:
        """Appends the messages of the whole, masked, single-frame text or binary messages at the
        start of ``data``; returns where the first frame it did not take begins."""
        end, at, limit = len(data), 0, self.max_message_size
        messages = self.messages
        while at + 6 <= end:
            first, second = data[at], data[at + 1]
            if (first != TEXT and first != BINARY) or second < MASKED:
                break
            size, mask_at = second & 0x7F, at + 2
            if size == 126:
                if at + 8 > end:
                    break
                size, mask_at = (data[at + 2] << 8) | data[at + 3], at + 4
                if size < 126:
                    break  # not the shortest length: wsproto closes with 1002
            elif size == 127:
                break
            stop = mask_at + 4 + size
            if size > limit or stop > end:
                break
            payload = apply_mask(data[mask_at + 4:stop], data[mask_at:mask_at + 4])
            if first == TEXT:
                try:
                    payload.decode("utf-8")
                except UnicodeDecodeError:
                    break  # wsproto closes with 1007
            messages.append(payload if first == TEXT else BinaryMessage(payload))
            at = stop
        return at

    def _wsproto_idle(self) -> bool:
        """True if wsproto holds no bytes of a frame and no message in progress. It reads
        wsproto's internals (wsproto 1.3); should they change, the answer is False and every
        frame goes through wsproto."""
        try:
            frames = self.protocol._proto
            decoder = frames._frame_decoder
            return (self.protocol.state is ConnectionState.OPEN and not self._fragments
                    and decoder.header is None and not decoder.buffer.buffer
                    and frames._message_decoder.opcode is None)
        except AttributeError:
            return False

    @property
    def closing(self) -> bool:
        """True between our close frame and the peer's."""
        return self._protocol is not None and self._protocol.state is ConnectionState.LOCAL_CLOSING

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
        self._fast = False  # what follows is the peer's closing: wsproto's
        return self.protocol.send(CloseConnection(code=code, reason=reason[:120]))
