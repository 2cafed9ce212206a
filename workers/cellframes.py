"""The Game of Life cells' frames: whole small text frames parsed and built here, everything else
left to websockets.

A cell receives one small text frame per generation and sends one. websockets' Sans-I/O protocol
(in :class:`workers.wsload.WebSocketClient`) opens and closes each socket and takes anything
unusual: pings, close frames, fragments, a frame split across reads, a frame that is not UTF-8.
Between those, :class:`CellFrames` parses and builds the cells' frames itself, which costs a
fraction of the protocol's generators, and reads into one buffer shared by every socket of the
process (asyncio's ``BufferedProtocol``) instead of a new bytes object per read.
"""
from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from websockets.frames import apply_mask  # C, from websockets' speedups
from websockets.protocol import Protocol, State
from websockets.streams import StreamReader

from .wsload import WebSocketClient

TEXT = 0x81  # FIN, no RSV bits, text
MASKED = 0x80
READ_SIZE = 256 * 1024  # as asyncio's own reads
MASK_POOL = 4096  # random bytes drawn at once for the masks of outgoing frames, 4 per frame

# One read buffer for every socket: a read is parsed before the event loop reads another socket.
_buffer = bytearray(READ_SIZE)
_view = memoryview(_buffer)
_AT_EOF = StreamReader.at_eof.__code__


class Masks:
    """Masking keys for client frames from the system's random source, drawn in bulk."""

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0

    def next(self) -> bytes:
        at = self._at
        if at + 4 > len(self._pool):
            self._pool, at = os.urandom(MASK_POOL), 0
        self._at = at + 4
        return self._pool[at:at + 4]


_masks = Masks()


def at_frame_boundary(protocol: Protocol) -> bool:
    """True if websockets' ``protocol`` is open and its parser waits for a new frame, holding no
    byte and no fragment of a message. Reads the parser's state (websockets 17); should it
    change, the answer is False and every frame goes through websockets."""
    try:
        if protocol.state is not State.OPEN or protocol.reader.buffer or protocol.current_size is not None:
            return False
        parser: Any = protocol.parser  # a generator: its suspended frame is in gi_yieldfrom
        while parser.gi_yieldfrom is not None:
            parser = parser.gi_yieldfrom
        return parser.gi_code is _AT_EOF
    except AttributeError:
        return False


class CellFrames(asyncio.BufferedProtocol):
    """Takes over the transport of ``client``, an open socket whose messages go to its
    ``on_message``; :meth:`send` sends a text message."""

    def __init__(self, client: WebSocketClient) -> None:
        assert client.transport is not None and client.on_message is not None
        self.client = client
        self.protocol = client.protocol
        self.transport = client.transport
        self.on_message = client.on_message
        self._fast = at_frame_boundary(self.protocol)
        self.transport.set_protocol(self)

    def send(self, text: str) -> None:
        """Sends a text message; a no-op once the socket is closing."""
        if self.protocol.state is not State.OPEN or self.transport.is_closing():
            return
        payload = text.encode("utf-8")
        if len(payload) >= 126:
            self.client.send(text)
            return
        mask = _masks.next()
        self.transport.write(bytes((TEXT, MASKED | len(payload))) + mask + apply_mask(payload, mask))

    # -- asyncio.BufferedProtocol -------------------------------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        return _view

    def buffer_updated(self, nbytes: int) -> None:
        taken = self._take_whole_messages(nbytes) if self._fast and self.protocol.state is State.OPEN else 0
        if taken < nbytes:
            self.client.data_received(bytes(_view[taken:nbytes]))
            self._fast = at_frame_boundary(self.protocol)

    def eof_received(self) -> bool:
        return self.client.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.connection_lost(exc)

    def _take_whole_messages(self, end: int) -> int:
        """Delivers the whole, unmasked, single-frame text messages at the start of the buffer;
        returns where the first frame it did not take begins."""
        buffer, at, arrival = _buffer, 0, time.monotonic()
        limit = self.protocol.max_message_size or READ_SIZE
        while at + 2 <= end:
            size, start = buffer[at + 1], at + 2
            if buffer[at] != TEXT or size > 126:  # another kind of frame, or masked, or long
                break
            if size == 126:
                if at + 4 > end:
                    break
                size, start = (buffer[at + 2] << 8) | buffer[at + 3], at + 4
                if size < 126 or size > limit:
                    break
            stop = start + size
            if stop > end:
                break
            try:
                text = str(_view[start:stop], "utf-8")
            except UnicodeDecodeError:
                break  # websockets closes with 1007
            self.on_message(text, arrival)
            at = stop
            if self.protocol.state is not State.OPEN:  # the message closed the socket
                break
        return at
