"""Serving one upgrade request, whatever the WebSocket server: plan it, or answer the error.

The sockets this process serves are kept in a set, so that a server going down can close them
all with 1001 (going away) and a reason, and clients reconnect (:func:`close_all`).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

import gevent

from .conf import Settings, get_settings
from .connection import GOING_AWAY, Connection
from .handlers import HandlerApp, RelayApp
from .handshake import HandshakeError, Plan, plan_socket
from .hub import get_hub
from .transports import Transport

logger = logging.getLogger("ws4redis_server.server")

SHUTDOWN_REASON = "server restarting or stopping; reconnect"
# Seconds the sockets get to finish their closing handshakes (the transport waits up to 5 s for
# the peer's close frame) before the ones left are cut.
SHUTDOWN_GRACE = 6.0

_open: set[Connection] = set()  # the sockets this process serves now
_closing: list[str] = []  # the reason, once close_all has started


def connection_for(plan: Plan, transport: Transport, settings: Settings) -> Connection:
    """Returns the Connection that serves ``plan`` over ``transport``."""
    if plan.handler is not None:
        app: Any = HandlerApp(plan.handler, plan.request, plan.identity, plan.args, plan.kwargs)
        return Connection(transport, get_hub(), settings, app)
    return Connection(transport, get_hub(), settings, RelayApp(plan.publish, settings.expire),
                      subscribe=plan.subscribe, echo=plan.flags.echo,
                      ids=plan.flags.ids or plan.resume_from is not None, resume_from=plan.resume_from)


def error_response(error: HandshakeError, start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answers a refused handshake with its status and reason, as plain text."""
    phrase = HTTPStatus(error.status).phrase
    body = f"{error.status} {phrase}: {error.reason}\n".encode()
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))), *error.headers]
    start_response(f"{error.status} {phrase}", headers)
    return [body]


def serve(environ: dict[str, Any], start_response: Callable[..., Any],
          make_transport: Callable[[dict[str, Any], Settings], Transport]) -> Iterable[bytes]:
    """Plans the socket for ``environ`` and serves it over ``make_transport(environ)``."""
    settings = get_settings()
    try:
        plan = plan_socket(environ, settings)
    except HandshakeError as error:
        return error_response(error, start_response)
    connection = connection_for(plan, make_transport(environ, settings), settings)
    _open.add(connection)
    try:
        if _closing:  # accepted while the process goes down: the client reconnects elsewhere
            connection.close(GOING_AWAY, _closing[0])
        connection.run()
    finally:
        _open.discard(connection)
    return []


def open_count() -> int:
    """How many sockets this process serves right now."""
    return len(_open)


def close_all(reason: str = SHUTDOWN_REASON, grace: float = SHUTDOWN_GRACE) -> int:
    """Closes every socket of this process with 1001 (going away) and ``reason``, after what is
    already queued for it, and waits for their closing handshakes; sockets still open after
    ``grace`` seconds (a client that does not read) are cut. Sockets that arrive meanwhile are
    closed the same way. Returns how many sockets were open. Runs once per process; a second
    call returns 0 at once. Call it from a greenlet of the process's gevent hub."""
    if _closing:
        return 0
    _closing.append(reason)
    count = len(_open)
    if count:
        logger.warning("closing %d sockets with 1001 (%s)", count, reason)
    for connection in list(_open):
        connection.close(GOING_AWAY, reason)
    deadline = time.monotonic() + grace
    while _open and time.monotonic() < deadline:
        gevent.sleep(0.05)
    if _open:
        logger.warning("cutting %d sockets that did not finish closing within %.0fs", len(_open), grace)
        for connection in list(_open):
            connection.transport.abort()
        deadline = time.monotonic() + 1.0
        while _open and time.monotonic() < deadline:
            gevent.sleep(0.05)
    return count
