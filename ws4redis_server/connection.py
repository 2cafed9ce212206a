"""One socket, served from the gevent loop's callbacks: moves bytes between its transport and its
protocol core, and does what the core cannot do without I/O (Redis, the hub, timers, the
application's greenlets).

The handshake runs in the request's greenlet (uWSGI requires its ``websocket_*`` calls there).
Once the socket is open, no greenlet is kept for it: the transport detaches from the request (under
uWSGI the request ends, freeing its async core, its buffers and the WSGI environ; the socket's
descriptor stays ours), and the socket is served by callbacks that never block: its readability
watcher, the hub's deliveries and sends from any greenlet (one step per socket per pass of the
loop, so a burst is one write), and one keepalive timer for the whole process
(``WS4REDIS_WAKE_INTERVAL``: the core's tick). A step reads what is there, writes what is queued
as far as the socket takes it (a write watcher waits for room), and hands whole inbound messages
to the application in a short-lived greenlet, since that may block (publishing to Redis, a
handler's queue). An idle socket costs its Python objects and one watcher. The rules themselves
(frames, close codes, the outbox bound, replays) are in ``protocol.py`` and ``delivery.py``.

Closing runs in a greenlet of its own: when the peer closes or breaks a rule, the application
first handles every message that came before (a handler gets them from ``recv()`` and may still
answer); then the close frame goes out after everything queued; then, unless the peer's close
frame came first, it reads (and drops) until it comes or ``CLOSE_TIMEOUT`` passes; then TCP is
closed, with nothing left unread.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, cast
from typing import Protocol as Interface

import gevent
import redis
from gevent.event import Event

from . import history, wire
from .codes import CloseCode
from .compression import Deflate
from .conf import Settings
from .delivery import CLUSTER_ORDER_DELAY, Delivery, resume_start
from .hub import Hub
from .metrics import CLOSE_COUNTERS, STATS
from .protocol import Protocol, State
from .redis_client import get_redis
from .transports import ConnectionClosed, Transport

logger = logging.getLogger("ws4redis_server.connection")

# Close codes by their old names (handlers import them from here).
NORMAL, GOING_AWAY, PROTOCOL_ERROR, INVALID_DATA, POLICY, TOO_BIG, INTERNAL, TRY_AGAIN, SLOW_CONSUMER = (
    CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY, CloseCode.PROTOCOL_ERROR, CloseCode.INVALID_DATA,
    CloseCode.POLICY_VIOLATION, CloseCode.MESSAGE_TOO_BIG, CloseCode.INTERNAL_ERROR, CloseCode.TRY_AGAIN_LATER,
    CloseCode.SLOW_CONSUMER)
# Seconds a socket closed for overflow may take to finish its last write before it is cut.
ABORT_GRACE = 5.0
# Seconds between attempts to catch up after a hub outage while Redis is still unsteady.
RESYNC_RETRY = 0.5
# Seconds a write may wait for room in the socket before the peer counts as gone.
WRITE_TIMEOUT = 30.0
# Seconds the closing handshake may take: the last writes, then the peer's close frame.
CLOSE_TIMEOUT = 5.0


class Application(Interface):
    """What consumes a socket's inbound messages: the pub/sub relay or a ``@websocket`` handler.
    A text message is bytes, a binary one a ``BinaryMessage``. ``stop`` returns once the
    application has handled every message it was given (or given up). ``blocking``: whether
    ``on_message`` may block (it is then called from a greenlet, else from the loop itself)."""

    blocking: bool

    def start(self, connection: Connection) -> None: ...

    def on_message(self, connection: Connection, data: bytes) -> None: ...

    def stop(self, connection: Connection) -> None: ...


class Connection:
    """One socket. ``deliver``, ``send`` and ``close`` may be called from any greenlet (the hub's
    included); ``run`` does the handshake, then the socket is served from the loop's callbacks."""

    __slots__ = ("_blocked_since", "_dispatcher", "_done", "_fresh", "_inclusive", "_order_timer",
                 "_overflowed", "_resyncing", "_scheduled", "_serving", "_stopped", "_unsent", "_writable", "app",
                 "channels", "delivery", "extensions", "finished", "hub", "initial_channels", "on_finished", "open",
                 "protocol", "readable", "settings", "transport")  # one per socket: no __dict__

    def __init__(self, transport: Transport, hub: Hub, settings: Settings, app: Application,
                 subscribe: list[str] = (), echo: bool = True,  # type: ignore[assignment]
                 ids: bool = False, resume_from: str | None = None,
                 compression: tuple[str, Deflate] | None = None, idle_heartbeat: bool = False) -> None:
        """``compression``: the ``Sec-WebSocket-Extensions`` answer and the socket's
        permessage-deflate, when negotiated (``compression.negotiate``); ``idle_heartbeat``: send
        WS4REDIS_HEARTBEAT when the socket was sent nothing for a wake interval."""
        self.transport = transport
        self.hub = hub
        self.settings = settings
        self.app = app
        self.initial_channels = list(subscribe)
        self.channels: set[str] = set()
        history_on = bool(self.initial_channels) and settings.history_length > 0
        self.protocol = Protocol(settings.max_message_size, settings.outbox_messages, settings.outbox_bytes,
                                 settings.rate_limit, settings.rate_burst, settings.heartbeat,
                                 ids=ids and history_on, idle_heartbeat=idle_heartbeat, stats=STATS,
                                 deflate=compression[1] if compression else None)
        self.extensions = compression[0] if compression else None
        # Message history (see delivery.py): a socket with ``ids`` gets each message as
        # ``<id>\n<message>`` and position markers; ``resume_from`` replays what it missed.
        # On a Redis Cluster each channel has its own ids: a socket on several gets them in id
        # order across channels, so that its newest id is a position to resume from.
        order_delay = (CLUSTER_ORDER_DELAY if ids and history_on and len(self.initial_channels) > 1
                       and history.is_cluster(get_redis()) else 0)
        self.delivery = Delivery(self.protocol, echo=echo, history=history_on, ids=ids, resume_from=resume_from,
                                 order_delay=order_delay, channels=self.initial_channels)
        self._order_timer: Any = None  # armed while messages wait for their turn (order_delay)
        self._inclusive: set[str] = set()  # channels whose first replay includes its start id
        self.finished = False
        self.open = False
        # Called once the socket is over (the server's bookkeeping).
        self.on_finished: Callable[[Connection], None] | None = None
        self.readable = False
        self._serving = False  # the handshake is done and the callbacks serve the socket
        self._fresh = True  # not ticked yet: its first tick is a whole wake interval after it opened
        self._scheduled = False  # a step is due (queued in _due)
        self._unsent = b""  # the rest of a frame the socket had no room for
        self._writable: Any = None  # the write watcher, while _unsent waits for room
        self._blocked_since = 0.0
        self._dispatcher: gevent.Greenlet | None = None  # hands inbound messages to the app
        self._done: Event | None = None  # made by wait()
        self._stopped = False
        self._overflowed = False
        self._resyncing: gevent.Greenlet | None = None

    @property
    def close_code(self) -> int | None:
        """The code the socket closes with, once it is closing."""
        ending = self.protocol.ending
        return ending[0] if ending is not None else None

    @property
    def close_reason(self) -> str:
        ending = self.protocol.ending
        return ending[1] if ending is not None else ""

    # -- called from anywhere ------------------------------------------------------------------

    def deliver(self, channel: str, data: bytes, text: bool, message_id: str | None = None) -> None:
        """Queues a message from Redis (the hub's Listener interface). The socket writes it with
        whatever else came in the same pass of the loop: one write per socket per burst."""
        if not self.delivery.deliver(data, text, message_id, channel):
            self._overflow()
        self.schedule()  # the step arms the order timer if messages wait for their turn

    def schedule(self) -> None:
        """Asks for a step of this socket (read, hand over, write) in the loop's next pass."""
        if not self._scheduled:
            self._scheduled = True
            _due.append(self)
            if len(_due) == 1:
                gevent.get_hub().loop.run_callback(_step_due)

    def _arm_order_timer(self) -> None:
        due = self.delivery.due_in(time.time())
        if due is None:
            return
        self._order_timer = gevent.get_hub().loop.timer(due + 0.001)
        self._order_timer.start(self._on_order_timer)

    def _on_order_timer(self) -> None:
        timer, self._order_timer = self._order_timer, None
        if timer is not None:
            timer.close()
        if self.close_code is not None:
            return
        if not self.delivery.release_due(time.time()):
            self._overflow()
        self.schedule()

    def send(self, message: str | bytes) -> None:
        """Queues ``message`` (str as text, bytes as binary); a no-op once the socket is closing."""
        data, text = (message.encode("utf-8"), True) if isinstance(message, str) else (bytes(message), False)
        if not self.delivery.send(data, text):
            self._overflow()
        self.schedule()

    def close(self, code: int = NORMAL, reason: str = "") -> None:
        """Closes the socket with ``code`` after what is queued (if it is not closing already)."""
        self.protocol.close(code, reason)
        self.schedule()

    def wait(self, timeout: float | None = None) -> bool:
        """Blocks the calling greenlet until the socket is over; returns False on timeout."""
        if self.finished:
            return True
        if self._done is None:
            self._done = Event()
        return self._done.wait(timeout)

    def _overflow(self) -> None:
        """The peer reads slower than messages come: the core dropped its outbox; stop its
        deliveries, so it holds no more memory than the message being written, and cut it if
        that write is still blocked after ABORT_GRACE seconds."""
        if self._overflowed:
            return
        self._overflowed = True
        for channel in list(self.channels):
            self.unsubscribe(channel)
        logger.info("closing a slow consumer: over %d messages or %d bytes queued",
                    self.settings.outbox_messages, self.settings.outbox_bytes)
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

    # -- the handshake, in the request's greenlet -----------------------------------------------

    def run(self) -> None:
        """Completes the handshake, then serves the socket from the loop's callbacks: returns
        once it is open (the request's greenlet and whatever it held are freed; see
        ``Transport.detach``), or over if the handshake failed. ``wait()`` waits for its end."""
        transport = self.transport
        start = self._start_position()
        for channel in self.initial_channels:
            self.subscribe(channel)
        try:
            self.hub.wait_subscribed(self.initial_channels, self.settings.subscribe_timeout)
            transport.accept(self.extensions)
            self.open = True
            STATS["sockets_open"] += 1
            STATS["sockets_accepted"] += 1
            if self.delivery.resume_from is None:
                self._replay_persisted()
            if start is not None:
                self._catch_up(start)
            self.app.start(self)
            transport.detach()
            transport.watch(self._on_readable)
        except ConnectionClosed:
            self.protocol.receive_eof()
            self._finish_now()
            return
        except Exception:
            logger.exception("WebSocket handshake failed")
            self.protocol.close(INTERNAL, "internal error")
            self._finish_now()
            return
        self._serving = True
        _keepalive.add(self)
        self.step()

    # -- serving, from the loop's callbacks (never blocks) ---------------------------------------

    def _on_readable(self) -> None:
        self.readable = True
        self.step()

    def step(self) -> None:
        """Reads what is there, hands whole messages to the application (in a greenlet: it may
        block), writes what is queued as far as the socket takes it, and starts the closing
        handshake once the socket is ending."""
        self._scheduled = False
        if not self._serving:
            return
        try:
            protocol = self.protocol
            if self.readable:
                self.readable = False
                self._read_all()
            if protocol.messages:
                if not self.app.blocking:
                    self._hand_over()
                elif self._dispatcher is None or self._dispatcher.dead:
                    self._dispatcher = gevent.spawn(self._dispatch)
            if self.delivery.waiting and self._order_timer is None:  # messages wait for their turn
                self._arm_order_timer()
            if protocol.ending is not None or protocol.state is not State.OPEN:
                self._end()
                return
            self._write_some()
        except Exception:
            logger.exception("WebSocket loop failed")
            self.protocol.close(INTERNAL, "internal error")
            self._end()

    def _end(self) -> None:
        """No more steps: the closing handshake takes over, in a greenlet of its own."""
        self._serving = False
        gevent.spawn(self._finish)

    def tick(self, now: float) -> None:
        """A wake interval has passed (the keepalive's pass over every socket)."""
        if self._writable is not None and now - self._blocked_since > WRITE_TIMEOUT:
            self.protocol.receive_eof()  # the peer has not read for WRITE_TIMEOUT: it is gone
            self._stop_writing()
        else:
            self.protocol.tick()
        self.step()

    def _read_all(self) -> None:
        """Feeds the core everything readable now (up to the end of the socket's messages)."""
        read, protocol = self.transport.read, self.protocol
        while protocol.ending is None:
            data = read()
            if data is None:
                return
            if not data:
                protocol.receive_eof()
                return
            protocol.receive_data(data)

    def _write_some(self) -> None:
        """Writes what is queued until the socket has no room; then a write watcher goes on."""
        if self._writable is not None:
            return  # waiting for room: the watcher steps again
        protocol, write = self.protocol, self.transport.write_nowait
        data = self._unsent
        while not protocol.lost:
            if not data:
                data = protocol.data_to_send()
                if not data:
                    break
            try:
                written = write(data)
            except ConnectionClosed:
                data = b""
                protocol.receive_eof()
                self.schedule()  # the step that follows starts the end
                break
            if written < len(data):
                data = data[written:]
                self._blocked_since = time.monotonic()
                self._writable = self.transport.watch_writable(self._on_writable)
                break
            data = b""
        self._unsent = data

    def _on_writable(self) -> None:
        self._stop_writing()
        self.step()

    def _stop_writing(self) -> None:
        watcher, self._writable = self._writable, None
        if watcher is not None:
            watcher.stop()
            watcher.close()

    def _hand_over(self) -> None:
        """Gives the application every whole inbound message, in order."""
        protocol, on_message = self.protocol, self.app.on_message
        while protocol.messages:
            messages, protocol.messages = protocol.messages, []
            for message in messages:
                on_message(self, message)

    def _dispatch(self) -> None:
        self._hand_over()
        self.schedule()  # answers the application queued

    # -- the end, in a greenlet of its own --------------------------------------------------------

    def _finish(self) -> None:
        """The socket is ending: the closing handshake (see the module's docstring), then TCP."""
        self._stop_writing()
        try:
            self._close_handshake()
        except ConnectionClosed:
            self.protocol.receive_eof()
        except Exception:
            logger.exception("WebSocket closing handshake failed")
        finally:
            self._finish_now()

    def _finish_now(self) -> None:
        self._serving = False
        _keepalive.discard(self)
        if self.open:
            STATS["sockets_open"] -= 1
        self.open = False
        for channel in list(self.channels):
            self.unsubscribe(channel)
        try:
            self._stop_app()
        finally:
            if self.protocol.ending is None:
                self.protocol.close(GOING_AWAY)
            counter = CLOSE_COUNTERS.get(self.close_code or 0)
            if counter is not None:
                STATS[counter] += 1
            if self._order_timer is not None:
                self._order_timer.close()
                self._order_timer = None
            self._stop_writing()
            self.transport.close()
            self.finished = True
            if self._done is not None:
                self._done.set()
            if self.on_finished is not None:
                self.on_finished(self)

    def _flush(self, timeout: float) -> None:
        protocol, write = self.protocol, self.transport.write
        data, self._unsent = self._unsent, b""
        while not protocol.lost:
            if not data:
                data = protocol.data_to_send()
                if not data:
                    return
            write(data, timeout)
            data = b""

    def _stop_app(self) -> None:
        if not self._stopped:
            self._stopped = True
            self.app.stop(self)

    def _close_handshake(self) -> None:
        """The socket is ending: the application handles what came before, then the close frame
        goes out after what is queued, then the peer's close frame is awaited."""
        protocol = self.protocol
        for channel in list(self.channels):
            self.unsubscribe(channel)
        dispatcher = self._dispatcher
        if dispatcher is not None and not dispatcher.dead:
            dispatcher.join()  # messages in order: what it holds first
        self._dispatch()
        self._stop_app()  # a handler reads what is left of its messages and may answer
        protocol.close(*(protocol.ending or (NORMAL, "")))
        deadline = time.monotonic() + CLOSE_TIMEOUT
        self._flush(CLOSE_TIMEOUT)
        transport = self.transport
        while protocol.awaiting_close and not protocol.lost:
            left = deadline - time.monotonic()
            if left <= 0 or not transport.wait_readable(left):
                return
            while protocol.awaiting_close:
                data = transport.read()
                if data is None:
                    break
                if not data:
                    protocol.receive_eof()
                    return
                protocol.receive_data(data)  # dropped, but for the peer's close frame
        # Anything the peer sent with its close frame is read, so closing sends no reset.
        while transport.read():
            pass

    # -- Redis: persisted messages and catching up from the channels' histories ---------------

    def _replay_persisted(self) -> None:
        """Sends the last persisted message of each subscribed channel (ws4redis's replay). In
        the same round trip, notes the history's position: after a hub outage the socket catches
        up from there (or from the last id it got)."""
        delivery = self.delivery
        persist, locate = self.settings.expire > 0, delivery.history and delivery.position is None
        if not self.initial_channels or not (persist or locate):
            return
        prefix = self.settings.prefix
        client = get_redis()
        markers = [wire.binary_marker_key(prefix, channel) for channel in self.initial_channels]
        try:
            if history.is_cluster(client):
                # Keys of several slots: a Redis Cluster refuses one MGET across them.
                cluster = cast(Any, client)
                replies = [cluster.mget_nonatomic(self.initial_channels), cluster.mget_nonatomic(markers)] \
                    if persist else []
                if locate:
                    replies.append(history.position(client, prefix).encode("ascii"))
            else:
                with client.pipeline(transaction=False) as pipe:
                    if persist:
                        pipe.mget(self.initial_channels)
                        pipe.mget(markers)
                    if locate:
                        pipe.get(history.sequence_key(prefix))
                    replies = pipe.execute()
        except Exception as exc:  # Redis down: the socket still serves live messages later
            logger.debug("persisted messages unavailable: %s", exc)
            return
        if locate:
            position = replies.pop()
            delivery.located(position.decode("ascii") if position else None)
        if persist:
            delivery.persisted(cast("list[bytes | None]", replies[0]), cast("list[bytes | None]", replies[1]))
            self.schedule()

    def _start_position(self) -> str | None:
        """Returns the id after which this socket must get every message (None: none); live
        messages are held from now until the replay is queued."""
        delivery = self.delivery
        if not delivery.needs_start:
            return None
        start = delivery.resume_from
        if start is not None and delivery.index:  # ordered across channels: the id as it saw it
            start, self._inclusive = resume_start(start, self.initial_channels)
        if start is None:
            try:
                start = history.position(get_redis(), self.settings.prefix)
            except redis.RedisError as exc:  # Redis down: live messages only, once it is back
                logger.debug("no history position: %s", exc)
                return None
        delivery.begin(start)
        return start

    def resync(self) -> None:
        """Called by the hub when it has reconnected after an outage: catches up on what was
        published meanwhile (the hub calls it before reading the new connection)."""
        if not self.open or self.close_code is not None:
            return
        if self._resyncing is not None and not self._resyncing.dead:
            return  # already catching up: it retries until the hub stays connected
        start = self.delivery.resync_start(self.hub.last_id)
        if start is not None:
            self._resyncing = gevent.spawn(self._resync, start)

    def _resync(self, start: str) -> None:
        while self.close_code is None and self.delivery.holding is not None:
            if self.hub.wait_subscribed(list(self.channels), self.settings.subscribe_timeout) \
                    and self._catch_up(start, retry=True):
                return
            gevent.sleep(RESYNC_RETRY)  # Redis went away again: wait for the next reconnection

    def _catch_up(self, start: str, retry: bool = False) -> bool:
        """Reads the messages of this socket's channels after ``start`` and queues them (see
        Delivery.caught_up). Returns False if Redis failed."""
        settings = self.settings
        try:
            found = history.replay(get_redis(), settings.prefix, sorted(self.channels), start,
                                   settings.history_seconds, inclusive=self._inclusive)
        except redis.RedisError as exc:
            if retry:
                return False
            logger.warning("cannot replay missed messages: %s", exc)
            caught_up, ok = False, self.delivery.release()
        else:
            caught_up, ok = True, self.delivery.caught_up(found)
            self._inclusive = set()
            if found.gap and not self.delivery.ids:  # per socket: debug only (a Redis restart gives every one)
                logger.debug("a socket missed messages older than the history window")
        if not ok:
            self._overflow()
        self.schedule()
        return caught_up


