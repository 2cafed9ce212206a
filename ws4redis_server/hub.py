"""One Redis pub/sub connection per process, shared by every socket of the process (on a Redis
Cluster, one per primary: ``shards.ShardedHub``, a subclass).

The hub subscribes to a channel when its first local listener needs it and unsubscribes after
the last one leaves; each Redis message is fanned out in-process to the channel's listeners.
Each channel is subscribed together with its notice channel, in one command: a message's id,
opcode and receipt come in a notice just before it (``wire``), the message itself as published.
A listener is any object with ``deliver(channel, data, is_text, message_id)``; delivery must not
block. A listener with a ``resync()`` method is told when the hub has reconnected after an outage
(it may then catch up on what it missed from the channels' histories).

The hub also listens to the control channel (``channels.control_channel``) and passes each notice
to the handler registered in ``hub.controls`` for its verb (the server closes the sockets of a
user whose groups changed). Only messages no socket listens to are checked for it, so the
per-message path is unchanged. A notice published while the hub is disconnected is lost.

Two greenlets: the reader reads every reply redis-py has (buffered or not, so a burst is never
stranded in redis-py's buffer, ws4redis's bug #2) and the writer sends SUBSCRIBE/UNSUBSCRIBE in
batches. If Redis goes away, the reader reconnects with jittered backoff and resubscribes every
channel still wanted; sockets stay open meanwhile. The outage is logged once, not per socket.
"""
from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import gevent
import redis
from gevent.event import Event
from gevent.lock import Semaphore

from . import receipts, redis_modes, wire
from .channels import control_channel, parse_control
from .conf import Settings, get_settings
from .redis_client import get_redis, make_client

logger = logging.getLogger("ws4redis_server.hub")

BATCH = 1000  # channels per SUBSCRIBE / UNSUBSCRIBE command (each with its notice channel)
READ_TIMEOUT = 15.0  # seconds without traffic before the hub pings Redis
BACKOFF_MIN, BACKOFF_MAX = 0.1, 0.5  # seconds; at most 0.75 s (jitter) from Redis back to a new attempt
YIELD_EVERY = 100  # messages the reader fans out before it lets the sockets send them
RECEIPTS_FLUSH = 0.2  # seconds between writes of delivery counts to Redis
STABLE = 2.0  # seconds a connection must last before a drop counts as a new outage
CONNECT_TIMEOUT = 5.0  # seconds Redis has to confirm the hub's first subscription


class _PubSub(redis.client.PubSub):
    """redis-py's PubSub, except that it does not reconnect by itself after an error: the hub
    replaces the whole connection from its reader greenlet. (redis-py would reconnect in
    whichever greenlet met the error, and two greenlets would then share one socket.)"""

    failed = False

    def _reconnect(self, conn: Any, error: Exception | None = None, *args: Any, **kwargs: Any) -> None:
        if error is not None:
            self.failed = True
            conn.disconnect()


def read_replies(pubsub: Any, write_lock: Semaphore,
                 on_message: Callable[[str, bytes, tuple[str, bytes] | None], tuple[str, bytes] | None],
                 on_confirmed: Callable[[str], None], on_unsubscribed: Callable[[str], None] | None = None) -> None:
    """Reads every reply of a pub/sub connection (buffered in redis-py or not) until it fails:
    each message goes to ``on_message(channel, data, notice)`` with the notice read just before
    it (Redis sends a notice and its message back to back, so only the very next reply may use
    it), each (S)SUBSCRIBE confirmation to ``on_confirmed``, each SUNSUBSCRIBE to
    ``on_unsubscribed``. Pings Redis after READ_TIMEOUT seconds without traffic; raises
    redis.ConnectionError if that gets no answer either."""
    pinged = False
    pending: tuple[str, bytes] | None = None
    while True:
        message = pubsub.get_message(timeout=READ_TIMEOUT)
        if message is None:
            if pinged:
                raise redis.ConnectionError(f"no reply to PING within {READ_TIMEOUT:.0f}s")
            with write_lock:
                pubsub.ping()
            pinged = True
            continue
        pinged = False
        notice, pending = pending, None
        kind = message["type"]
        if kind == "message" or kind == "smessage":
            pending = on_message(message["channel"].decode("utf-8", "replace"), message["data"], notice)
        elif kind == "subscribe" or kind == "ssubscribe":
            on_confirmed(message["channel"].decode("utf-8", "replace"))
        elif kind == "sunsubscribe" and on_unsubscribed is not None:
            on_unsubscribed(message["channel"].decode("utf-8", "replace"))


