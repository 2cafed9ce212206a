"""RFC 6455's frame format as a server reads and writes it: opcodes, the checks that need no
connection state, server frame headers and close frames. The connection's rules (what may follow
what, sizes, closing) are the protocol core's (``protocol.py``)."""
from __future__ import annotations

from .codes import CloseCode

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
DATA = (CONT, TEXT, BINARY)
CONTROL = (CLOSE, PING, PONG)
# Close codes a peer may send (wsproto's list, and the 3000-4999 range).
PEER_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013})
MAX_REASON = 123  # bytes of a close reason (a control frame's payload is at most 125)

Violation = tuple[int, str]  # the close code and reason a frame calls for


class BinaryMessage(bytes):
    """The bytes of a message that came in binary frames (plain bytes: a text message). A bytes
    subclass, so everything that takes a message takes it; the relay publishes it as binary."""

    __slots__ = ()


def check_start(first: int, short: int) -> Violation | None:
    """Returns the violation of a frame whose first two bytes are ``first`` and a length field
    of ``short`` (wsproto refuses these as soon as they arrive), or None."""
    opcode = first & 0x0F
    if opcode not in DATA and opcode not in CONTROL:
        return CloseCode.PROTOCOL_ERROR, f"reserved opcode {opcode:#x}"
    if opcode in CONTROL:
        if not first & 0x80:
            return CloseCode.PROTOCOL_ERROR, "fragmented control frame"
        if short > 125:
            return CloseCode.PROTOCOL_ERROR, "control frame over 125 bytes"
    return None


def check_length(short: int, length: int) -> Violation | None:
    """Returns the violation of a payload length not written in its shortest form, or None."""
    if (short == 126 and length < 126) or (short == 127 and (length < 65536 or length >> 63)):
        return CloseCode.PROTOCOL_ERROR, "payload length not in its shortest form"
    return None


def header(first: int, length: int) -> bytes:
    """The header of an unmasked server frame: FIN, then ``first`` (RSV bits, opcode)."""
    if length < 126:
        return bytes((0x80 | first, length))
    if length < 65536:
        return bytes((0x80 | first, 126, length >> 8, length & 0xFF))
    return bytes((0x80 | first, 127)) + length.to_bytes(8, "big")


def close_payload(code: int, reason: str) -> bytes:
    """The payload of a close frame: the code, then the reason in UTF-8 cut on a character
    boundary to fit."""
    data = reason.encode("utf-8")
    if len(data) > MAX_REASON:
        data = data[:MAX_REASON].decode("utf-8", "ignore").encode("utf-8")
    return code.to_bytes(2, "big") + data


class BadClose(Exception):
    """A peer's close frame that breaks the rules; ``violation`` is what to close with."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.violation: Violation = (code, reason)


def parse_close(payload: bytes) -> tuple[int, str]:
    """Returns (code, reason) of a peer's close frame (1005 when it has no code); raises
    BadClose for a 1-byte payload, a code a peer may not send, or a reason that is not UTF-8."""
    if not payload:
        return CloseCode.NO_STATUS_RCVD, ""
    if len(payload) == 1:
        raise BadClose(CloseCode.PROTOCOL_ERROR, "close frame with a 1-byte payload")
    code = int.from_bytes(payload[:2], "big")
    if code not in PEER_CODES and not 3000 <= code <= 4999:
        raise BadClose(CloseCode.PROTOCOL_ERROR, f"close code {code} is not one a peer may send")
    try:
        return code, payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise BadClose(CloseCode.INVALID_DATA, "invalid UTF-8 in the close reason") from None
