"""``{% load ws4redis %}``: the JavaScript client's configuration in a page.

``{% ws4redis_config %}`` renders, with :func:`django.utils.html.json_script`::

    <script id="ws4redis-config" type="application/json">
      {"uri": "ws://host/ws/", "url": "/ws/", "heartbeat": "--heartbeat--"}
    </script>

``uri`` is built from the ``request`` in the context (``wss://`` when ``request.is_secure()``),
or ``null`` without one; ``url`` is WEBSOCKET_URL; ``heartbeat`` is WS4REDIS_HEARTBEAT or
``null``. The client (``ws4redis.js``) reads it when a ``WS4Redis`` is made without ``uri``::

    new WS4Redis({ facility: "news", flags: "subscribe-broadcast", onmessage })

and builds the URI from ``window.location`` and ``url`` when ``uri`` is ``null``. Put the tag
once per page, anywhere before the scripts that open sockets run (e.g. in ``<head>``).
"""
from __future__ import annotations

from typing import Any

from django import template
from django.utils.html import json_script
from django.utils.safestring import SafeString

from ..conf import get_settings
from ..context_processors import websocket_uri

register = template.Library()

#: The id of the configuration's <script> element, which ws4redis.js looks up.
CONFIG_ID = "ws4redis-config"


def client_config(request: Any = None) -> dict[str, Any]:
    """The JavaScript client's configuration: ``uri`` (or None without a request), ``url`` and
    ``heartbeat``."""
    settings = get_settings()
    return {
        "uri": websocket_uri(request) if request is not None else None,
        "url": settings.websocket_url,
        "heartbeat": settings.heartbeat,
    }


@register.simple_tag(takes_context=True)
def ws4redis_config(context: template.Context) -> SafeString:
    """``<script id="ws4redis-config" type="application/json">{...}</script>`` for ws4redis.js."""
    return json_script(client_config(context.get("request")), CONFIG_ID)
