"""A lean asyncio WebSocket client for load generation: thousands of sockets per process.

Each socket is an :class:`asyncio.Protocol` over websockets' Sans-I/O ``ClientProtocol`` (the
library does the framing, pings and closing handshake): no task per socket, no compression, so a
process holds ~10,000 sockets in a few hundred MB. ``testecho`` and the benchmarks build on it.

On loopback, sockets are spread over several source addresses (127.0.0.1, 127.0.0.2, ...) bound
with ``IP_BIND_ADDRESS_NO_PORT``: one source address reaches one server port through at most
~28,000 ephemeral ports, and binding without that option makes the kernel pick ports slowly.
"""
from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

# Linux's value; the socket module names it only from Python 3.12.
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
# Sockets per loopback source address: well under the ~28,000 ephemeral ports of one address.
SOCKETS_PER_SOURCE = 15_000

OnMessage = Callable[[str, float], None]


@dataclass(frozen=True)
class WsTarget:
    """Where to connect: the ``ws://`` URL and the address it resolves to."""

    url: str
    ip: str
    port: int

    @property
    def loopback(self) -> bool:
        return ipaddress.ip_address(self.ip).is_loopback and ipaddress.ip_address(self.ip).version == 4


def endpoint(url: str, default_path: str) -> str:
    """Returns ``url`` with ``default_path`` when it has no path (``ws://127.0.0.1:8000``), and
    with a final slash otherwise."""
    parts = urlsplit(url)
    if parts.path in ("", "/"):
        parts = parts._replace(path=default_path)
    elif not parts.path.endswith("/"):
        parts = parts._replace(path=parts.path + "/")
    return urlunsplit(parts)


