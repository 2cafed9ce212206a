"""The development transport: the socket gevent.pywsgi accepted, after our own 101.

Used by ``manage.py runserver`` so the same handlers and facilities run without nginx or uWSGI;
frames are ``ws4redis_server.protocol``'s, exactly as under uWSGI.
"""
from __future__ import annotations

import os
from typing import Any

from wsproto.utilities import generate_accept_token

from . import FdTransport, first_subprotocol

HANDSHAKE_TIMEOUT = 10.0  # seconds the 101 may wait for room in the socket


class DevTransport(FdTransport):
    def __init__(self, sock: Any, environ: dict[str, Any]) -> None:
        super().__init__()
        self.sock = sock
        self.environ = environ

    def accept(self) -> None:
        self.fd = self.sock.fileno()
        os.set_blocking(self.fd, False)  # gevent's sockets are; the loop relies on it
        key = self.environ["HTTP_SEC_WEBSOCKET_KEY"].strip().encode("ascii")
        lines = [
            "HTTP/1.1 101 Switching Protocols",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Accept: {generate_accept_token(key).decode('ascii')}",
        ]
        protocol = first_subprotocol(self.environ)
        if protocol:
            lines.append(f"Sec-WebSocket-Protocol: {protocol}")
        self.write(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"), HANDSHAKE_TIMEOUT)

    def close(self) -> None:
        self.unwatch()
        try:
            self.sock.close()
        except OSError:
            pass