def confirm(inflight: dict[str, int], sent: set[str], confirmed: dict[str, Event], channel: str) -> None:
    """Counts a SUBSCRIBE confirmation of ``channel``; sets its event once the last one sent on
    the connection is confirmed, if the channel is still wanted there."""
    left = inflight.get(channel, 0) - 1
    if left > 0:
        inflight[channel] = left
        return
    inflight.pop(channel, None)
    if channel in sent:
        confirmed.setdefault(channel, Event()).set()


class Listener(Protocol):
    def deliver(self, channel: str, data: bytes, is_text: bool, message_id: str | None) -> None: ...


class Hub:
    """The process's pub/sub hub. Construction does no I/O; :meth:`start` spawns the greenlets."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.control_channel = control_channel(self.settings.prefix)
        # verb -> handler(arguments) of the notices on the control channel
        self.controls: dict[str, Callable[[list[str]], Any]] = {}
        self._listeners: dict[str, set[Listener]] = {}
        self._sent: set[str] = set()  # channels SUBSCRIBEd on the current connection
        self._inflight: dict[str, int] = {}  # SUBSCRIBEs sent and not yet confirmed
        self._confirmed: dict[str, Event] = {}
        self._dirty = Event()
        self._connected = Event()
        self._down = False  # a connection attempt failed and none has succeeded since
        self._write_lock = Semaphore()
        self._pubsub: Any = None
        self._client: Any = None
        self._greenlets: list[gevent.Greenlet] = []
        self._receipts: dict[str, int] = {}
        self._budget = YIELD_EVERY  # messages fanned out before the reader yields
        self.last_id: str | None = None  # id of the newest message read that had one
        self.stats = {"messages_in": 0, "deliveries": 0, "reconnects": 0, "outages": 0}

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Hub:
        if not self._greenlets:
            self._greenlets = [gevent.spawn(self._read_forever), gevent.spawn(self._write_forever),
                               gevent.spawn(self._count_forever)]
        return self

    def stop(self) -> None:
        gevent.killall(self._greenlets)
        self._greenlets = []
        self._close_pubsub()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # -- listeners -----------------------------------------------------------------------------

    def subscribe(self, channel: str, listener: Listener) -> None:
        """Adds ``listener`` to ``channel``; Redis is told (in a batch) if it is the first."""
        listeners = self._listeners.get(channel)
        if listeners is None:
            listeners = self._listeners[channel] = set()
            self._dirty.set()
        listeners.add(listener)

    def unsubscribe(self, channel: str, listener: Listener) -> None:
        """Removes ``listener`` from ``channel``; Redis is told (in a batch) if it was the last."""
        listeners = self._listeners.get(channel)
        if listeners is None:
            return
        listeners.discard(listener)
        if not listeners:
            del self._listeners[channel]
            self._dirty.set()

    def listener_count(self, channel: str) -> int:
        return len(self._listeners.get(channel, ()))

    @property
    def channel_count(self) -> int:
        return len(self._listeners)

    def wait_subscribed(self, channels: Iterable[str], timeout: float) -> bool:
        """Waits until Redis has confirmed every channel of ``channels``, at most ``timeout``
        seconds. Returns False at once if Redis is known to be unreachable (the hub subscribes
        when it is back); while the hub is still making its first connection, waits for it."""
        deadline = time.monotonic() + timeout
        for channel in channels:
            if not self._ready(deadline):
                return False
            event = self._confirmed.get(channel)
            if event is None:
                event = self._confirmed[channel] = Event()
                self._dirty.set()
            if not event.wait(max(0.0, deadline - time.monotonic())):
                return False
        return True

    def _ready(self, deadline: float) -> bool:
        """False if Redis is known to be unreachable, or the first connection is not made by
        ``deadline`` (monotonic)."""
        if self._connected.is_set():
            return True
        return not self._down and self._connected.wait(max(0.0, deadline - time.monotonic()))

    # -- commands ------------------------------------------------------------------------------

    def publish(self, channels: Iterable[str], message: bytes, expire: int = 0, text: bool | None = None) -> int:
        """Publishes ``message`` on ``channels`` (and persists it for ``expire`` seconds), to go
        out as a text frame if ``text`` (None: if it is UTF-8). Returns how many hub connections
        received it; raises redis.RedisError."""
        from .publisher import publish_to

        return publish_to(get_redis(), channels, message, expire, text=text)

    # -- reader --------------------------------------------------------------------------------

    def _read_forever(self) -> None:
        backoff = BACKOFF_MIN
        down_since: float | None = None
        back_logged = False
        while True:
            try:
                self._connect()
            except (redis.RedisError, OSError) as exc:
                self._down = True
                if down_since is None:
                    down_since, back_logged = time.monotonic(), False
                    self.stats["outages"] += 1
                    logger.error("Redis at %s is unreachable (%s); sockets stay open, retrying with "
                                 "backoff up to %.0fs", self.settings.redis_url, exc, BACKOFF_MAX)
                gevent.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            self._down = False
            connected_at = time.monotonic()
            if down_since is not None:
                if not back_logged:
                    logger.warning("Redis at %s is back after %.1fs; resubscribing %d channels",
                                   self.settings.redis_url, connected_at - down_since, len(self._listeners))
                    back_logged = True
                self.stats["reconnects"] += 1
                self._resync_listeners()
            try:
                self._read_messages()
            except (redis.RedisError, OSError) as exc:
                self._down = True
                if down_since is not None and time.monotonic() - connected_at < STABLE:
                    # Dropped again right after a reconnection (Redis still loading, or refusing
                    # us): the same outage, retried with backoff and not logged again.
                    logger.debug("Redis connection dropped at once: %s", exc)
                    gevent.sleep(backoff * (0.5 + random.random()))
                    backoff = min(backoff * 2, BACKOFF_MAX)
                else:
                    down_since, back_logged, backoff = time.monotonic(), False, BACKOFF_MIN
                    self.stats["outages"] += 1
                    logger.error("Lost Redis at %s (%s); sockets stay open, reconnecting",
                                 self.settings.redis_url, exc)
            except Exception:
                # A bug must not leave the process deaf: log it and start over on a new connection.
                logger.exception("hub reader failed; reconnecting")
            finally:
                self._connected.clear()
                self._close_pubsub()

    def _resync_listeners(self, channels: Iterable[str] | None = None) -> None:
        """Tells every listener (of ``channels``, or of all) that can catch up that messages may
        have been missed. Runs before the new connection is read, so a listener can hold live
        messages until it has caught up."""
        wanted = self._listeners if channels is None else channels
        for listener in {listener for channel in wanted for listener in self._listeners.get(channel, ())}:
            resync = getattr(listener, "resync", None)
            if resync is not None:
                try:
                    resync()
                except Exception:
                    logger.exception("resync of %r failed", listener)

    def _connect(self) -> None:
        """Opens the pub/sub connection; raises RedisError unless Redis confirms a subscription
        on it (a server that accepts the connection but refuses commands, e.g. an ACL or a
        loading dataset, is still down)."""
        client = make_client(self.settings, pool=False, health_check_interval=0)
        pubsub = _PubSub(client.connection_pool, ignore_subscribe_messages=False)
        try:
            with self._write_lock:
                pubsub.subscribe(self.control_channel)
            deadline = time.monotonic() + CONNECT_TIMEOUT
            while True:
                reply = pubsub.get_message(timeout=max(0.0, deadline - time.monotonic()))
                if reply is not None and reply["type"] == "subscribe":
                    break
                if time.monotonic() >= deadline:
                    raise redis.TimeoutError(f"no SUBSCRIBE confirmation within {CONNECT_TIMEOUT:.0f}s")
        except BaseException:
            try:
                pubsub.reset()
            except Exception:  # already broken
                pass
            raise
        with self._write_lock:
            # Keep the client: when it is garbage-collected redis-py closes its pool, and with it
            # this connection (which redis-py would then reopen from whichever greenlet came next).
            self._client = client
            self._pubsub = pubsub
            self._sent = set()
            self._inflight = {}
            self._confirmed = {}
        self._connected.set()
        self._dirty.set()

    def _close_pubsub(self) -> None:
        pubsub, self._pubsub, self._client = self._pubsub, None, None
        if pubsub is not None:
            try:
                pubsub.reset()
            except Exception:  # the connection is already broken: nothing to release cleanly
                pass

    def _read_messages(self) -> None:
        read_replies(self._pubsub, self._write_lock, self._on_message, self._on_confirmed)

    def _on_message(self, channel: str, data: bytes, notice: tuple[str, bytes] | None) -> tuple[str, bytes] | None:
        """Fans out a message read on ``channel``, with the ``notice`` read just before it (if
        any). Returns (channel, notice) if the message is itself a notice, for the next one."""
        receivers = self._listeners.get(channel)
        if receivers:
            self.stats["messages_in"] += 1
            if notice is not None and notice[0] == channel:
                message_id, text, receipt = wire.parse_notice(notice[1])
            else:  # PUBLISHed by someone else (or by a publisher of 0.2.0)
                message_id, receipt, data = wire.unwrap_legacy(data)
                text = wire.is_text(data)
            if message_id is not None:
                self.last_id = message_id
            for listener in tuple(receivers):
                listener.deliver(channel, data, text, message_id)
            self.stats["deliveries"] += len(receivers)
            if receipt is not None:
                self._receipts[receipt] = self._receipts.get(receipt, 0) + len(receivers)
            self._budget -= 1
            if not self._budget:
                # Reading a burst buffered in the socket never blocks: without this the outboxes
                # would take the whole burst before any socket sends a message.
                self._budget = YIELD_EVERY
                gevent.sleep(0)
            return None
        target = wire.notice_target(self.settings.prefix, channel)
        if target is not None:
            return target, data
        self.stats["messages_in"] += 1
        if channel == self.control_channel:
            self._on_control(data)
        return None

    def _on_control(self, data: bytes) -> None:
        verb, arguments = parse_control(data)
        handler = self.controls.get(verb)
        if handler is None:
            return
        try:
            handler(arguments)
        except Exception:  # a failing handler must not take the reader (and every socket) down
            logger.exception("control notice %r failed", verb)

    def _on_confirmed(self, channel: str) -> None:
        confirm(self._inflight, self._sent, self._confirmed, channel)

    # -- delivery receipts -----------------------------------------------------------------------

    def _count_forever(self) -> None:
        while True:
            gevent.sleep(RECEIPTS_FLUSH)
            if not self._receipts:
                continue
            counts, self._receipts = self._receipts, {}
            try:
                with get_redis().pipeline(transaction=False) as pipe:
                    for message_id, count in counts.items():
                        pipe.incrby(receipts.KEY + message_id, count)
                        pipe.expire(receipts.KEY + message_id, receipts.TTL)
                    pipe.execute()
            except redis.RedisError as exc:
                logger.warning("could not record %d delivery counts: %s", len(counts), exc)

    # -- writer --------------------------------------------------------------------------------

    def _write_forever(self) -> None:
        while True:
            self._dirty.wait()
            self._dirty.clear()
            if not self._connected.is_set():
                continue
            try:
                self._sync_subscriptions()
            except (redis.RedisError, OSError) as exc:
                # The reader notices the broken connection and reconnects; it resubscribes all.
                logger.debug("SUBSCRIBE failed: %s", exc)
            except Exception:
                # E.g. gevent's ConcurrentObjectUseError when redis-py reconnects here while the
                # reader waits on the same socket. The writer must outlive it, or the process
                # could never subscribe again: drop the connection and let the reader rebuild it.
                logger.exception("SUBSCRIBE failed; reconnecting to Redis")
                self._connected.clear()
                self._close_pubsub()

    def _sync_subscriptions(self) -> None:
        # Under the lock: a reconnection swaps the connection and its bookkeeping together.
        with self._write_lock:
            pubsub = self._pubsub
            if pubsub is None or pubsub.failed:
                # Sending on a failed connection would make redis-py reopen it here. The reader is
                # replacing it; it sets _dirty again.
                return
            wanted = set(self._listeners)
            new = sorted(wanted - self._sent)
            gone = sorted(self._sent - wanted)
            for channel in gone:
                self._sent.discard(channel)
                self._confirmed.pop(channel, None)
            for channel in new:
                self._sent.add(channel)
                self._inflight[channel] = self._inflight.get(channel, 0) + 1
                event = self._confirmed.get(channel)
                if event is None or event.is_set():
                    self._confirmed[channel] = Event()
            # A channel and its notice channel in the same command: Redis never has one without
            # the other, so every notice the hub reads is followed by its message.
            prefix = self.settings.prefix
            for i in range(0, len(gone), BATCH):
                pubsub.unsubscribe(*self._with_notices(prefix, gone[i:i + BATCH]))
            for i in range(0, len(new), BATCH):
                pubsub.subscribe(*self._with_notices(prefix, new[i:i + BATCH]))

    @staticmethod
    def _with_notices(prefix: str, channels: list[str]) -> list[str]:
        return [name for channel in channels for name in (wire.notice_channel(prefix, channel), channel)]


_hub: Hub | None = None


def get_hub() -> Hub:
    """Returns this process's hub, started: on a Redis Cluster a ``shards.ShardedHub`` (one
    pub/sub connection per primary), otherwise one connection to the server or Sentinel master."""
    global _hub
    if _hub is None:
        if get_settings().redis_mode.kind == redis_modes.CLUSTER:
            from .shards import ShardedHub

            _hub = ShardedHub()
        else:
            _hub = Hub()
    return _hub.start()
