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
- On a Redis Cluster, where each channel has its own ids (its shard's clock), a socket with ids on
  several channels gets their messages in id order across channels: each waits ``order_delay``
  after the time in its id, then goes out in id order (equal ids by channel name), and the ids
  it sees tell the channels apart (``TIE_BASE``). So the newest id the socket has says which
  messages of every channel it has (when each message reaches the hub within ``order_delay`` of
  its id's time: clock skew plus delivery), and resuming from it misses nothing and repeats
  nothing. A message later than that goes out at once. Replayed live messages are dropped per
  channel, up to what the replay read from that channel's stream.
"""
from __future__ import annotations

import heapq
import itertools
from typing import TYPE_CHECKING

from . import wire
from .protocol import Protocol

if TYPE_CHECKING:
    from .history import Replay

# Bytes counted per replayed message beside its payload when fitting a replay to the outbox.
ENTRY_OVERHEAD = 32
# Seconds a message of a socket on several channels of a Redis Cluster waits after its id's time
# before it goes out in id order (see above): clock skew between the shards plus delivery.
CLUSTER_ORDER_DELAY = 0.05

# A socket ordered that way sees each id as ``<ms>-<sequence × TIE_BASE + i>``, ``i`` the index of
# the message's channel among the socket's sorted channels: messages of two channels with the same
# id (two shard clocks in one millisecond) then have distinct ids in the order they went out, and
# the id the socket resumes from says which of them it has (see :func:`resume_start`).
TIE_BASE = 1024

_ties = itertools.count()


def resume_start(start: str, channels: list[str]) -> tuple[str, set[str]]:
    """The id a socket ordered across channels resumes from (as it saw it, see TIE_BASE), as the
    channels' own id and the channels (of ``channels``, sorted as the socket's) whose message
    with exactly that id it has not had yet (their replay includes it)."""
    milliseconds, sequence = wire.parse_id(start)
    if sequence >= 2 ** 64 - 1:  # a cut position: every channel has all up to it
        return start, set()
    sequence, index = divmod(sequence, TIE_BASE)
    return f"{milliseconds}-{sequence}", set(sorted(channels)[index + 1:])


class Delivery:
    """The delivery rules of one socket. ``deliver`` and ``send`` return False when the message
    overflowed the outbox (the protocol is closing with 4000): the caller stops deliveries."""

    # One per socket: no __dict__.
    __slots__ = ("echo", "floor", "floors", "history", "holding", "ids", "index", "last_received",
                 "order_delay", "position", "protocol", "released", "resume_from", "waiting")

    def __init__(self, protocol: Protocol, *, echo: bool = True, history: bool = False, ids: bool = False,
                 resume_from: str | None = None, order_delay: float = 0, channels: list[str] = ()) -> None:  # type: ignore[assignment]
        """``order_delay`` (seconds, > 0 on a Redis Cluster for a socket with ids on several
        ``channels``): messages with ids go out in id order, each ``order_delay`` after its id's
        time, with ids told apart by channel (TIE_BASE)."""
        self.protocol = protocol
        self.echo = echo
        self.last_received: bytes | None = None  # the socket's last published message
        self.history = history
        self.ids = ids and history
        self.resume_from = resume_from if history else None
        self.position: str | None = None  # newest id queued, or covered by a replay
        self.floor: tuple[int, int] | None = None  # live messages up to this id were replayed
        # (cleared by the first live message past it: the hub delivers ids in increasing order)
        self.floors: dict[str, tuple[int, int]] = {}  # Redis Cluster: the floor of each channel
        self.holding: list[tuple[bytes, bool, str | None, str | None]] | None = None  # live ones during a replay
        self.order_delay = order_delay if self.ids and 1 < len(channels) <= TIE_BASE else 0
        self.index = {channel: i for i, channel in enumerate(sorted(channels))} if self.order_delay else {}
        # With order_delay: messages waiting for their turn, by id then channel name (see
        # TIE_BASE; a counter keeps the heap from comparing payloads), and the newest id sent.
        self.waiting: list[tuple[tuple[int, int], str, int, bytes, bool, str, str | None]] = []
        self.released: tuple[int, int] | None = None

    @property
    def needs_start(self) -> bool:
        """True if the socket must get every message after a position: the one it resumes from,
        or (with ids) the history's current one, which the adapter reads before subscribing."""
        return self.history and (self.ids or self.resume_from is not None)

    def deliver(self, data: bytes, text: bool, message_id: str | None = None, channel: str | None = None) -> bool:
        """A message from the hub (on ``channel``)."""
        if not self.echo and data == self.last_received:
            return True
        holding = self.holding
        if holding is not None:  # a replay is under way: live messages wait for it
            holding.append((data, text, message_id, channel))
            if len(holding) > self.protocol.max_messages:
                self.holding = None
                return self.protocol.overflow(dropped=len(holding))
            return True
        if message_id is not None and self.order_delay:
            parsed = wire.parse_id(message_id)
            if self.released is None or parsed > self.released:
                heapq.heappush(self.waiting, (parsed, channel or "", next(_ties), data, text, message_id, channel))
                if len(self.waiting) > self.protocol.max_messages:
                    dropped, self.waiting = len(self.waiting), []
                    return self.protocol.overflow(dropped=dropped)
                return True
            # Later than order_delay: a newer id has gone out already; this one goes at once.
        return self._send_live(data, text, message_id, channel)

    def _send_live(self, data: bytes, text: bool, message_id: str | None, channel: str | None) -> bool:
        if message_id is not None:
            floor = self.floors.get(channel, self.floor) if self.floors and channel is not None else self.floor
            if floor is not None:
                parsed = wire.parse_id(message_id)
                if parsed <= floor:
                    return True  # a replay has sent it already
                if not self.order_delay and not self.floors:
                    self.floor = None  # ids only grow from here on: no need to compare again
            if self.position is None or not self.order_delay or \
                    wire.parse_id(message_id) > wire.parse_id(self.position):
                self.position = message_id
        return self.send(data, text, message_id, channel)

    def due_in(self, now: float) -> float | None:
        """Seconds (from ``now``, a Unix time) until the next waiting message may go out; None if
        none waits."""
        if not self.waiting:
            return None
        return max(0.0, self.waiting[0][0][0] / 1000 + self.order_delay - now)

    def release_due(self, now: float) -> bool:
        """Sends, in id order, the waiting messages whose turn has come at ``now`` (Unix time).
        Returns False on overflow."""
        waiting, ok = self.waiting, True
        limit = (now - self.order_delay) * 1000
        while waiting and waiting[0][0][0] <= limit:
            parsed, _, _, data, text, message_id, channel = heapq.heappop(waiting)
            self.released = parsed
            ok = self._send_live(data, text, message_id, channel) and ok
        return ok

    def send(self, data: bytes, text: bool, message_id: str | None = None, channel: str | None = None) -> bool:
        """A message for the peer (with ids, framed with ``message_id``)."""
        if self.ids:
            index = self.index.get(channel) if self.index and message_id and channel is not None else None
            if index is not None:
                milliseconds, sequence = wire.parse_id(message_id)  # type: ignore[arg-type]
                message_id = f"{milliseconds}-{sequence * TIE_BASE + index}"
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
        live = self.protocol.queued() | {data for data, _, _, _ in self.holding or ()}
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
        for channel, value in found.floors.items():
            channel_floor = wire.parse_id(value)
            if channel not in self.floors or channel_floor > self.floors[channel]:
                self.floors[channel] = channel_floor
        if self.order_delay and (self.released is None or floor > self.released):
            self.released = floor  # the marker says it has all up to there: anything below goes at once
        if self.position is None or floor > wire.parse_id(self.position):
            self.position = found.position  # never backwards (a Redis that lost its data says 0-0)
        ok = True
        for message_id, channel, data, text in reversed(kept):
            ok = self.send(data, text, message_id, channel) and ok
        if self.ids:
            ok = self.protocol.send(wire.position_marker(found.position, gap), True) and ok
        return self.release(held) and ok

    def release(self, held: list[tuple[bytes, bool, str | None, str | None]] | None = None) -> bool:
        """Delivers the live messages held during a replay (all of them if it failed)."""
        if held is None:
            held = self.holding or []
        self.holding = None
        ok = True
        for data, text, message_id, channel in held:
            ok = self.deliver(data, text, message_id, channel) and ok
        return ok
