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
"""
from typing import Any

__version__ = "0.1.0"
__all__ = ["RedisPublisher", "RedisMessage", "SELF", "websocket", "publish"]


def __getattr__(name: str) -> Any:
    # Lazy, so importing the package does not import Django settings or gevent.
    if name in ("RedisPublisher", "RedisMessage", "SELF"):
        from . import publisher

        return getattr(publisher, name)
    if name == "websocket":
        from .handlers import websocket

        return websocket
    if name == "publish":
        from .publisher import publish

        return publish
    raise AttributeError(name)
