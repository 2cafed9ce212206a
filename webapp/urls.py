"""URLs of the demo site. WebSocket handlers (``@websocket``) are routed here like views, under
WEBSOCKET_URL; nginx sends those paths to the WebSocket instance, everything else to Django."""
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("webapp.home.urls")),
    path("echo/", include("webapp.echo.urls")),
    path("gameoflife/", include("webapp.gameoflife.urls")),
    path("chat/", include("webapp.chat.urls")),
    path("accounts/", include("webapp.accounts.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("ws-stats/", include("ws4redis_server.urls")),
    # WebSocket handlers; every other /ws/<facility> is a pub/sub facility.
    path("ws/echo/", include("webapp.echo.ws_urls")),
    path("ws/gameoflife/", include("webapp.gameoflife.ws_urls")),
    path("ws/chat/", include("webapp.chat.ws_urls")),
]
