"""The loop of one socket: outbox, inbound messages, heartbeats, close codes.

It runs in the request's greenlet (uWSGI requires ``websocket_*`` calls there) and sleeps on one
Event, set by the transport's readability watcher, by the hub's deliveries and by sends from any
greenlet. Each wake-up sends everything queued, then reads every complete inbound message. It
wakes at least every ``WS4REDIS_WAKE_INTERVAL`` so the server's pings keep flowing.
"""
from __future__ import annotations

import logging
from collections import deque
from typing import Protocol, cast

import gevent
import redis
from gevent.event import Event

from . import history, wire
from .codes import CloseCode
from .conf import Settings
from .hub import Hub
from .metrics import CLOSE_COUNTERS, STATS
from .redis_client import get_redis
from .security import RateLimit
from .transports import ConnectionClosed, Transport

logger = logging.getLogger("ws4redis_server.connection")

# Close codes (RFC 6455 section 7.4.1; SLOW_CONSUMER is private use: the outbox overflowed).
NORMAL, GOING_AWAY, PROTOCOL_ERROR, INVALID_DATA, POLICY, TOO_BIG, INTERNAL, TRY_AGAIN, SLOW_CONSUMER = (
    CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY, CloseCode.PROTOCOL_ERROR, CloseCode.INVALID_DATA,
    CloseCode.POLICY_VIOLATION, CloseCode.MESSAGE_TOO_BIG, CloseCode.INTERNAL_ERROR, CloseCode.TRY_AGAIN_LATER,
    CloseCode.SLOW_CONSUMER)
# Seconds a socket closed for overflow may take to finish its last send before it is cut.
ABORT_GRACE = 5.0
# Seconds between attempts to catch up after a hub outage while Redis is still unsteady.
RESYNC_RETRY = 0.5
# Codes a transport reports when it refuses the peer's data: the server closes with them.
_SERVER_CODES = {PROTOCOL_ERROR, INVALID_DATA, TOO_BIG, POLICY}


class Application(Protocol):
    """What consumes a socket's inbound messages: the pub/sub relay or a ``@websocket`` handler."""

    def start(self, connection: Connection) -> None: ...

    def on_message(self, connection: Connection, data: bytes) -> None: ...

    def stop(self, connection: Connection) -> None: ...


