"""URLs of the library tests' project: a few handlers under WEBSOCKET_URL beside the facilities."""
from django.contrib import admin
from django.urls import path

from ws4redis_server import WebSocket, websocket


@websocket
def echo(ws: WebSocket) -> None:
    while (message := ws.recv()) is not None:
        ws.send(message)


@websocket
def whoami(ws: WebSocket) -> None:
    ws.send(ws.identity.username or "")


urlpatterns = [
    path("ws/echo/", echo),
    path("ws/whoami/", whoami),
    path("admin/", admin.site.urls),  # a plain page for the live server's tests
]
