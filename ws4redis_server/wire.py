"""What the server adds to a message, built and parsed here and nowhere else.

**On Redis a message is exactly its bytes**, for every subscriber: ws4redis servers sharing the
Redis during a migration, a site's own services, ``redis-cli SUBSCRIBE``. What our hubs need
besides (the message id, text or binary, a delivery receipt's id) travels in a **notice**
published on a companion channel immediately before the message, by the same Lua script
(``history.py``) or MULTI/EXEC (``publisher.publish_to`` without history)::

    PUBLISH  ws4redis:meta:{broadcast:news}  "t 1763700000000-0"        (the notice)
    PUBLISH  broadcast:news                  "hello"                     (the message)

Why this works: every hub subscribes to a channel and its companion in one SUBSCRIBE command
(and drops both in one UNSUBSCRIBE), so it never has one without the other. Redis runs a script
or a transaction without running anything else in between, so on each subscriber's connection
the notice and its message are adjacent: the hub keeps the last notice and attaches it to the
very next message if that message is on the notice's channel. A message with no notice right
before it was PUBLISHed by someone else: no id, text if it is UTF-8 (ws4redis's rule).
The hub pays one ``startswith`` and one split per notice and a comparison per message; it never
searches a payload.

Why not something else: a prefix or envelope in the payload (what this server did before, and
how ids travel in some other servers) reaches every foreign subscriber, which is the problem;
Redis pub/sub, sharded (``SPUBLISH``) or not, has no headers to put it in; a notice *after* the
message would make the hub hold every message until the next reply to learn whether it had one;
reading the id back from the history stream costs a round trip per message. The notice costs a
second PUBLISH inside the same script, about 70 bytes on each hub's connection and one more
reply for redis-py to parse (measured by ``python -m bench.wire``; figures in the README's
"What travels on Redis").

Redis Cluster: the companion's name carries the channel's hash slot (``{<channel>}``, or the
channel's own hash tag when it has one), so channel, companion, the binary marker of its
persisted message and, later, its history can live on one shard and be written by one script.

The notice is ASCII, fields separated by one space, later fields optional and unknown ones
ignored: ``<opcode> <id> <receipt>``; opcode ``t`` (text frame) or ``b`` (binary frame), id a
Redis Stream id or empty, receipt a hex string or absent.

**Text or binary** is kept end to end: the notice says it live, the history stream's entries
store it (field ``o``), and a persisted message (ws4redis's plain ``SETEX`` on the channel name)
is text if it is UTF-8 unless a **binary marker** beside it (``ws4redis:binary:{<channel>}``,
the SHA-1 of the bytes persisted as binary, same expiry) says otherwise; a marker that does
not match the persisted bytes (someone else persisted since) is ignored.

**On a socket** that asked for ``ids`` (see README, "Nothing missed across a reconnect"), each
message is one frame ``<id>\\n<message>`` (an empty id for a message without one) and a
position is ``@<id>\\n`` or ``@<id> gap\\n``. The JavaScript client parses exactly this:
``splitFrame`` and ``HEADER = /^(@?)(\\d+)-(\\d+)( gap)?$/`` in
``ws4redis_server/static/ws4redis/ws4redis.js``; :func:`parse_frame` is its Python twin.

**Before this format** (0.2.0 and earlier) ids and receipts travelled inside the payload as
``\\x00ws4r:i:<id>\\x00`` / ``\\x00ws4r:r:<receipt>\\x00``; :func:`unwrap_legacy` still reads
them, so hubs of this version serve publishers of the old one during an upgrade.
"""
from __future__ import annotations

import hashlib
import re
import uuid
from typing import NamedTuple

TEXT, BINARY = b"t", b"b"  # opcodes in notices and history entries
_ID = re.compile(r"(\d{1,20})-(\d{1,20})\Z")
_NOTICE = "ws4redis:meta:"
_BINARY_MARKER = "ws4redis:binary:"
_LEGACY_ID, _LEGACY_RECEIPT = b"\x00ws4r:i:", b"\x00ws4r:r:"


# -- message ids ------------------------------------------------------------------------------------

def parse_id(value: str) -> tuple[int, int]:
    """Returns a message id as a pair that sorts as ids do; raises ValueError if ``value`` is not
    ``<milliseconds>-<sequence>``."""
    match = _ID.match(value)
    if match is None:
        raise ValueError(f"a message id looks like 1732150000000-0, not {value[:40]!r}")
    return int(match.group(1)), int(match.group(2))


def format_id(pair: tuple[int, int]) -> str:
    """Returns the id of a pair made by :func:`parse_id`."""
    return f"{pair[0]}-{pair[1]}"


def new_receipt_id() -> str:
    """Returns a new delivery receipt id (32 hex digits)."""
    return uuid.uuid4().hex


def is_text(data: bytes) -> bool:
    """True if ``data`` is valid UTF-8: the rule for a message that says nothing of its opcode."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# -- Redis: the notice and its channel ------------------------------------------------------------

def _slot_tag(channel: str) -> str | None:
    """Returns the hash tag Redis Cluster hashes ``channel`` by, or None if it has none."""
    start = channel.find("{")
    if start >= 0:
        end = channel.find("}", start + 1)
        if end > start + 1:
            return channel[start + 1:end]
    return None


def tagged(head: str, channel: str) -> str:
    """``head{channel}`` in ``channel``'s hash slot, or ``head{tag}channel`` when ``channel`` has
    its own hash tag; ``channel`` can always be read back. A channel with a ``}`` and no tag
    (only a group name or a prefix can bring one) cannot be put in a tag: ``head{}channel``,
    another slot."""
    tag = _slot_tag(channel)
    if tag is not None:
        return f"{head}{{{tag}}}{channel}"
    if "}" in channel:
        return f"{head}{{}}{channel}"
    return f"{head}{{{channel}}}"


def notice_channel(prefix: str, channel: str) -> str:
    """The companion channel that carries the notices of ``channel``'s messages."""
    return tagged(f"{prefix}{_NOTICE}", channel)


