"""WebSocket handlers of the echo demo (routed under /ws/echo/)."""
from django.urls import path

from . import handlers

urlpatterns = [
    path("", handlers.echo, name="echo-ws"),
    path("raw/", handlers.raw_echo, name="echo-raw-ws"),
]
