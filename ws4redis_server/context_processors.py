from typing import Any

from django.http import HttpRequest

from .conf import get_settings


def default(request: HttpRequest) -> dict[str, Any]:
    """Adds ``WEBSOCKET_URI`` (ws:// or wss://, host, WEBSOCKET_URL) and ``WS4REDIS_HEARTBEAT``."""
    settings = get_settings()
    scheme = "wss://" if request.is_secure() else "ws://"
    return {
        "WEBSOCKET_URI": f"{scheme}{request.get_host()}{settings.websocket_url}",
        "WS4REDIS_HEARTBEAT": settings.heartbeat,
    }
