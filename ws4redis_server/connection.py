"""The loop of one socket: outbox, inbound messages, heartbeats, close codes.

It runs in the request's greenlet (uWSGI requires ``websocket_*`` calls there) and sleeps on one
Event, set by the transport's readability watcher, by the hub's deliveries and by sends from any
greenlet. Each wake-up sends everything queued, then reads every complete inbound message. It
wakes at least every ``WS4REDIS_WAKE_INTERVAL`` so the server's pings keep flowing.
"""
from __future__ import annotations

import logging
from collections import deque
from typing import Any, Protocol

from gevent.event import Event

from .conf import Settings
from .hub import Hub, is_text
from .transports import ConnectionClosed, Transport

logger = logging.getLogger("ws4redis_server.connection")

# Close codes (RFC 6455 section 7.4.1).
NORMAL, GOING_AWAY, PROTOCOL_ERROR, INVALID_DATA, POLICY, TOO_BIG, INTERNAL, TRY_AGAIN = (
    1000, 1001, 1002, 1007, 1008, 1009, 1011, 1013)
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
                 subscribe: list[str] = (), echo: bool = True) -> None:  # type: ignore[assignment]
        self.transport = transport
        self.hub = hub
        self.settings = settings
        self.app = app
        self.initial_channels = list(subscribe)
        self.channels: set[str] = set()
        self.echo = echo
        self.last_received: bytes | None = None
        self.outbox: deque[tuple[bytes, bool]] = deque()
        self.wakeup = Event()
        self.readable = False
        self.open = False
        self.close_code: int | None = None
        self.close_reason = ""
        self._heartbeat = settings.heartbeat.encode("utf-8") if settings.heartbeat else None

    # -- called from anywhere ------------------------------------------------------------------

    def deliver(self, channel: str, data: bytes, text: bool) -> None:
        """Queues a message from Redis. Without the echo flag, a message equal to the last one
        this socket sent is not sent back to it (django-websocket-redis's rule)."""
        if not self.echo and data == self.last_received:
            return
        self.outbox.append((data, text))
        self.wakeup.set()

    def send(self, message: str | bytes) -> None:
        """Queues ``message`` (str as text, bytes as binary); a no-op once the socket is closed."""
        if self.close_code is not None:
            return
        if isinstance(message, str):
            self.outbox.append((message.encode("utf-8"), True))
        else:
            self.outbox.append((bytes(message), False))
        self.wakeup.set()

    def close(self, code: int = NORMAL, reason: str = "") -> None:
        """Asks the loop to close the socket with ``code`` after sending what is queued."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self.wakeup.set()

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
        for channel in self.initial_channels:
            self.subscribe(channel)
        try:
            self.hub.wait_subscribed(self.initial_channels, self.settings.subscribe_timeout)
            transport.accept()
            self.open = True
            transport.watch(self._on_readable)
            self._replay_persisted()
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
            self.open = False
            for channel in list(self.channels):
                self.unsubscribe(channel)
            self.app.stop(self)
            if self.close_code is None:
                self.close_code = GOING_AWAY
            transport.close(self.close_code, self.close_reason)

    def _on_readable(self) -> None:
        self.readable = True
        self.wakeup.set()

    def _serve(self) -> None:
        wake_interval = self.settings.wake_interval
        while True:
            woken = self.wakeup.wait(wake_interval)
            self.wakeup.clear()
            self._flush()
            if self.close_code is not None:
                return
            if self.readable or not woken:
                self.readable = False
                self._read_all()
                if not woken:
                    self.transport.keepalive()
                self._flush()

    def _flush(self) -> None:
        outbox, send = self.outbox, self.transport.send
        while outbox:
            data, text = outbox.popleft()
            send(data, text)

    def _read_all(self) -> None:
        recv = self.transport.recv_nowait
        limit = self.settings.max_message_size
        while self.close_code is None:
            data = recv()
            if data is None:
                return
            if len(data) > limit:
                self.close(TOO_BIG, f"message over {limit} bytes")
                return
            if self._heartbeat is not None and data == self._heartbeat:
                self.outbox.append((data, True))
                continue
            self.app.on_message(self, data)

    def _replay_persisted(self) -> None:
        """Sends the last persisted message of each subscribed channel (ws4redis's replay)."""
        if not self.initial_channels or self.settings.expire <= 0:
            return
        from .redis_client import get_redis

        try:
            values = get_redis().mget(self.initial_channels)
        except Exception as exc:  # Redis down: the socket still serves live messages later
            logger.debug("persisted messages unavailable: %s", exc)
            return
        persisted = [(value, is_text(value)) for value in values if value is not None]
        # Older than anything that arrived live since the subscription: send them first.
        self.outbox.extendleft(reversed(persisted))
        if persisted:
            self.wakeup.set()
