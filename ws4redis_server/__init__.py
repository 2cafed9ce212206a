"""ws4redis_server: WebSockets for a classic Django site, in a gevent uWSGI sidecar joined to
Django by Redis pub/sub.

Django side::

    from ws4redis_server import RedisPublisher, RedisMessage
    RedisPublisher(facility="news", broadcast=True).publish_message("hello")

Handler side::

    from ws4redis_server import websocket

    @websocket
    def echo(ws):
        ws.send(ws.recv())

Every name an application uses is listed in ``__all__`` and importable from this package; the
modules behind them are internal and may change between releases. Test helpers live in
:mod:`ws4redis_server.testing`. Importing the package imports neither Django's settings nor
gevent: each name is loaded on first use.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

#: The JavaScript client's path among the static files: ``{% static JS_CLIENT %}``.
JS_CLIENT = "ws4redis/ws4redis.js"

# Public name -> the internal module that defines it.
_EXPORTS = {
    # Publishing from Django (views, admin, signals, workers).
    "RedisPublisher": "publisher",
    "RedisMessage": "publisher",
    "SELF": "publisher",
    "publish": "publisher",
    "delivery_count": "receipts",
    "strip_envelopes": "publisher",
    # Handlers that run in the WebSocket loop.
    "websocket": "handlers",
    "WebSocket": "handlers",
    "Identity": "channels",
    "CloseCode": "codes",
    # Channels, settings and the process's Redis client, for an application's own Redis use.
    "channel_name": "channels",
    "get_settings": "conf",
    "Settings": "conf",
    "get_redis": "redis_client",
    # Process-wide listeners of the WebSocket loop (one per process, not one per socket).
    "get_hub": "hub",
    "Hub": "hub",
    "Listener": "hub",
}

__all__ = ["JS_CLIENT", "__version__", *_EXPORTS]

if TYPE_CHECKING:  # pragma: no cover
    from .channels import Identity, channel_name  # noqa: F401
    from .codes import CloseCode  # noqa: F401
    from .conf import Settings, get_settings  # noqa: F401
    from .handlers import WebSocket, websocket  # noqa: F401
    from .hub import Hub, Listener, get_hub  # noqa: F401
    from .publisher import SELF, RedisMessage, RedisPublisher, publish, strip_envelopes  # noqa: F401
    from .receipts import delivery_count  # noqa: F401
    from .redis_client import get_redis  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ws4redis_server' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