# -- the process's sockets: steps due, keepalive ----------------------------------------------------

_due: list[Connection] = []  # sockets whose step is due in the loop's next pass


def _step_due() -> None:
    """Steps every socket that asked since the last pass (the hub's deliveries of a burst, sends
    from greenlets): one write per socket for everything queued meanwhile."""
    while _due:
        due = _due[:]
        del _due[:]
        for connection in due:
            connection.step()


class _Keepalive:
    """One repeating timer for every socket of the process: each wake interval, every socket's
    core is ticked (ping, idle heartbeat, a write blocked too long). The sockets are spread over
    BUCKETS slices, one ticked per BUCKETS-th of the interval, so no pass holds the loop long."""

    BUCKETS = 16

    def __init__(self) -> None:
        self.buckets: list[set[Connection]] = [set() for _ in range(self.BUCKETS)]
        self.turn = 0  # the bucket ticked next
        self.timer: Any = None
        self.interval = 0.0

    def add(self, connection: Connection) -> None:
        """Adds ``connection`` to the bucket ticked next, which skips it once: its first tick
        comes one to one and a sixteenth wake intervals after it opened, never sooner."""
        self.buckets[self.turn].add(connection)
        interval = connection.settings.wake_interval
        if self.timer is None or interval != self.interval:
            if self.timer is not None:
                self.timer.close()
            self.interval = interval
            self.timer = gevent.get_hub().loop.timer(interval / self.BUCKETS, interval / self.BUCKETS)
            self.timer.start(self._tick)

    def discard(self, connection: Connection) -> None:
        for bucket in self.buckets:
            bucket.discard(connection)

    def _tick(self) -> None:
        bucket = self.buckets[self.turn]
        self.turn = (self.turn + 1) % self.BUCKETS
        now = time.monotonic()
        for connection in list(bucket):
            if connection._fresh:
                connection._fresh = False
                continue
            try:
                connection.tick(now)
            except Exception:
                logger.exception("keepalive of a socket failed")


_keepalive = _Keepalive()
