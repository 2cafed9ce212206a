"""Serving one upgrade request, whatever the WebSocket server: plan it, or answer the error.

The sockets this process serves are kept in a set, so that a server going down can close them
all with 1001 (going away) and a reason, and clients reconnect (:func:`close_all`).

Pub/sub sockets with group flags are also kept by username: when a user's groups change (a
``groups-changed`` notice on the hub's control channel, see identity.py), :func:`groups_changed`
closes theirs with 4001 and a reason, and clients reconnect with their new groups. A handshake
planned with the old groups and registered after the notice is closed the same way: notices
that arrive while a handshake is under way are remembered for it.
"""
from __future__ import annotations

import logging
import resource
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

import gevent

from .channels import GROUPS_CHANGED
from .codes import CloseCode
from .compression import Deflate, negotiate
from .conf import Settings, get_settings
from .connection import GOING_AWAY, Connection
from .handlers import HandlerApp, RelayApp
from .handshake import HandshakeError, Plan, plan_socket
from .hub import get_hub
from .metrics import STATS
from .transports import Transport

logger = logging.getLogger("ws4redis_server.server")

SHUTDOWN_REASON = "server restarting or stopping; reconnect"
# Seconds the sockets get to finish their closing handshakes (the transport waits up to 5 s for
# the peer's close frame) before the ones left are cut.
SHUTDOWN_GRACE = 6.0

GROUPS_CHANGED_REASON = "group membership changed; reconnect"
# Files a process keeps for other things than its sockets (Redis, logs, listening sockets,
# handshakes in flight): a process refuses new sockets with 503 beyond its file limit minus this.
RESERVED_FILES = 256
FULL_REASON = "this server process holds as many sockets as its file limit allows; retry"

_open: set[Connection] = set()  # the sockets this process serves now
_closing: list[str] = []  # the reason, once close_all has started
_closing_deadline: list[float] = []  # when close_all cuts the sockets left (time.monotonic())
_group_sockets: dict[str, set[Connection]] = {}  # username -> its open sockets with group flags
_planning: set[_Handshake] = set()


class _Handshake:
    """A handshake under way, and the usernames whose groups changed since it began."""

    __slots__ = ("changed",)

    def __init__(self) -> None:
        self.changed: set[str] = set()


def follows_groups(plan: Plan) -> str | None:
    """Returns the username of a pub/sub socket whose channels depend on the user's groups (a
    ``subscribe-group`` or ``publish-group`` flag), else None (handlers, other flags, anonymous)."""
    flags = plan.flags
    if plan.handler is None and ("group" in flags.subscribe or "group" in flags.publish):
        return plan.identity.username
    return None


def groups_changed(usernames: list[str]) -> int:
    """Closes this process's sockets with group flags of ``usernames`` with 4001 (the control
    notice's handler). Returns how many were open."""
    for handshake in _planning:
        handshake.changed.update(usernames)
    count = 0
    for username in usernames:
        for connection in _group_sockets.get(username, ()):
            connection.close(CloseCode.GROUPS_CHANGED, GROUPS_CHANGED_REASON)
            count += 1
    if count:
        logger.info("closing %d sockets whose user's groups changed", count)
    return count


def connection_for(plan: Plan, transport: Transport, settings: Settings,
                   compression: tuple[str, Deflate] | None = None) -> Connection:
    """Returns the Connection that serves ``plan`` over ``transport`` (with permessage-deflate
    if ``compression`` was negotiated)."""
    if plan.handler is not None:
        app: Any = HandlerApp(plan.handler, plan.request, plan.identity, plan.args, plan.kwargs)
        return Connection(transport, get_hub(), settings, app, compression=compression)
    return Connection(transport, get_hub(), settings, RelayApp(plan.publish, settings.expire),
                      subscribe=plan.subscribe, echo=plan.flags.echo,
                      ids=plan.flags.ids or plan.resume_from is not None, resume_from=plan.resume_from,
                      compression=compression, idle_heartbeat=True)


