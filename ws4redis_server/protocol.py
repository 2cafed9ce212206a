"""The protocol core of one socket: RFC 6455 for a server, with no I/O (no socket, gevent or Redis).

Events in: :meth:`Protocol.receive_data` (bytes read from the peer), :meth:`~Protocol.receive_eof`,
:meth:`~Protocol.send` (a message for the peer: from the hub, a handler or a replay),
:meth:`~Protocol.tick` (a wake interval has passed) and :meth:`~Protocol.close` (close now).
Actions out: :attr:`~Protocol.messages` (whole inbound messages for the application: ``bytes``
for a text message, ``frames.BinaryMessage`` for a binary one), :meth:`~Protocol.data_to_send`
(bytes to write), :attr:`~Protocol.ending` (the socket is ending: close with this code once the
application has handled :attr:`~Protocol.messages`), :attr:`~Protocol.lost` (close the transport
without a close frame) and :attr:`~Protocol.awaiting_close` (read on until the peer's close frame).

The rules it keeps (the frame format itself is ``frames.py``): a whole message in one frame
costs a few operations; the size limit is checked on each frame's header, so a too large message
is refused before its payload is read; **1002** for any protocol violation, **1007** for a text
message that is not UTF-8 (found as soon as the bad byte arrives, even split across fragments),
**1009** over ``max_message_size``, **1008** over the rate limit; pings answered, the peer pinged
after an idle interval and dropped if it does not answer by the next; the heartbeat message
answered (and, when idle, sent); an outbox bounded in messages and bytes, dropped on overflow and
closed with **4000**; permessage-deflate when negotiated. The peer's close frame is answered only
when the adapter says the application has handled what came before it (:meth:`~Protocol.close`),
so a message sent just before a close is handled (published) before the close is answered, and
whatever was sent before an error goes out before the close frame.
"""
from __future__ import annotations

import codecs
import enum
import time
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from websockets.frames import apply_mask  # C, from websockets' speedups

from . import wire
from .codes import CloseCode
from .frames import (
    BINARY,
    CLOSE,
    CONT,
    DATA,
    PING,
    PONG,
    TEXT,
    BadClose,
    BinaryMessage,
    check_length,
    check_start,
    close_payload,
    header,
    parse_close,
)

if TYPE_CHECKING:
    from .compression import Deflate

CHUNK = 65536  # bytes data_to_send returns at most (unless one frame is larger)


class State(enum.IntEnum):
    OPEN = 0  # messages flow both ways
    CLOSING = 1  # our close frame is queued: nothing more is sent
    CLOSED = 2  # the connection is over (closing handshake done, or lost)


