"""permessage-deflate (RFC 7692), opt-in with ``WS4REDIS_COMPRESSION``: the handshake's answer to
the client's offer, and the compression of one socket's messages for its protocol core.

wsproto's ``PerMessageDeflate`` reads the offer and chooses the answer (``client_max_window_bits``,
``server_max_window_bits``, ``client_no_context_takeover``). The server always adds
``server_no_context_takeover`` (RFC 7692 7.1.1.1 lets it): each message it sends is compressed
on its own, so no socket keeps a compressor (zlib's, about 90 KiB resident per socket with the
default window, measured by ``python -m bench.compression``), and the same message compresses
to the same bytes for every socket with the same window: a broadcast is compressed once per
process (a small cache of the last messages), not once per socket. The price is a lower ratio
on small messages that resemble the previous ones.

Inbound messages are inflated here with the negotiated window and a bound: never more than the
socket's size limit comes out of one message (wsproto's inflater has none, and a few KiB of
deflate can inflate to megabytes). A socket keeps its inflater while the client uses context
takeover (about 10 KiB once it has received a message), hence compression stays off by default.
"""
from __future__ import annotations

import zlib
from typing import Any

from wsproto.extensions import PerMessageDeflate

NAME = "permessage-deflate"
_TAIL = b"\x00\x00\xff\xff"  # removed from each message by the sender, added back to inflate it
CACHED = 16  # messages whose compressed form is kept for the next sockets
CACHE_MAX_SIZE = 65536  # bytes: larger messages are compressed for each socket
_compressed: dict[tuple[int, bytes], bytes] = {}


class TooBig(ValueError):
    """An inbound message inflates past the size limit."""


class Deflate:
    """The compression state of one socket, made by :func:`negotiate`."""

    def __init__(self, extension: PerMessageDeflate) -> None:
        self.extension = extension
        self._inflater: Any = None

    def compress(self, data: bytes, text: bool) -> bytes:
        """Returns the payload of a whole compressed message (sent with RSV1)."""
        return compress(data, self.extension.server_max_window_bits)

    def inflate(self, data: bytes, limit: int, final: bool) -> bytes:
        """Returns what one frame of a compressed message inflates to, ``limit`` bytes at most;
        raises TooBig beyond it, zlib.error if it is not deflate."""
        inflater = self._inflater
        if inflater is None:
            inflater = self._inflater = zlib.decompressobj(-self.extension.client_max_window_bits)
        if final:
            data += _TAIL
        out = inflater.decompress(data, limit + 1)
        if len(out) > limit or inflater.unconsumed_tail:
            raise TooBig
        if final and self.extension.client_no_context_takeover:
            self._inflater = None
        return out


def compress(data: bytes, bits: int) -> bytes:
    """Returns ``data`` deflated on its own with a ``bits`` window, without the final empty
    block's tail (RFC 7692 7.2.1); the same bytes for the same message, from a cache of the last
    CACHED messages (every socket of a broadcast sends the same one)."""
    key = (bits, data)
    payload = _compressed.get(key)
    if payload is None:
        compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -bits)
        payload = (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
        if len(data) <= CACHE_MAX_SIZE:
            if len(_compressed) >= CACHED:
                del _compressed[next(iter(_compressed))]
            _compressed[key] = payload
    return payload


def negotiate(offer: str | None) -> tuple[str, Deflate] | None:
    """Returns the ``Sec-WebSocket-Extensions`` answer to the client's offer and the socket's
    compression, or None if it offers no permessage-deflate this server accepts (the first
    acceptable one in the client's order wins)."""
    if not offer:
        return None
    for item in offer.split(","):
        name = item.split(";", 1)[0].strip()
        if name != NAME:
            continue
        extension = PerMessageDeflate()
        try:
            parameters = extension.accept(item)
        except ValueError:  # a parameter without its value, or not a number
            continue
        if parameters is None or not isinstance(parameters, str):
            continue
        if not extension.server_no_context_takeover:
            extension.server_no_context_takeover = True
            parameters = "; ".join(filter(None, [parameters, "server_no_context_takeover"]))
        return f"{NAME}; {parameters}", Deflate(extension)
    return None
