"""ASGI application of the Channels peer: ``/ws/bench`` (broadcasts) and ``/ws/echo/``."""
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.channels_peer.settings")
django.setup()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402  (needs settings loaded)
from django.urls import path  # noqa: E402

from .consumers import BroadcastConsumer, EchoConsumer  # noqa: E402

application = ProtocolTypeRouter({
    "websocket": URLRouter([
        path("ws/bench", BroadcastConsumer.as_asgi()),
        path("ws/echo/", EchoConsumer.as_asgi()),
    ]),
})