def notice_target(prefix: str, name: str) -> str | None:
    """Returns the channel whose notices travel on ``name``, or None if ``name`` is no
    companion channel."""
    head = f"{prefix}{_NOTICE}{{"
    if not name.startswith(head):
        return None
    end = name.find("}", len(head))
    if end < 0:
        return None
    return name[end + 1:] or name[len(head):end]


def notice_parts(text: bool, receipt: str | None = None) -> tuple[bytes, bytes]:
    """Returns what goes before and after the id in a notice (the history script puts the id it
    makes between them)."""
    return (TEXT if text else BINARY) + b" ", b"" if receipt is None else b" " + receipt.encode("ascii")


def notice(message_id: str | None, text: bool, receipt: str | None = None) -> bytes:
    """Returns the notice of one message."""
    head, tail = notice_parts(text, receipt)
    return head + (message_id or "").encode("ascii") + tail


class Notice(NamedTuple):
    message_id: str | None
    text: bool
    receipt: str | None


def parse_notice(data: bytes) -> Notice:
    """Returns what a notice says. A malformed one reads as text without id or receipt: it
    cannot take a hub down (ids are checked where they are compared)."""
    fields = data.split(b" ", 3)
    message_id = fields[1].decode("ascii", "replace") if len(fields) > 1 and fields[1] else None
    receipt = fields[2].decode("ascii", "replace") if len(fields) > 2 and fields[2] else None
    return Notice(message_id, fields[0] != BINARY, receipt)


def unwrap_legacy(data: bytes) -> tuple[str | None, str | None, bytes]:
    """Returns (id, receipt id, message) of a payload from a publisher of 0.2.0 or earlier, which
    put them in the payload; any other payload comes back whole with (None, None)."""
    message_id = receipt = None
    if data.startswith(_LEGACY_ID):
        header, _, data = data[len(_LEGACY_ID):].partition(b"\x00")
        message_id = header.decode("ascii", "replace")
    if data.startswith(_LEGACY_RECEIPT):
        header, _, data = data[len(_LEGACY_RECEIPT):].partition(b"\x00")
        receipt = header.decode("ascii", "replace")
    return message_id, receipt, data


# -- Redis: persisted messages and history entries ------------------------------------------------

def binary_marker_key(prefix: str, channel: str) -> str:
    """The key that says ``channel``'s persisted message is binary although it is UTF-8."""
    return tagged(f"{prefix}{_BINARY_MARKER}", channel)


def binary_marker(message: bytes, text: bool) -> bytes | None:
    """The value to store beside a persisted message whose opcode :func:`is_text` would get
    wrong (binary, yet UTF-8), or None when none is needed."""
    if text or not is_text(message):
        return None
    return hashlib.sha1(message).hexdigest().encode("ascii")


def persisted_is_text(message: bytes, marker: bytes | None) -> bool:
    """Whether a persisted message goes out as text, given the binary marker read beside it."""
    if marker is not None and marker == hashlib.sha1(message).hexdigest().encode("ascii"):
        return False
    return is_text(message)


def entry_is_text(opcode: bytes, message: bytes) -> bool:
    """Whether a history entry goes out as text, given its stored opcode (empty in entries
    written before opcodes were stored)."""
    return opcode == TEXT or (opcode != BINARY and is_text(message))


# -- sockets with ``ids``: the header line ----------------------------------------------------------

def frame(message_id: str | None, data: bytes) -> bytes:
    """Returns ``<id>\\n<data>``, as a socket with ids gets each message."""
    return (message_id or "").encode("ascii") + b"\n" + data


def position_marker(position: str, gap: bool) -> bytes:
    """Returns ``@<id>\\n`` (``@<id> gap\\n`` if messages after the socket's last id are lost)."""
    return f"@{position}{' gap' if gap else ''}\n".encode("ascii")


class Frame(NamedTuple):
    """A frame of a socket with ids: a message (``position`` False) with its id (None if it had
    none), or a position marker (``data`` empty) with ``gap``."""

    message_id: str | None
    data: bytes
    position: bool = False
    gap: bool = False


def parse_frame(data: bytes) -> Frame:
    """Parses a frame of a socket with ids as the JavaScript client does; raises ValueError if it
    has no header line or a header that is neither empty, an id, nor a marker."""
    header, newline, message = data.partition(b"\n")
    if not newline or len(header) > 48:
        raise ValueError(f"a frame starts with '<id>\\n' or '@<id>\\n': {data[:60]!r}")
    text = header.decode("ascii", "replace")
    if not text:
        return Frame(None, message)
    position, gap = text.startswith("@"), text.endswith(" gap")
    message_id = text[1 if position else 0:len(text) - (4 if gap else 0)]
    if gap and not position:
        raise ValueError(f"only a position marker says gap: {text!r}")
    parse_id(message_id)
    return Frame(message_id, message, position, gap)
