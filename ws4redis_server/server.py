"""Serving one upgrade request, whatever the WebSocket server: plan it, or answer the error."""
from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, Callable, Iterable

from .conf import Settings, get_settings
from .connection import Connection
from .handlers import HandlerApp, RelayApp
from .handshake import HandshakeError, Plan, plan_socket
from .hub import get_hub
from .transports import Transport

logger = logging.getLogger("ws4redis_server.server")


def connection_for(plan: Plan, transport: Transport, settings: Settings) -> Connection:
    """Returns the Connection that serves ``plan`` over ``transport``."""
    if plan.handler is not None:
        app: Any = HandlerApp(plan.handler, plan.request, plan.identity, plan.args, plan.kwargs)
        return Connection(transport, get_hub(), settings, app)
    return Connection(transport, get_hub(), settings, RelayApp(plan.publish, settings.expire),
                      subscribe=plan.subscribe, echo=plan.flags.echo)


def error_response(error: HandshakeError, start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answers a refused handshake with its status and reason, as plain text."""
    phrase = HTTPStatus(error.status).phrase
    body = f"{error.status} {phrase}: {error.reason}\n".encode("utf-8")
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
    connection_for(plan, make_transport(environ, settings), settings).run()
    return []
