"""URLs of the library tests' project: a few handlers under WEBSOCKET_URL beside the facilities."""
from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

from ws4redis_server import WebSocket, websocket


@websocket
def echo(ws: WebSocket) -> None:
    while (message := ws.recv()) is not None:
        ws.send(message)


@websocket
def whoami(ws: WebSocket) -> None:
    ws.send(ws.identity.username or "")


def ws4redis_usage(request: HttpRequest) -> HttpResponse:
    """django-websocket-redis 0.6.0's documented client page (templates/ws4redis-0.6-usage.html),
    rendered with the context processor's WEBSOCKET_URI and WS4REDIS_HEARTBEAT and, as the docs'
    ``{{ STATIC_URL }}`` expects, STATIC_URL."""
    return render(request, "ws4redis-0.6-usage.html", {"STATIC_URL": settings.STATIC_URL})


urlpatterns = [
    path("ws/echo/", echo),
    path("ws/whoami/", whoami),
    path("ws4redis-0.6/usage/", ws4redis_usage),
    path("admin/", admin.site.urls),  # a plain page for the live server's tests
]
