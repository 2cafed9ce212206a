"""``manage.py runserver`` with WebSockets: gevent.pywsgi serves pages and WEBSOCKET_URL on one
port, with wsproto doing the framing. For development only (one process, no nginx/uWSGI)."""
from __future__ import annotations

from typing import Any

from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.servers.basehttp import get_internal_wsgi_application
from gevent.pywsgi import WSGIHandler, WSGIServer

from .conf import get_settings
from .hub import get_hub
from .server import serve
from .transports.devserver import DevTransport


def is_upgrade(environ: dict[str, Any]) -> bool:
    return "websocket" in environ.get("HTTP_UPGRADE", "").lower()


class WebSocketHandler(WSGIHandler):
    """Hands upgrade requests for WEBSOCKET_URL (and ``@websocket`` routes) to the socket loop."""

    def run_application(self) -> None:
        under_ws = self.environ.get("PATH_INFO", "").startswith(get_settings().websocket_url)
        if not (is_upgrade(self.environ) or under_ws):
            return super().run_application()
        sock = self.socket
        responded: list[str] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            responded.append(status)
            return self.start_response(status, headers, exc_info)

        def make_transport(environ: dict[str, Any], settings: Any) -> DevTransport:
            self.status = "101 Switching Protocols"
            self.close_connection = True
            return DevTransport(sock, environ)

        self.result = serve(self.environ, start_response, make_transport)
        if responded:
            self.process_result()
        else:
            self.result = None  # type: ignore[assignment]
            self.response_length = 0
            self.close_connection = True


def dev_server(listener: Any, application: Any = None, **kwargs: Any) -> WSGIServer:
    """Returns a gevent WSGIServer, not yet started, on ``listener`` (an address or a bound
    socket) that serves ``application`` (the project's WSGI_APPLICATION by default), the static
    files (DEBUG or not, as a development server) and WebSockets; starts the process's hub.
    ``kwargs`` go to WSGIServer. Needs gevent's monkey patching."""
    handler = application or get_internal_wsgi_application()
    if not isinstance(handler, StaticFilesHandler):
        handler = StaticFilesHandler(handler)
    get_hub()
    return WSGIServer(listener, handler, handler_class=WebSocketHandler, **kwargs)