class Connection:
    """One socket. ``deliver`` and ``send`` may be called from any greenlet; ``run`` owns I/O."""

    def __init__(self, transport: Transport, hub: Hub, settings: Settings, app: Application,
                 subscribe: list[str] = (), echo: bool = True,  # type: ignore[assignment]
                 ids: bool = False, resume_from: str | None = None) -> None:
        self.transport = transport
        self.hub = hub
        self.settings = settings
        self.app = app
        self.initial_channels = list(subscribe)
        self.channels: set[str] = set()
        self.echo = echo
        self.last_received: bytes | None = None
        self.outbox: deque[tuple[bytes, bool]] = deque()
        self.outbox_bytes = 0
        self.max_messages = settings.outbox_messages
        self.max_bytes = settings.outbox_bytes
        self.rate_limit = RateLimit(settings.rate_limit, settings.rate_burst) if settings.rate_limit else None
        self.finished = False
        self.wakeup = Event()
        self.readable = False
        self.ticked = False
        self.open = False
        self.close_code: int | None = None
        self.close_reason = ""
        self._heartbeat = settings.heartbeat.encode("utf-8") if settings.heartbeat else None
        # Message history (see history.py): a socket with ``ids`` gets each message as
        # ``<id>\n<message>`` and position markers ``@<id>\n``; ``resume_from`` replays what it
        # missed after that id. Every pub/sub socket catches up after a hub outage.
        self.history = bool(self.initial_channels) and settings.history_length > 0
        self.ids = ids and self.history
        self.resume_from = resume_from if self.history else None
        self.position: str | None = None  # newest id queued, or covered by a replay
        self.floor: tuple[int, int] | None = None  # live messages up to this id were replayed
        # (cleared by the first live message past it: the hub delivers ids in increasing order)
        self.holding: list[tuple[bytes, bool, str | None]] | None = None  # live ones during a replay
        self._resyncing: gevent.Greenlet | None = None

    # -- called from anywhere ------------------------------------------------------------------

    def deliver(self, channel: str, data: bytes, text: bool, message_id: str | None = None) -> None:
        """Queues a message from Redis. Without the echo flag, a message equal to the last one
        this socket sent is not sent back to it (django-websocket-redis's rule)."""
        if not self.echo and data == self.last_received:
            return
        holding = self.holding
        if holding is not None:  # a replay is under way: live messages wait for it
            holding.append((data, text, message_id))
            if len(holding) > self.max_messages:
                self._overflow()
            return
        if message_id is not None:
            if self.floor is not None:
                if wire.parse_id(message_id) <= self.floor:
                    return  # a replay has sent it already
                self.floor = None  # ids only grow from here on: no need to compare again
            self.position = message_id
        if self.ids:
            data = wire.frame(message_id, data)
        self._enqueue(data, text)

    def send(self, message: str | bytes) -> None:
        """Queues ``message`` (str as text, bytes as binary); a no-op once the socket is closed."""
        if self.close_code is not None:
            return
        data, text = (message.encode("utf-8"), True) if isinstance(message, str) else (bytes(message), False)
        if self.ids:
            data = wire.frame(None, data)
        self._enqueue(data, text)

    def _enqueue(self, data: bytes, text: bool) -> None:
        if self.outbox and (len(self.outbox) >= self.max_messages
                            or self.outbox_bytes + len(data) > self.max_bytes):
            self._overflow()
            return
        self.outbox.append((data, text))
        self.outbox_bytes += len(data)
        self.wakeup.set()

    def close(self, code: int = NORMAL, reason: str = "") -> None:
        """Asks the loop to close the socket with ``code`` after sending what is queued."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self.wakeup.set()

    def _overflow(self) -> None:
        """The peer reads slower than messages come: drop its outbox, stop its deliveries and
        close it, so it holds no more memory than one message being sent. A send blocked on
        the full socket is cut after ABORT_GRACE seconds."""
        STATS["dropped_messages"] += len(self.outbox) + len(self.holding or ())
        self.outbox.clear()
        self.outbox_bytes = 0
        self.holding = None
        for channel in list(self.channels):
            self.unsubscribe(channel)
        if self.close_code is None:
            logger.info("closing a slow consumer: over %d messages or %d bytes queued",
                        self.max_messages, self.max_bytes)
        self.close(SLOW_CONSUMER, "slow consumer: outbox full")
        gevent.spawn_later(ABORT_GRACE, self._abort)

    def _abort(self) -> None:
        if not self.finished:
            self.transport.abort()

    def subscribe(self, channel: str) -> None:
        if channel not in self.channels:
            self.channels.add(channel)
            self.hub.subscribe(channel, self)

    def unsubscribe(self, channel: str) -> None:
        if channel in self.channels:
            self.channels.discard(channel)
            self.hub.unsubscribe(channel, self)

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> None:
        """Completes the handshake and serves the socket until either side closes it."""
        transport = self.transport
        start = self._start_position()
        for channel in self.initial_channels:
            self.subscribe(channel)
        try:
            self.hub.wait_subscribed(self.initial_channels, self.settings.subscribe_timeout)
            transport.accept()
            self.open = True
            STATS["sockets_open"] += 1
            STATS["sockets_accepted"] += 1
            transport.watch(self._on_readable)
            if self.resume_from is None:
                self._replay_persisted()
            if start is not None:
                self._catch_up(start)
            self.app.start(self)
            self._serve()
        except ConnectionClosed as exc:
            if exc.code in _SERVER_CODES:
                self.close(exc.code, exc.reason)
            elif self.close_code is None:
                self.close_code, self.close_reason = exc.code, exc.reason
        except Exception:
            logger.exception("WebSocket loop failed")
            self.close(INTERNAL, "internal error")
        finally:
            if self.open:
                STATS["sockets_open"] -= 1
            self.open = False
            for channel in list(self.channels):
                self.unsubscribe(channel)
            self.app.stop(self)
            if self.close_code is None:
                self.close_code = GOING_AWAY
            counter = CLOSE_COUNTERS.get(self.close_code)
            if counter is not None:
                STATS[counter] += 1
            self.outbox.clear()
            transport.close(self.close_code, self.close_reason)
            self.finished = True

    def _on_readable(self) -> None:
        self.readable = True
        self.wakeup.set()

    def _on_tick(self) -> None:
        self.ticked = True
        self.wakeup.set()

    def _serve(self) -> None:
        """Sleeps on the wakeup Event. One repeating timer per socket (not a timeout on each
        wait, which costs a timer start and cancel per wake-up) marks the wake intervals; an
        interval without any wake-up makes the socket read and ping (keepalive)."""
        interval = self.settings.wake_interval
        timer = gevent.get_hub().loop.timer(interval, interval)
        timer.start(self._on_tick)
        busy = False
        try:
            while True:
                self.wakeup.wait()
                self.wakeup.clear()
                self._flush()
                if self.close_code is not None:
                    return
                idle = False
                if self.ticked:
                    self.ticked = False
                    idle, busy = not busy, False
                else:
                    busy = True
                if self.readable or idle:
                    self.readable = False
                    self._read_all()
                    if idle:
                        self.transport.keepalive()
                    self._flush()
        finally:
            timer.stop()
            timer.close()

    def _flush(self) -> None:
        outbox, send = self.outbox, self.transport.send
        queued = len(outbox)
        if queued > STATS["outbox_high_water"]:
            STATS["outbox_high_water"] = queued
        sent = 0
        try:
            while outbox:
                data, text = outbox.popleft()
                self.outbox_bytes -= len(data)
                send(data, text)
                sent += 1
        finally:
            STATS["messages_sent"] += sent

    def _read_all(self) -> None:
        recv = self.transport.recv_nowait
        limit = self.settings.max_message_size
        rate_limit = self.rate_limit
        while self.close_code is None:
            data = recv()
            if data is None:
                return
            if len(data) > limit:
                self.close(TOO_BIG, f"message over {limit} bytes")
                return
            STATS["messages_received"] += 1
            if rate_limit is not None and not rate_limit.allow():
                self.close(POLICY, f"over {rate_limit.rate:g} messages per second")
                return
            if self._heartbeat is not None and data == self._heartbeat:
                self.send(data.decode("utf-8"))
                continue
            self.app.on_message(self, data)

    def _replay_persisted(self) -> None:
        """Sends the last persisted message of each subscribed channel (ws4redis's replay). In
        the same round trip, notes the history's position: after a hub outage the socket catches
        up from there (or from the last id it got)."""
        persist, locate = self.settings.expire > 0, self.history and self.position is None
        if not self.initial_channels or not (persist or locate):
            return
        prefix = self.settings.prefix
        try:
            with get_redis().pipeline(transaction=False) as pipe:
                if persist:
                    pipe.mget(self.initial_channels)
                    pipe.mget([wire.binary_marker_key(prefix, channel) for channel in self.initial_channels])
                if locate:
                    pipe.get(history.sequence_key(self.settings.prefix))
                replies = pipe.execute()
        except Exception as exc:  # Redis down: the socket still serves live messages later
            logger.debug("persisted messages unavailable: %s", exc)
            return
        if locate:
            position = replies.pop()
            if position and self.position is None:  # a live message may have set it meanwhile
                self.position = position.decode("ascii")
        if not persist:
            return
        values = cast("list[bytes | None]", replies[0])
        markers = cast("list[bytes | None]", replies[1])
        # A message published between the subscription and MGET is already queued live.
        live = {data for data, _ in self.outbox} | {data for data, _, _ in self.holding or ()}
        persisted = [(wire.frame(None, value) if self.ids else value, wire.persisted_is_text(value, marker))
                     for value, marker in zip(values, markers, strict=True)
                     if value is not None and value not in live]
        self.outbox_bytes += sum(len(value) for value, _ in persisted)
        # Older than anything that arrived live since the subscription: send them first.
        self.outbox.extendleft(reversed(persisted))
        if persisted:
            self.wakeup.set()

    # -- catching up from the channels' histories --------------------------------------------

    def _start_position(self) -> str | None:
        """Returns the id after which this socket must get every message: the one it resumes
        from, or (with ids) the current position read before subscribing; None for none. Live
        messages are held from now until the replay is queued."""
        if not self.history or not (self.ids or self.resume_from):
            return None
        start = self.resume_from
        if start is None:
            try:
                start = history.position(get_redis(), self.settings.prefix)
            except redis.RedisError as exc:  # Redis down: live messages only, once it is back
                logger.debug("no history position: %s", exc)
                return None
        self.holding = []
        self.position = start  # what it has, or will have once the replay is queued
        return start

    def resync(self) -> None:
        """Called by the hub when it has reconnected after an outage: catches up on what was
        published meanwhile (the hub calls it before reading the new connection)."""
        if not self.history or not self.open or self.close_code is not None:
            return
        if self._resyncing is not None and not self._resyncing.dead:
            return  # already catching up: it retries until the hub stays connected
        start = self.position or self.hub.last_id
        if start is None:
            return
        if self.holding is None:
            self.holding = []
        self._resyncing = gevent.spawn(self._resync, start)

    def _resync(self, start: str) -> None:
        while self.close_code is None and self.holding is not None:
            if self.hub.wait_subscribed(list(self.channels), self.settings.subscribe_timeout) \
                    and self._catch_up(start, retry=True):
                return
            gevent.sleep(RESYNC_RETRY)  # Redis went away again: wait for the next reconnection

    def _catch_up(self, start: str, retry: bool = False) -> bool:
        """Queues the messages of this socket's channels after ``start`` (oldest first), then the
        live messages held meanwhile that are newer, and with ids the position marker
        ``@<id>\n`` (``@<id> gap\n`` if some messages after ``start`` are no longer kept)."""
        settings = self.settings
        try:
            found = history.replay(get_redis(), settings.prefix, sorted(self.channels), start,
                                   settings.history_seconds)
        except redis.RedisError as exc:
            if retry:
                return False
            logger.warning("cannot replay missed messages: %s", exc)
            self._release(self.holding or [])
            return False
        held = self.holding or []
        entries, gap = found.entries, found.gap
        room = self.max_messages - len(self.outbox) - len(held) - 1
        size = self.max_bytes - self.outbox_bytes
        kept: list[tuple[str, str, bytes, bool]] = []
        for entry in reversed(entries):  # the newest that fit in the outbox
            size -= len(entry[2]) + 32
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
        for message_id, _, data, text in reversed(kept):
            self._enqueue(wire.frame(message_id, data) if self.ids else data, text)
        if self.ids:
            self._enqueue(wire.position_marker(found.position, gap), True)
        elif gap:  # per socket: debug only (after a Redis restart every socket has one)
            logger.debug("a socket missed messages older than the history window")
        self._release(held)
        return True

    def _release(self, held: list[tuple[bytes, bool, str | None]]) -> None:
        """Delivers the live messages held during a replay (those it did not cover)."""
        self.holding = None
        for data, text, message_id in held:
            self.deliver("", data, text, message_id)
