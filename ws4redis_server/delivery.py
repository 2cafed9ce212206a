"""What reaches one socket from Redis, in order and once: the echo rule, ids, and the replays.

Pure logic over a socket's :class:`~ws4redis_server.protocol.Protocol`, no I/O: what needs Redis
(the history's position, the persisted messages, a replay) is read by the adapter
(``connection.py``) and handed in. The rules (see README, "Nothing missed across a reconnect"):

- Without ``echo``, a message equal to the last one the socket published is not sent back.
- With ``ids``, each message goes out as ``<id>\\n<message>`` and a replay ends with the position
  marker ``@<id>\\n`` (``@<id> gap\\n`` when some messages after the start are no longer kept).
- While a replay is being read, live messages are held; afterwards those the replay covered (ids
  up to its position) are dropped and the others follow it. A replay that does not fit the
  outbox keeps the newest messages and says ``gap``.
- Persisted messages (ws4redis's replay on connect) go out before anything that arrived live,
  unless the same bytes arrived live already.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from . import wire
from .protocol import Protocol

if TYPE_CHECKING:
    from .history import Replay

# Bytes counted per replayed message beside its payload when fitting a replay to the outbox.
ENTRY_OVERHEAD = 32


class Delivery:
    """The delivery rules of one socket. ``deliver`` and ``send`` return False when the message
    overflowed the outbox (the protocol is closing with 4000): the caller stops deliveries."""

    __slots__ = ("echo", "floor", "history", "holding", "ids", "last_received", "position", "protocol",
                 "resume_from")  # one per socket: no __dict__

    def __init__(self, protocol: Protocol, *, echo: bool = True, history: bool = False, ids: bool = False,
                 resume_from: str | None = None) -> None:
        self.protocol = protocol
        self.echo = echo
        self.last_received: bytes | None = None  # the socket's last published message
        self.history = history
        self.ids = ids and history
        self.resume_from = resume_from if history else None
        self.position: str | None = None  # newest id queued, or covered by a replay
        self.floor: tuple[int, int] | None = None  # live messages up to this id were replayed
        # (cleared by the first live message past it: the hub delivers ids in increasing order)
        self.holding: list[tuple[bytes, bool, str | None]] | None = None  # live ones during a replay

    @property
    def needs_start(self) -> bool:
        """True if the socket must get every message after a position: the one it resumes from,
        or (with ids) the history's current one, which the adapter reads before subscribing."""
        return self.history and (self.ids or self.resume_from is not None)

    def deliver(self, data: bytes, text: bool, message_id: str | None = None) -> bool:
        """A message from the hub."""
        if not self.echo and data == self.last_received:
            return True
        holding = self.holding
        if holding is not None:  # a replay is under way: live messages wait for it
            holding.append((data, text, message_id))
            if len(holding) > self.protocol.max_messages:
                self.holding = None
                return self.protocol.overflow(dropped=len(holding))
            return True
        if message_id is not None:
            if self.floor is not None:
                if wire.parse_id(message_id) <= self.floor:
                    return True  # a replay has sent it already
                self.floor = None  # ids only grow from here on: no need to compare again
            self.position = message_id
        return self.send(data, text, message_id)

    def send(self, data: bytes, text: bool, message_id: str | None = None) -> bool:
        """A message for the peer (with ids, framed with ``message_id``)."""
        if self.ids:
            data = wire.frame(message_id, data)
        return self.protocol.send(data, text)

    # -- replays -------------------------------------------------------------------------------

    def begin(self, start: str) -> None:
        """Holds live messages from now until the replay after ``start`` is queued."""
        self.holding = []
        self.position = start  # what it has, or will have once the replay is queued

    def resync_start(self, hub_last_id: str | None) -> str | None:
        """The hub reconnected after an outage: returns the id to catch up from (None: nothing
        to do) and holds live messages until :meth:`caught_up` or :meth:`release`."""
        if not self.history:
            return None
        start = self.position or hub_last_id
        if start is None:
            return None
        if self.holding is None:
            self.holding = []
        return start

    def located(self, position: str | None) -> None:
        """The history's position when the socket connected: after an outage it catches up from
        there (or from the last id it got)."""
        if position and self.position is None:  # a live message may have set it meanwhile
            self.position = position

    def persisted(self, values: list[bytes | None], markers: list[bytes | None]) -> None:
        """Queues the persisted message of each channel first (those not already queued live)."""
        live = self.protocol.queued() | {data for data, _, _ in self.holding or ()}
        messages = [(wire.frame(None, value) if self.ids else value, wire.persisted_is_text(value, marker))
                    for value, marker in zip(values, markers, strict=True)
                    if value is not None and value not in live]
        self.protocol.send_first(messages)

    def caught_up(self, found: Replay) -> bool:
        """Queues the replay (the newest entries that fit), then with ids the position marker,
        then the held live messages it did not cover. Returns False on overflow."""
        held = self.holding or []
        entries, gap = found.entries, found.gap
        messages, size = self.protocol.room()
        room = messages - len(held) - 1
        kept: list[tuple[str, str, bytes, bool]] = []
        for entry in reversed(entries):  # the newest that fit in the outbox
            size -= len(entry[2]) + ENTRY_OVERHEAD
            if len(kept) >= room or size < 0:
                gap = True
                break
            kept.append(entry)
        self.holding = None
        floor = wire.parse_id(found.position)
        if self.floor is None or floor > self.floor:
            self.floor = floor
        if self.position is None or floor > wire.parse_id(self.position):
            self.position = found.position  # never backwards (a Redis that lost its data says 0-0)
        ok = True
        for message_id, _, data, text in reversed(kept):
            ok = self.send(data, text, message_id) and ok
        if self.ids:
            ok = self.protocol.send(wire.position_marker(found.position, gap), True) and ok
        return self.release(held) and ok

    def release(self, held: list[tuple[bytes, bool, str | None]] | None = None) -> bool:
        """Delivers the live messages held during a replay (all of them if it failed)."""
        if held is None:
            held = self.holding or []
        self.holding = None
        ok = True
        for data, text, message_id in held:
            ok = self.deliver(data, text, message_id) and ok
        return ok
