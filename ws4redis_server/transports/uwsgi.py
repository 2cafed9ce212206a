"""The uWSGI transport: uWSGI does the opening handshake; every frame after it, both ways, is read
and written by us on the connection's file descriptor (``ws4redis_server.protocol`` builds and
parses them).

uWSGI 2.0's own frame reader (``uwsgi.websocket_recv*``) is never called: it crashes the worker
(a segmentation fault, taking every socket of the process with it) on a continuation frame
without a first fragment, cannot tell text from binary frames (no 1007 for invalid UTF-8), and
drops the connection without a close code on a message over ``websocket-max-size``. Its sender is
not used either: our frames (pongs, close frames) and its own would share the descriptor, and
writing them all ourselves keeps them in order. ``uwsgi.websocket_handshake`` is called from the
request's own greenlet.

Once the socket is open it is detached from its request: the transport keeps a duplicate of the
descriptor, and the request returns. uWSGI then closes its own descriptor (the connection stays:
the duplicate holds it) and frees the request's async core, buffers and environ for the next
handshake, so an open socket holds no uWSGI core and no greenlet, and ``gevent = N`` (the
cores) bounds only the handshakes in flight, not the sockets.
"""
from __future__ import annotations

import os
from typing import Any

import uwsgi

from . import ConnectionClosed, FdTransport, first_subprotocol, handshake_response

HANDSHAKE_TIMEOUT = 10.0  # seconds our own 101 may wait for room in the socket


# uWSGI's http11-socket keeps a connection's descriptor after its request, to read the next
# request on it: there a socket stays with its request (and its core) until it closes.
KEEPS_CONNECTIONS = bool(uwsgi.opt.get("http11-socket"))


class UwsgiTransport(FdTransport):
    __slots__ = ("detached", "environ")
    detaches = not KEEPS_CONNECTIONS

    def __init__(self, environ: dict[str, Any]) -> None:
        super().__init__()
        self.environ: dict[str, Any] | None = environ
        self.detached = False

    def accept(self, extensions: str | None = None) -> None:
        if extensions:
            # uWSGI's handshake cannot answer extensions: the 101 is ours, written where uWSGI
            # would write its own (nginx's uwsgi_pass passes it on the same way).
            self.fd = uwsgi.connection_fd()
            os.set_blocking(self.fd, False)
            assert self.environ is not None
            self.write(handshake_response(self.environ, extensions), HANDSHAKE_TIMEOUT)
            return
        # uWSGI echoes a list of offered subprotocols as it came; a client accepts only one.
        assert self.environ is not None
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

    def detach(self) -> None:
        """Keeps the connection beyond the request: a descriptor of our own, the environ let go."""
        if not self.detaches:
            return
        fd = os.dup(self.fd)
        os.set_blocking(fd, False)
        self.fd, self.detached, self.environ = fd, True, None

    def close(self) -> None:
        self.unwatch()
        if self.detached:  # before detach, uWSGI closes its descriptor when the request returns
            self.detached = False
            try:
                os.close(self.fd)
            except OSError:
                pass
        elif KEEPS_CONNECTIONS:
            self.abort()  # the connection ends here: uWSGI would wait on it for a next request
