"""The development transport: the socket gevent.pywsgi accepted, after our own 101.

Used by ``manage.py runserver`` so the same handlers and facilities run without nginx or uWSGI;
frames are ``ws4redis_server.protocol``'s, exactly as under uWSGI.
"""
from __future__ import annotations

import os
from typing import Any

from . import FdTransport, handshake_response

HANDSHAKE_TIMEOUT = 10.0  # seconds the 101 may wait for room in the socket


class DevTransport(FdTransport):
    __slots__ = ("environ", "sock")

    def __init__(self, sock: Any, environ: dict[str, Any]) -> None:
        super().__init__()
        self.sock = sock
        self.environ = environ

    def accept(self, extensions: str | None = None) -> None:
        self.fd = self.sock.fileno()
        os.set_blocking(self.fd, False)  # gevent's sockets are; the loop relies on it
        self.write(handshake_response(self.environ, extensions), HANDSHAKE_TIMEOUT)

    def close(self) -> None:
        self.unwatch()
        try:
            self.sock.close()
        except OSError:
            pass
