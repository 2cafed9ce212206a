"""``ws4redis_server.context_processors.default``: what templates need to open sockets, as in
django-websocket-redis 0.6.0.

``WEBSOCKET_URI``
    ``ws://host/ws/`` (``wss://`` for a secure request): the base of every socket's URI.
``WS4REDIS_HEARTBEAT``
    a JavaScript literal, marked safe: ``"--heartbeat--"`` (the setting, JSON-escaped and safe
    inside a ``<script>``) or ``null``. So ``heartbeat_msg: {{ WS4REDIS_HEARTBEAT }}`` in a script
    is valid JavaScript. For HTML attributes or a config the JavaScript client reads, use
    ``{% load ws4redis %}{% ws4redis_config %}`` instead.
"""
from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest
from django.utils.safestring import SafeString, mark_safe

from .conf import get_settings

# As django.utils.html.json_script: no "</script>", "<!--" or "&" can end or change the script.
_SCRIPT_ESCAPES = {ord(">"): "\\u003E", ord("<"): "\\u003C", ord("&"): "\\u0026"}


def javascript_literal(value: str | None) -> SafeString:
    """``value`` as a JavaScript string literal (``null`` for None), safe inside a <script>."""
    return mark_safe(json.dumps(value).translate(_SCRIPT_ESCAPES))


def websocket_uri(request: HttpRequest) -> str:
    """``ws[s]://<host><WEBSOCKET_URL>`` for this request."""
    scheme = "wss://" if request.is_secure() else "ws://"
    return f"{scheme}{request.get_host()}{get_settings().websocket_url}"


def default(request: HttpRequest) -> dict[str, Any]:
    """Adds ``WEBSOCKET_URI`` and ``WS4REDIS_HEARTBEAT`` (a JavaScript literal) to the context."""
    return {
        "WEBSOCKET_URI": websocket_uri(request),
        "WS4REDIS_HEARTBEAT": javascript_literal(get_settings().heartbeat),
    }