class Protocol:
    """One server-side WebSocket connection, from the opening handshake's end to its close.

    ``send`` may be called from any greenlet; everything else from the socket's own loop.
    ``deflate``: permessage-deflate as negotiated in the handshake (``compression.negotiate``).
    ``heartbeat`` is answered (as ``\n<heartbeat>`` on a socket with ``ids``: every message of
    such a socket has an id line; the JavaScript client reads it as a heartbeat) and, with
    ``idle_heartbeat``, sent to the peer when nothing else was for a wake interval (pub/sub
    sockets, as ws4redis did; a handler's protocol is its own).
    ``stats`` is a dict of counters to add to (``messages_received``, ``messages_sent``,
    ``dropped_messages``, ``outbox_high_water``); ``clock`` returns seconds (the rate limit's).
    """

    __slots__ = ("_compressed", "_decoder", "_failed", "_have", "_heartbeat_frame", "_idle_heartbeat", "_max_frame",
                 "_message", "_message_opcode", "_message_size", "_need", "_pending", "_pinged", "_received",
                 "_sent", "_skip", "_stamp", "_tokens", "burst", "clock", "close_rcvd", "close_sent", "deflate",
                 "ending", "heartbeat", "lost", "max_bytes", "max_message_size", "max_messages", "messages",
                 "outbox", "outbox_bytes", "overflowed", "rate", "state", "stats")  # one per socket: no __dict__

    def __init__(self, max_message_size: int, outbox_messages: int = 20_000, outbox_bytes: int = 4 << 20,
                 rate: float | None = None, burst: float = 0.0, heartbeat: str | None = None,
                 ids: bool = False, idle_heartbeat: bool = False, stats: dict[str, int] | None = None,
                 clock: Callable[[], float] = time.monotonic, deflate: Deflate | None = None) -> None:
        self.max_message_size = max_message_size
        self.deflate = deflate
        # A compressed frame may be a little larger than what it inflates to.
        self._max_frame = max_message_size + (max_message_size >> 6) + 1024 if deflate else max_message_size
        self.max_messages = outbox_messages
        self.max_bytes = outbox_bytes
        self.heartbeat = heartbeat.encode("utf-8") if heartbeat else None
        self._heartbeat_frame = wire.frame(None, self.heartbeat) if ids and self.heartbeat else self.heartbeat
        self._idle_heartbeat = idle_heartbeat and self.heartbeat is not None
        self.stats = stats if stats is not None else {}
        self.clock = clock
        self.rate, self.burst = rate, burst or (2 * rate if rate else 0.0)
        self._tokens, self._stamp = self.burst, clock()
        self.state = State.OPEN
        self.messages: list[bytes] = []  # the application takes them (a deque costs 600 bytes idle)
        self.ending: tuple[int, str] | None = None
        self.lost = False
        self.close_rcvd: tuple[int, str] | None = None
        self.close_sent: tuple[int, str] | None = None
        self.overflowed = False
        self.outbox: list[tuple[int, bytes]] = []  # (opcode, payload) in sending order (a deque: 600 bytes idle)
        self.outbox_bytes = 0
        # Inbound: bytes not parsed yet (a partial frame), and how many are needed to go on.
        self._pending: list[bytes] = []
        self._have = 0
        self._need = 2
        self._skip = 0  # payload bytes of a refused frame still to be dropped
        self._failed = False  # a violation: frames are only scanned for the peer's close frame
        self._message: list[bytes] | None = None  # fragments of the message in progress
        self._message_opcode = TEXT
        self._message_size = 0
        self._compressed = False
        self._decoder: codecs.IncrementalDecoder | None = None
        # Keepalive: traffic since the last tick, and an unanswered ping.
        self._received = self._sent = False
        self._pinged = False

    # -- events in: from the peer --------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Parses ``data`` from the peer: whole messages go to :attr:`messages`, answers to the
        outbox, a violation sets :attr:`ending`. Never raises."""
        if self.state is State.CLOSED or not data:
            return
        self._received = True
        if self.close_rcvd is not None:
            return  # after the peer's close frame, anything is dropped
        self._pinged = False  # the peer is alive
        if self._skip:
            if len(data) <= self._skip:
                self._skip -= len(data)
                return
            data, self._skip = data[self._skip:], 0
        if self._pending:
            self._pending.append(data)
            self._have += len(data)
            if self._have < self._need:
                return
            data = b"".join(self._pending)
            self._pending, self._have = [], 0
        at = self._parse(data)
        if at < len(data):
            rest = data[at:]
            self._pending, self._have = [rest], len(rest)

    def receive_eof(self) -> None:
        """The peer has closed its side of TCP (or the connection broke)."""
        if self.close_rcvd is None and self.state is not State.CLOSED:
            self._lose("connection lost")
        # After the peer's close frame it may still read our answer (it half-closed).

    # -- events in: from the server ------------------------------------------------------------

    def send(self, data: bytes, text: bool) -> bool:
        """Queues a message for the peer. Returns False if it overflowed the outbox: the outbox is
        dropped and a 4000 close frame queued instead (the caller stops deliveries)."""
        if self.state is not State.OPEN or self.lost:
            return not self.overflowed
        outbox = self.outbox
        if outbox and (len(outbox) >= self.max_messages or self.outbox_bytes + len(data) > self.max_bytes):
            return self.overflow()
        outbox.append((TEXT if text else BINARY, data))
        self.outbox_bytes += len(data)
        return True

    def send_first(self, messages: list[tuple[bytes, bool]]) -> None:
        """Queues ``messages`` before everything queued (the persisted messages of ws4redis's
        replay, older than what arrived live since the subscription)."""
        if self.state is not State.OPEN:
            return
        self.outbox[:0] = [(TEXT if text else BINARY, data) for data, text in messages]
        self.outbox_bytes += sum(len(data) for data, _ in messages)

    def room(self) -> tuple[int, int]:
        """Returns how many more messages and bytes the outbox takes."""
        return self.max_messages - len(self.outbox), self.max_bytes - self.outbox_bytes

    def queued(self) -> set[bytes]:
        """The payloads in the outbox."""
        return {data for _, data in self.outbox}

    def tick(self) -> None:
        """A wake interval has passed. Without inbound traffic since the last tick, pings the
        peer, or drops it (1006, :attr:`lost`) if it has not answered the previous ping; with a
        ``idle_heartbeat`` and nothing sent since the last tick, sends the heartbeat."""
        if self.state is not State.OPEN or self.ending is not None:
            return
        if self._idle_heartbeat and not self._sent:
            self.send(self._heartbeat_frame or b"", True)
        if not self._received:
            if self._pinged:
                self._lose("no pong to the last ping")
                return
            self.outbox.append((PING, b""))
            self._pinged = True
        self._received = self._sent = False

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Queues the close frame after everything queued (an answer, if the peer closed first;
        nothing if the connection is lost). Nothing is sent after it."""
        if self.state is not State.OPEN:
            return
        if self.ending is not None:  # the peer's close, a violation: that code wins
            code, reason = self.ending
        self.state = State.CLOSING
        if self.lost:
            return
        if (self.close_rcvd is not None and self.close_rcvd[0] == CloseCode.NO_STATUS_RCVD
                and code == CloseCode.NORMAL_CLOSURE and not reason):
            payload = b""  # the answer to a close frame without a code has none either
        else:
            payload = close_payload(code, reason)
        self.outbox.append((CLOSE, payload))
        self.close_sent = (code, reason)
        if self.ending is None:
            self.ending = (code, reason)

    # -- actions out ---------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Returns the frames of the next queued messages (at least one, about CHUNK bytes at
        most), taking them out of the outbox; b"" when nothing is queued."""
        outbox = self.outbox
        count = len(outbox)
        if not count:
            return b""
        stats = self.stats
        if count > stats.get("outbox_high_water", 0):
            stats["outbox_high_water"] = count
        frames: list[bytes] = []
        size = sent = taken = 0
        deflate = self.deflate
        while taken < count and size < CHUNK:
            opcode, payload = outbox[taken]
            taken += 1
            self.outbox_bytes -= len(payload)
            if opcode <= BINARY and deflate is not None:
                payload = deflate.compress(payload, opcode == TEXT)
                frames.append(header(0x40 | opcode, len(payload)))
            else:
                frames.append(header(opcode, len(payload)))
            frames.append(payload)
            size += len(payload) + 2
            if opcode <= BINARY:
                sent += 1
            elif opcode == CLOSE:
                taken = count  # nothing after the close frame
                self.outbox_bytes = 0
        del outbox[:taken]
        if sent:
            self._sent = True
            stats["messages_sent"] = stats.get("messages_sent", 0) + sent
        if len(frames) == 2:
            return _one_frame(frames[0], frames[1])
        return b"".join(frames)

    @property
    def awaiting_close(self) -> bool:
        """True when our close frame is (being) sent and the peer's has not come: read on."""
        return self.close_sent is not None and self.close_rcvd is None and self.state is not State.CLOSED

    @property
    def handshake_done(self) -> bool:
        """Both close frames went their way: the server closes TCP now."""
        return self.close_sent is not None and self.close_rcvd is not None

    # -- parsing -------------------------------------------------------------------------------

    def _parse(self, data: bytes) -> int:
        """Parses the frames at the start of ``data``; returns where the first incomplete one
        begins (or len(data))."""
        at, end = 0, len(data)
        while self.close_rcvd is None:
            if end - at < 2:
                self._need = 2
                return at
            first, second = data[at], data[at + 1]
            if not self._failed:  # refused on its first two bytes, as wsproto does
                error = check_start(first, second & 0x7F)
                if error is not None:
                    self._fail(*error)
            length, head = second & 0x7F, 2
            if length == 126:
                head = 4
                if end - at >= 4:
                    length = (data[at + 2] << 8) | data[at + 3]
            elif length == 127:
                head = 10
                if end - at >= 10:
                    length = int.from_bytes(data[at + 2:at + 10], "big")
            masked = second & 0x80
            if masked:
                head += 4
            if end - at < head:
                self._need = head
                return at
            stop = at + head + length
            if not self._failed:
                error = self._check_header(first, second & 0x7F, length, masked)
                if error is not None:
                    self._fail(*error)
            elif first & 0x0F == CLOSE and length <= 125:
                # After a violation, only the peer's close frame matters (its code is not checked).
                if stop > end:
                    self._need = head + length
                    return at
                self.close_rcvd = (CloseCode.NO_STATUS_RCVD, "")
                return end
            if self._failed:  # drop the frame, the rest of it unbuffered as it comes
                if stop > end:
                    self._skip = stop - end
                    return end
                at = stop
                continue
            if stop > end:
                self._need = head + length
                return at
            payload = data[at + head:stop]
            if masked:
                payload = apply_mask(payload, data[stop - length - 4:stop - length])
            at = stop
            self._frame(first & 0x80, first & 0x0F, payload, first & 0x40)
        self._pending, self._have = [], 0
        return end

    def _check_header(self, first: int, short: int, length: int, masked: int) -> tuple[int, str] | None:
        """Returns (code, reason) if a frame with this header must fail the connection."""
        opcode = first & 0x0F
        error = check_length(short, length)
        if error is not None:
            return error
        if first & 0x70 and (first & 0x70 != 0x40 or self.deflate is None or opcode not in (TEXT, BINARY)):
            if self.deflate is not None and first & 0x70 == 0x40:
                return CloseCode.PROTOCOL_ERROR, "RSV1 on a continuation or control frame"
            return CloseCode.PROTOCOL_ERROR, "reserved bits set without an extension"
        if not masked:
            return CloseCode.PROTOCOL_ERROR, "unmasked frame from a client"
        if opcode == CONT and self._message is None:
            return CloseCode.PROTOCOL_ERROR, "continuation frame without a message in progress"
        if opcode in (TEXT, BINARY) and self._message is not None:
            return CloseCode.PROTOCOL_ERROR, "new message before the last one's final fragment"
        if opcode in DATA:
            if first & 0x40 or (opcode == CONT and self._compressed):
                too_big = length > self._max_frame  # checked once inflated
            else:
                too_big = (self._message_size if opcode == CONT else 0) + length > self.max_message_size
            if too_big:
                return CloseCode.MESSAGE_TOO_BIG, f"message over {self.max_message_size} bytes"
        return None

    def _frame(self, fin: int, opcode: int, payload: bytes, compressed: int = 0) -> None:
        if opcode == TEXT or opcode == BINARY:
            if fin and not compressed:
                if opcode == TEXT:
                    try:
                        payload.decode("utf-8")
                    except UnicodeDecodeError:
                        self._fail(CloseCode.INVALID_DATA, "invalid UTF-8 in a text message")
                        return
                    self._message_done(payload)
                else:
                    self._message_done(BinaryMessage(payload))
                return
            self._message, self._message_opcode, self._message_size = [], opcode, 0
            self._compressed = bool(compressed)
            self._decoder = codecs.getincrementaldecoder("utf-8")() if opcode == TEXT else None
            opcode = CONT
        if opcode == CONT:
            assert self._message is not None
            if self._compressed:
                assert self.deflate is not None
                try:
                    payload = self.deflate.inflate(payload, self.max_message_size - self._message_size, bool(fin))
                except zlib.error:
                    self._fail(CloseCode.INVALID_DATA, "invalid compressed data")
                    return
                except ValueError:  # compression.TooBig
                    self._fail(CloseCode.MESSAGE_TOO_BIG, f"message over {self.max_message_size} bytes")
                    return
            if self._decoder is not None:
                try:
                    self._decoder.decode(payload, final=bool(fin))
                except UnicodeDecodeError:
                    self._fail(CloseCode.INVALID_DATA, "invalid UTF-8 in a text message")
                    return
            self._message.append(payload)
            self._message_size += len(payload)
            if fin:
                whole = b"".join(self._message)
                binary = self._message_opcode == BINARY
                self._message, self._decoder, self._message_size = None, None, 0
                self._message_done(BinaryMessage(whole) if binary else whole)
        elif opcode == PING:
            if self.state is State.OPEN:
                self.outbox.append((PONG, payload))
        elif opcode == CLOSE:
            self._peer_closed(payload)

    def _message_done(self, message: bytes) -> None:
        if self.state is not State.OPEN:
            return  # after our close frame, nothing more is passed on
        self.stats["messages_received"] = self.stats.get("messages_received", 0) + 1
        if self.rate is not None:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens < 1:
                self._fail(CloseCode.POLICY_VIOLATION, f"over {self.rate:g} messages per second")
                return
            self._tokens -= 1
        if self._heartbeat_frame is not None and message == self.heartbeat and type(message) is bytes:
            self.send(self._heartbeat_frame, True)  # answered here, never passed on
            return
        self.messages.append(message)

    def _peer_closed(self, payload: bytes) -> None:
        try:
            code, reason = parse_close(payload)
        except BadClose as exc:
            self._fail(*exc.violation)
            return
        self.close_rcvd = (code, reason)
        if self.ending is None:
            self.ending = (code if code != CloseCode.NO_STATUS_RCVD else CloseCode.NORMAL_CLOSURE, reason)

    def _fail(self, code: int, reason: str) -> None:
        """The peer broke a rule: nothing it sends from here on is passed on; the server closes
        with ``code`` (the frames are still scanned for the peer's close frame)."""
        self._failed = True
        self._message, self._decoder = None, None
        if self.ending is None:
            self.ending = (code, reason)

    def _lose(self, reason: str) -> None:
        self.lost = True
        self.state = State.CLOSED
        if self.ending is None:
            self.ending = (CloseCode.ABNORMAL_CLOSURE, reason)

    def overflow(self, dropped: int = 0) -> bool:
        """The peer reads slower than messages come: drops the outbox (and ``dropped`` messages
        held elsewhere) and closes with 4000. Returns False (the caller's overflow)."""
        if self.state is not State.OPEN:
            return not self.overflowed  # closing already: nothing more goes out
        self.stats["dropped_messages"] = self.stats.get("dropped_messages", 0) + len(self.outbox) + dropped
        self.outbox.clear()
        self.outbox_bytes = 0
        self.overflowed = True
        self.close(CloseCode.SLOW_CONSUMER, "slow consumer: outbox full")
        return False


# The last single frame built: every socket of a broadcast sends the same payload object, and
# gets the same frame object (no copy per socket).
_last_frame: list[bytes] = [b"", b"", b""]  # header, payload, frame


def _one_frame(head: bytes, payload: bytes) -> bytes:
    last = _last_frame
    if last[1] is payload and last[0] == head:
        return last[2]
    frame = head + payload
    last[:] = head, payload, frame
    return frame