def error_response(error: HandshakeError, start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answers a refused handshake with its status and reason, as plain text."""
    phrase = HTTPStatus(error.status).phrase
    body = f"{error.status} {phrase}: {error.reason}\n".encode()
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))), *error.headers]
    start_response(f"{error.status} {phrase}", headers)
    return [body]


def capacity() -> int:
    """How many sockets this process takes: its file limit (RLIMIT_NOFILE) minus RESERVED_FILES."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(1, soft - RESERVED_FILES) if soft != resource.RLIM_INFINITY else 1 << 30


def serve(environ: dict[str, Any], start_response: Callable[..., Any],
          make_transport: Callable[[dict[str, Any], Settings], Transport]) -> Iterable[bytes]:
    """Plans the socket for ``environ`` and serves it over ``make_transport(environ)``. A process
    at its capacity answers 503 with Retry-After (a socket it opened would run out of files)."""
    if len(_open) >= capacity():
        STATS["refused_full"] += 1
        return error_response(HandshakeError(503, FULL_REASON, [("Retry-After", "1")]), start_response)
    settings = get_settings()
    get_hub().controls[GROUPS_CHANGED] = groups_changed
    handshake = _Handshake()
    _planning.add(handshake)
    try:
        try:
            plan = plan_socket(environ, settings)
        except HandshakeError as error:
            return error_response(error, start_response)
        compression = negotiate(environ.get("HTTP_SEC_WEBSOCKET_EXTENSIONS")) if settings.compression else None
        connection = connection_for(plan, make_transport(environ, settings), settings, compression)
        username = follows_groups(plan)
        if username is not None:
            _group_sockets.setdefault(username, set()).add(connection)
            if username in handshake.changed:
                connection.close(CloseCode.GROUPS_CHANGED, GROUPS_CHANGED_REASON)
    finally:
        _planning.discard(handshake)
    def finished(connection: Connection) -> None:
        _open.discard(connection)
        if username is not None:
            sockets = _group_sockets[username]
            sockets.discard(connection)
            if not sockets:
                del _group_sockets[username]

    connection.on_finished = finished
    _open.add(connection)
    if _closing:  # accepted while the process goes down: the client reconnects elsewhere
        connection.close(GOING_AWAY, _closing[0])
    connection.run()
    if not connection.transport.detaches:
        connection.wait()  # this transport's request must last as long as the socket
    return []


def _wait_closed(deadline: float) -> None:
    while _open and time.monotonic() < deadline:
        gevent.sleep(0.05)


def open_count() -> int:
    """How many sockets this process serves right now."""
    return len(_open)


def close_all(reason: str = SHUTDOWN_REASON, grace: float = SHUTDOWN_GRACE) -> int:
    """Closes every socket of this process with 1001 (going away) and ``reason``, after what is
    already queued for it, and waits for their closing handshakes; sockets still open after
    ``grace`` seconds (a client that does not read) are cut. Sockets that arrive meanwhile are
    closed the same way. Returns how many sockets were open. Runs once per process; a second
    call (uWSGI's atexit after a signal's) waits for the first's end and returns 0. Call it
    from a greenlet of the process's gevent hub (the sockets are served by its loop)."""
    if _closing:  # closing already (a signal, then uwsgi.atexit): wait for the same end
        _wait_closed(_closing_deadline[0] + 1.0)
        return 0
    _closing.append(reason)
    count = len(_open)
    if count:
        logger.warning("closing %d sockets with 1001 (%s)", count, reason)
    _closing_deadline.append(time.monotonic() + grace)
    for connection in list(_open):
        connection.close(GOING_AWAY, reason)
    _wait_closed(_closing_deadline[0])
    if _open:
        logger.warning("cutting %d sockets that did not finish closing within %.0fs", len(_open), grace)
        for connection in list(_open):
            connection.transport.abort()
        _wait_closed(time.monotonic() + 1.0)
    return count