def parse_ws_url(url: str, example: str = "ws://127.0.0.1:8000/ws/echo/") -> WsTarget:
    """Returns the target of a ``ws://host[:port]/path`` URL; raises ValueError for any other URL
    (wss:// included: the load clients speak plain TCP) or a host that does not resolve; the
    error shows ``example``."""
    parts = urlsplit(url)
    if parts.scheme != "ws" or not parts.hostname:
        raise ValueError(f"{url!r} is not a ws:// URL (expected e.g. {example})")
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise ValueError(f"{url!r} has an invalid port") from exc
    try:
        infos = socket.getaddrinfo(parts.hostname, port, socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ValueError(f"cannot resolve the host of {url!r}: {exc.strerror}") from exc
    return WsTarget(url=url, ip=str(infos[0][4][0]), port=port)


def source_addresses(target: WsTarget, sockets: int) -> list[str | None]:
    """Returns the local addresses to spread ``sockets`` over: enough 127.0.0.x addresses for a
    loopback target, ``[None]`` (the kernel's choice) for any other."""
    if not target.loopback:
        return [None]
    count = min(250, max(1, -(-sockets // SOCKETS_PER_SOURCE)))
    return [f"127.0.0.{i}" for i in range(1, count + 1)]


def describe_error(exc: BaseException) -> str:
    """Returns a short human reason for a failed connection ("Connection refused", "handshake
    rejected: HTTP 502 Bad Gateway", ...)."""
    if isinstance(exc, HandshakeRejected | ConnectionDropped):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno)
    return str(exc) or type(exc).__name__


class HandshakeRejected(ConnectionError):
    """The server answered the opening handshake with something other than ``101``."""

    def __init__(self, status: int | None, detail: str) -> None:
        super().__init__(detail)
        self.status = status


class ConnectionDropped(ConnectionError):
    """The socket closed while a message was awaited."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"connection closed (close code {code})" if code else "connection lost")
        self.code = code


class WebSocketClient(asyncio.Protocol):
    """One client socket. Messages go to ``on_message(text, arrival_monotonic)`` when given,
    otherwise they queue for :meth:`recv`."""

    def __init__(self, url: str, on_message: OnMessage | None = None) -> None:
        self.protocol = ClientProtocol(parse_uri(url))
        self.on_message = on_message
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # A failed handshake nobody awaits any more (the opener timed out) is not worth a warning.
        self.opened.add_done_callback(lambda future: future.cancelled() or future.exception())
        self.messages: deque[str] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._fragments: list[bytes] = []

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.protocol.send_request(self.protocol.connect())
        self._write()

    def data_received(self, data: bytes) -> None:
        arrival = time.monotonic()
        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if isinstance(event, Response):
                self._handshake_done(event)
            elif isinstance(event, Frame) and event.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
                self._fragments.append(bytes(event.data))
                if event.fin:
                    payload, self._fragments = b"".join(self._fragments), []
                    self._deliver(payload.decode("utf-8", "replace"), arrival)
        self._write()
        if self.protocol.close_expected() and self.transport is not None:
            # The server closes TCP after the closing handshake; do not wait on a silent one.
            asyncio.get_running_loop().call_later(5, self.transport.abort)

    def eof_received(self) -> bool:
        self.protocol.receive_eof()
        self._write()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionDropped(None))
        if not self.closed.done():
            self.closed.set_result(None)
        self._wake()

    # -- API -------------------------------------------------------------------------------------

    @property
    def close_code(self) -> int | None:
        return self.protocol.close_code

    @property
    def is_open(self) -> bool:
        return self.opened.done() and not self.opened.exception() and not self.closed.done()

    def send(self, text: str) -> None:
        """Sends a text message; a no-op once the socket is closing."""
        if self.is_open and self.protocol.state is State.OPEN:
            self.protocol.send_text(text.encode("utf-8"))
            self._write()

    async def recv(self, timeout: float) -> str:
        """Returns the next message; raises TimeoutError after ``timeout`` seconds, or
        ConnectionDropped if the socket closes first."""
        async with asyncio.timeout(timeout):
            while not self.messages:
                if self.closed.done():
                    raise ConnectionDropped(self.close_code)
                self._waiter = asyncio.get_running_loop().create_future()
                await self._waiter
        return self.messages.popleft()

    async def close(self, timeout: float = 5) -> None:
        """Starts the closing handshake and waits up to ``timeout`` s for the server to close TCP."""
        if self.transport is None or self.closed.done():
            return
        # Only while OPEN: once the server's close frame came (or TCP broke), websockets has
        # answered it (or has nothing to answer) and refuses another close frame.
        if self.protocol.state is State.OPEN and self.is_open:
            self.protocol.send_close(1000)
            self._write()
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except TimeoutError:
            self.transport.abort()

    def abort(self) -> None:
        """Drops the TCP connection at once (no closing handshake)."""
        if self.transport is not None:
            self.transport.abort()

    # -- internals -------------------------------------------------------------------------------

    def _handshake_done(self, response: Response) -> None:
        if self.opened.done():
            return
        if self.protocol.handshake_exc is None:
            self.opened.set_result(None)
            return
        reason = response.reason_phrase or ""
        self.opened.set_exception(HandshakeRejected(
            response.status_code, f"handshake rejected: HTTP {response.status_code} {reason}".rstrip()))

    def _deliver(self, text: str, arrival: float) -> None:
        if self.on_message is not None:
            self.on_message(text, arrival)
        else:
            self.messages.append(text)
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _write(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        for data in self.protocol.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()


async def open_client(target: WsTarget, source: str | None = None, timeout: float = 10,
                      on_message: OnMessage | None = None) -> WebSocketClient:
    """Connects to ``target`` (from local address ``source`` if given) and completes the opening
    handshake. Raises OSError (refused, unreachable...), HandshakeRejected, or TimeoutError."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        if source is not None:
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((source, 0))
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, (target.ip, target.port))
            _, client = await loop.create_connection(lambda: WebSocketClient(target.url, on_message), sock=sock)
            try:
                await asyncio.shield(client.opened)
            except BaseException:
                client.abort()
                raise
    except BaseException:
        sock.close()
        raise
    return client
