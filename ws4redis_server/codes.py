"""Close codes a socket may be closed with (RFC 6455 section 7.4), by their RFC names."""
from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    """``ws.close(CloseCode.POLICY_VIOLATION, "reason")``; members are plain ints on the wire."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001  # the server stops or restarts: clients reconnect
    PROTOCOL_ERROR = 1002
    NO_STATUS_RCVD = 1005  # never sent: the peer's close frame had no code
    ABNORMAL_CLOSURE = 1006  # never sent: the connection ended without a close frame
    INVALID_DATA = 1007  # e.g. a text message that is not UTF-8
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013  # e.g. Redis unreachable
    # Private use (4000-4999), this library's own.
    SLOW_CONSUMER = 4000  # the client read too slowly and its outbox overflowed
    GROUPS_CHANGED = 4001  # the user's groups changed: reconnect for the new group channels
