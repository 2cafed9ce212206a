"""The uWSGI transport: ``uwsgi.websocket_*`` calls from the request's own greenlet.

uWSGI answers pings only inside ``websocket_recv*``; the loop calls ``recv_nowait`` when the
socket is readable and at least every ``WS4REDIS_WAKE_INTERVAL`` (below ``websocket-ping-freq``).
"""
from __future__ import annotations

import os
from typing import Any, Callable

import gevent
import uwsgi  # type: ignore[import-not-found]
from wsproto.frame_protocol import FrameProtocol

from . import ConnectionClosed


class UwsgiTransport:
    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ
        self.fd = -1
        self._watcher: Any = None

    def accept(self) -> None:
        try:
            uwsgi.websocket_handshake()
        except OSError as exc:
            raise ConnectionClosed(1006, f"handshake failed: {exc}") from exc
        self.fd = uwsgi.connection_fd()

    def watch(self, on_readable: Callable[[], None]) -> None:
        self._watcher = gevent.get_hub().loop.io(self.fd, 1)
        self._watcher.start(on_readable)

    def recv_nowait(self) -> bytes | None:
        try:
            message = uwsgi.websocket_recv_nb()
        except OSError as exc:
            raise ConnectionClosed(1006, str(exc)) from exc
        return message or None

    def send(self, data: bytes, is_text: bool) -> None:
        try:
            if is_text:
                uwsgi.websocket_send(data)
            else:
                uwsgi.websocket_send_binary(data)
        except OSError as exc:
            raise ConnectionClosed(1006, str(exc)) from exc

    def keepalive(self) -> None:
        """Nothing to do: uWSGI pings from inside ``recv_nowait``."""

    def close(self, code: int, reason: str) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        if self.fd < 0:
            return
        # uWSGI 2.0 has no close call: write the close frame (built by wsproto) ourselves,
        # then uWSGI closes the connection when the request returns.
        frame = bytes(FrameProtocol(client=False, extensions=[]).close(code, reason[:120]))
        try:
            os.write(self.fd, frame)
        except OSError:
            pass
