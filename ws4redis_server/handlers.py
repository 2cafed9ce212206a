"""``@websocket`` handlers (django-c10k-demo's API, made synchronous by gevent) and the pub/sub
relay of ws4redis facilities: the two applications a socket loop can run.

A handler is routed like a view and runs in its own greenlet beside the socket loop::

    @websocket
    def echo(ws):
        ws.send(ws.recv())
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import gevent
from django.http import HttpRequest, HttpResponse
from gevent.queue import Queue

from .channels import Identity
from .connection import INTERNAL, NORMAL, POLICY, TRY_AGAIN, Connection
from .frames import BinaryMessage
from .publisher import as_bytes

logger = logging.getLogger("ws4redis_server.handlers")

STOP_GRACE = 1.0  # seconds a handler has to return after its peer has gone


def websocket(handler: Callable[..., Any]) -> Callable[..., HttpResponse]:
    """Marks ``handler(ws, *args, **kwargs)`` as a WebSocket handler routed like a view.

    Served by the WebSocket loop; a plain HTTP request that reaches it through Django gets
    426 Upgrade Required. The socket is closed when the handler returns.
    """

    @functools.wraps(handler)
    def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = HttpResponse("This URL expects a WebSocket upgrade (Upgrade: websocket)\n",
                                status=426, content_type="text/plain")
        response["Upgrade"] = "websocket"
        return response

    view.ws_handler = handler  # type: ignore[attr-defined]
    return view


class WebSocket:
    """What a handler gets: ``recv``, ``send``, ``close``, ``subscribe``, ``publish``."""

    def __init__(self, connection: Connection, request: Any, identity: Identity) -> None:
        self._connection = connection
        self._inbox: Queue = Queue()
        self._ended = False
        self.request = request
        self.identity = identity

    @property
    def open(self) -> bool:
        return self._connection.open and self._connection.close_code is None

    def recv(self) -> str | bytes | None:
        """Returns the next message: str for a text message, bytes for a binary one (whatever
        its bytes); None once the peer has gone or the socket is closing. The messages that
        arrived before the peer closed (or broke the protocol) come first."""
        if self._ended:
            return None
        message = self._inbox.get()
        if message is None:
            self._ended = True
            return None
        if isinstance(message, BinaryMessage):
            return bytes(message)
        return message.decode("utf-8")  # the core checked it: a text message is UTF-8

    def send(self, message: str | bytes) -> None:
        """Sends ``message`` (str as text, bytes as binary); callable from any greenlet of the
        process. Does nothing once the socket is closed."""
        self._connection.send(message)

    def close(self, code: int = NORMAL, reason: str = "") -> None:
        self._connection.close(code, reason)

    def subscribe(self, channel: str) -> None:
        """Relays every message published on the Redis ``channel`` to this socket."""
        self._connection.subscribe(channel)

    def unsubscribe(self, channel: str) -> None:
        self._connection.unsubscribe(channel)

    def publish(self, channel: str, message: str | bytes, expire: int = 0) -> int:
        """Publishes on the Redis ``channel`` through the process's hub. Sockets get it as a text
        frame if it is a str, or bytes that are UTF-8 (as from ``RedisPublisher``)."""
        return self._connection.hub.publish([channel], as_bytes(message), expire)

    def _push(self, data: bytes | None) -> None:
        self._inbox.put(data)


class HandlerApp:
    """Runs a ``@websocket`` handler in a greenlet; inbound messages go to ``ws.recv()``."""

    blocking = False  # on_message only queues for the handler's greenlet

    def __init__(self, handler: Callable[..., Any], request: Any, identity: Identity,
                 args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> None:
        self.handler = handler
        self.request = request
        self.identity = identity
        self.args = args
        self.kwargs = kwargs or {}
        self.ws: WebSocket | None = None
        self.greenlet: gevent.Greenlet | None = None

    def start(self, connection: Connection) -> None:
        self.ws = WebSocket(connection, self.request, self.identity)
        self.greenlet = gevent.spawn(self._run, connection)

    def _run(self, connection: Connection) -> None:
        try:
            self.handler(self.ws, *self.args, **self.kwargs)
        except Exception:
            logger.exception("WebSocket handler %s failed", getattr(self.handler, "__qualname__", self.handler))
            connection.close(INTERNAL, "handler error")
        else:
            connection.close(NORMAL)

    def on_message(self, connection: Connection, data: bytes) -> None:
        assert self.ws is not None
        self.ws._push(data)

    def stop(self, connection: Connection) -> None:
        if self.ws is not None:
            self.ws._push(None)
        if self.greenlet is not None and not self.greenlet.dead:
            self.greenlet.join(STOP_GRACE)
            self.greenlet.kill(block=False)


class RelayApp:
    """The pub/sub facility: what the socket sends is published on its ``publish-*`` channels."""

    __slots__ = ("blocking", "expire", "publish")

    def __init__(self, publish: list[str], expire: int) -> None:
        self.publish = publish
        self.expire = expire
        self.blocking = bool(publish)  # publishing waits for Redis; without flags, nothing to do

    def start(self, connection: Connection) -> None:
        pass

    def on_message(self, connection: Connection, data: bytes) -> None:
        if not self.publish:
            return  # as in ws4redis: a socket without publish flags only listens
        connection.delivery.last_received = data
        try:
            # Text frames stay text and binary ones binary, whatever their bytes.
            connection.hub.publish(self.publish, data, self.expire, text=not isinstance(data, BinaryMessage))
        except Exception as exc:
            logger.warning("publish from socket failed: %s", exc)
            connection.close(TRY_AGAIN, "Redis unavailable: message not published")

    def stop(self, connection: Connection) -> None:
        pass


__all__ = ["websocket", "WebSocket", "HandlerApp", "RelayApp", "POLICY"]
