"""The uWSGI transport: uWSGI does the handshake and sends frames (in C); inbound frames are read
from the connection's file descriptor and parsed by wsproto.

uWSGI 2.0's own frame reader (``uwsgi.websocket_recv*``) is never called: it crashes the worker
(a segmentation fault, taking every socket of the process with it) on a continuation frame
without a first fragment, cannot tell text from binary frames (no 1007 for invalid UTF-8), and
drops the connection without a close code on a message over ``websocket-max-size``. Reading
ourselves also means the keepalive pings are ours (``keepalive``, every wake interval).
``uwsgi.websocket_*`` calls are made from the request's own greenlet.
"""
from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any

import gevent
import gevent.socket
import uwsgi

from . import ConnectionClosed, first_subprotocol
from .frames import InboundFrames

CLOSE_TIMEOUT = 5.0  # seconds to wait for room in the socket for the close frame
WRITE_TIMEOUT = 30.0  # seconds a pong may wait for room in the socket
READ_SIZE = 65536
UNPARSABLE = (1002, 1007)  # after these, the peer's close frame cannot be found in the stream


class UwsgiTransport:
    def __init__(self, environ: dict[str, Any], max_message_size: int) -> None:
        self.environ = environ
        self.fd = -1
        self.frames = InboundFrames(max_message_size)
        self._watcher: Any = None
        # The last read emptied the socket: nothing to read until the watcher fires again.
        self._drained = False

    def accept(self) -> None:
        # uWSGI echoes a list of offered subprotocols as it came; a client accepts only one.
        protocol = first_subprotocol(self.environ)
        try:
            if protocol is None:
                uwsgi.websocket_handshake()
            else:
                # Empty key and origin: uWSGI takes the request's own.
                uwsgi.websocket_handshake("", "", protocol)
        except OSError as exc:
            raise ConnectionClosed(1006, f"handshake failed: {exc}") from exc
        self.fd = uwsgi.connection_fd()
        os.set_blocking(self.fd, False)  # reads below must never block the process

    def watch(self, on_readable: Callable[[], None]) -> None:
        def readable() -> None:
            self._drained = False
            on_readable()

        self._watcher = gevent.get_hub().loop.io(self.fd, 1)
        self._watcher.start(readable)

    def recv_nowait(self) -> bytes | None:
        frames = self.frames
        while not frames.messages:
            if frames.closed is not None:
                raise frames.closed
            if self._drained:
                return None  # a read now would only fail with EAGAIN
            try:
                data = os.read(self.fd, READ_SIZE)
            except BlockingIOError:
                self._drained = True
                return None
            except OSError as exc:
                raise ConnectionClosed(1006, str(exc)) from exc
            # A short read took all the socket had (the watcher is level-triggered: it fires
            # again for anything that arrives later).
            self._drained = 0 < len(data) < READ_SIZE
            reply = frames.feed(data or None)
            if reply:
                self._write(reply, WRITE_TIMEOUT)
        return frames.messages.popleft()

    def send(self, data: bytes, is_text: bool) -> None:
        try:
            if is_text:
                uwsgi.websocket_send(data)
            else:
                uwsgi.websocket_send_binary(data)
        except OSError as exc:
            raise ConnectionClosed(1006, str(exc)) from exc

    def keepalive(self) -> None:
        """Pings the peer; one that has not answered the previous ping is gone (1006)."""
        if not self.frames.open:
            return
        if self.frames.awaiting_pong:
            self.frames.closed = ConnectionClosed(1006, "no pong to the last ping")
            raise self.frames.closed
        self._write(self.frames.ping(), WRITE_TIMEOUT)

    def close(self, code: int, reason: str) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        if self.fd < 0:
            return
        # uWSGI 2.0 has no close call: send the close frame ourselves; uWSGI closes the
        # connection when the request returns.
        try:
            self._write(self.frames.close_frame(code, reason), CLOSE_TIMEOUT)
            if code not in UNPARSABLE:
                self._await_peer_close(time.monotonic() + CLOSE_TIMEOUT)
        except ConnectionClosed:
            pass  # the peer does not read: it gets no close frame, only the end of the connection

    def _await_peer_close(self, deadline: float) -> None:
        """Reads (and drops) what the peer still sends until its close frame: closing on unread
        data would reset the connection, and the peer would never see our close code."""
        frames = self.frames
        while frames.closing:
            try:
                gevent.socket.wait_read(self.fd, max(0.0, deadline - time.monotonic()))
                data = os.read(self.fd, READ_SIZE)
            except BlockingIOError:
                continue
            except (OSError, TimeoutError):
                return
            if not data or frames.peer_closed(data):
                return

    def abort(self) -> None:
        if self.fd >= 0:
            with socket.socket(fileno=os.dup(self.fd)) as sock:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _write(self, data: bytes, timeout: float) -> None:
        try:
            while data:
                gevent.socket.wait_write(self.fd, timeout)
                data = data[os.write(self.fd, data):]
        except (OSError, TimeoutError) as exc:
            raise ConnectionClosed(1006, f"write failed: {exc}") from exc
