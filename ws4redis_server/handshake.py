"""From a WSGI environ to a subscription plan, or an HTTP error with a reason.

Checks the upgrade request, identifies the socket from the Django session (the username and
groups come from a Redis cache by user pk, see identity.py, so only a miss queries the database),
applies the ``WS4REDIS_PROCESS_REQUEST`` and ``WS4REDIS_ALLOWED_CHANNELS`` hooks, and resolves the
URL to a ``@websocket`` handler or to a pub/sub facility. Nothing here touches a socket, and Redis
only through that cache.
"""
from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from django.conf import settings as django_settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user
from django.core.exceptions import PermissionDenied
from django.core.handlers.wsgi import WSGIRequest
from django.db import connections
from django.urls import Resolver404, resolve
from django.utils.functional import SimpleLazyObject

from . import history
from . import identity as identity_cache
from .channels import Flags, Identity, InvalidFacility, audience_channels, check_facility, parse_flags
from .conf import Settings
from .security import may_publish_anonymously


class HandshakeError(Exception):
    """The request cannot become a socket: answer ``status`` with ``reason`` instead."""

    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.headers = headers or []


@dataclass
class Plan:
    """What a socket is allowed to do, decided before the upgrade."""

    request: WSGIRequest
    identity: Identity
    flags: Flags
    facility: str | None = None
    subscribe: list[str] = field(default_factory=list)
    publish: list[str] = field(default_factory=list)
    handler: Callable[..., Any] | None = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    resume_from: str | None = None  # ``last-id``: replay what came after this message id


def check_upgrade(environ: dict[str, Any]) -> None:
    """Raises HandshakeError unless ``environ`` is a valid RFC 6455 opening handshake."""
    if environ.get("REQUEST_METHOD") != "GET":
        raise HandshakeError(405, "WebSocket handshakes use GET", [("Allow", "GET")])
    if "websocket" not in environ.get("HTTP_UPGRADE", "").lower():
        raise HandshakeError(
            426, "This URL expects a WebSocket upgrade (Upgrade: websocket)",
            [("Upgrade", "websocket"), ("Connection", "Upgrade")],
        )
    if "upgrade" not in environ.get("HTTP_CONNECTION", "").lower():
        raise HandshakeError(400, "Connection header must contain 'Upgrade'")
    if environ.get("HTTP_SEC_WEBSOCKET_VERSION", "").strip() != "13":
        raise HandshakeError(400, "Sec-WebSocket-Version must be 13", [("Sec-WebSocket-Version", "13")])
    key = environ.get("HTTP_SEC_WEBSOCKET_KEY", "").strip()
    try:
        valid_key = len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        valid_key = False
    if not valid_key:
        raise HandshakeError(400, "Sec-WebSocket-Key must be 16 bytes in base64")


def check_origin(environ: dict[str, Any], settings: Settings) -> None:
    """Raises HandshakeError 403 if a browser page of another site opens the socket. Clients
    that send no ``Origin`` (not browsers) pass: they cannot borrow a visitor's cookies."""
    origin = environ.get("HTTP_ORIGIN")
    if origin is not None and not settings.allowed_origins.allows(origin):
        raise HandshakeError(403, f"Origin {origin[:100]!r} is not allowed (WS4REDIS_ALLOWED_ORIGINS)")


def default_process_request(request: WSGIRequest) -> None:
    """Attaches ``request.session`` from the session cookie, and a lazy ``request.user``."""
    engine = import_module(django_settings.SESSION_ENGINE)
    session_key = request.COOKIES.get(django_settings.SESSION_COOKIE_NAME)
    request.session = engine.SessionStore(session_key)
    request.user = SimpleLazyObject(lambda: get_user(request))


def identify(request: WSGIRequest) -> Identity:
    """Returns who is on the socket: the session's user, with the username and groups from the
    cache of identity.py (filled from ``request.user``, or the session's user, on a miss); without
    a session user, ``request.user`` as a ``WS4REDIS_PROCESS_REQUEST`` hook set it."""
    session = getattr(request, "session", None)
    session_key = getattr(session, "session_key", None) if session is not None else None
    user_id = session.get(SESSION_KEY) if session is not None else None
    if session is not None and user_id is not None:
        found = identity_cache.lookup(user_id, session.get(HASH_SESSION_KEY) or "", lambda: _session_user(request))
        return Identity(*found, session_key) if found is not None else Identity(None, (), session_key)
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return Identity(None, (), session_key)
    if getattr(user, "pk", None) is None or getattr(user, "groups", None) is None:
        return Identity(user.get_username(), (), session_key)  # a hook's user outside the database
    found = identity_cache.lookup(user.pk, None, lambda: user)
    assert found is not None
    return Identity(*found, session_key)


def _session_user(request: WSGIRequest) -> Any:
    """Returns the session's user (checked as Django checks it), or None."""
    user = getattr(request, "user", None) or get_user(request)
    return user if user.is_authenticated else None


def plan_socket(environ: dict[str, Any], settings: Settings) -> Plan:
    """Returns the Plan for an upgrade request; raises HandshakeError (400/403/404/405/426)."""
    check_upgrade(environ)
    check_origin(environ, settings)
    request = WSGIRequest(environ)
    try:
        (settings.process_request or default_process_request)(request)
        identity = identify(request)
        return _route(request, identity, settings)
    except PermissionDenied as exc:
        raise HandshakeError(403, str(exc) or "Permission denied") from exc
    finally:
        # A socket lives for hours: never keep a database connection for it.
        for connection in connections.all(initialized_only=True):
            connection.close()


def _route(request: WSGIRequest, identity: Identity, settings: Settings) -> Plan:
    path = request.path_info
    flags = parse_flags(request.META.get("QUERY_STRING", ""))
    try:
        match = resolve(path)
    except Resolver404:
        match = None
    handler = getattr(match.func, "ws_handler", None) if match is not None else None
    if handler is not None:
        return Plan(request, identity, flags, handler=handler, args=match.args, kwargs=match.kwargs)
    if not path.startswith(settings.websocket_url):
        raise HandshakeError(404, f"No WebSocket endpoint at {path[:100]}")
    facility = path[len(settings.websocket_url):]
    if facility.endswith("/"):
        facility = facility[:-1]
    try:
        check_facility(facility)
    except InvalidFacility as exc:
        raise HandshakeError(400, str(exc)) from exc
    request.ws4redis_facility = facility
    request.ws4redis_identity = identity
    if settings.allowed_channels is not None:
        # As in ws4redis, the hook gets and returns the flags ("subscribe-user", ...).
        allowed = settings.allowed_channels(request, flags.names())
        flags = flags.restricted_to(allowed)
    if flags.publish and not identity.is_authenticated \
            and not may_publish_anonymously(settings.anonymous_publish, facility):
        raise HandshakeError(403, f"Log in to publish on facility {facility!r} (WS4REDIS_ANONYMOUS_PUBLISH)")
    resume_from = flags.params.get("last-id")
    if resume_from is not None:
        try:
            history.parse_id(resume_from)
        except ValueError as exc:
            raise HandshakeError(400, f"last-id: {exc}") from exc
    return Plan(
        request, identity, flags, facility=facility,
        subscribe=audience_channels(settings.prefix, facility, flags.subscribe, identity),
        publish=audience_channels(settings.prefix, facility, flags.publish, identity),
        resume_from=resume_from,
    )
