"""``runserver`` that also serves WebSockets: pages, static files and WEBSOCKET_URL on one port.

manage.py applies gevent's monkey patching before Django loads when the command is runserver.
"""
from __future__ import annotations

import sys
from typing import Any

from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.contrib.staticfiles.management.commands.runserver import Command as StaticRunserver
from django.core.management.base import CommandError
from django.utils import autoreload
from gevent import monkey
from gevent.pywsgi import WSGIServer

from ...conf import get_settings
from ...devserver import WebSocketHandler
from ...hub import get_hub


class Command(StaticRunserver):
    help = "Starts a development server for pages and WebSockets (gevent + wsproto)."

    def inner_run(self, *args: Any, **options: Any) -> None:
        if not monkey.is_module_patched("socket"):
            raise CommandError("runserver with WebSockets needs gevent's monkey patching: "
                               "run it through manage.py (which patches before Django loads)")
        autoreload.raise_last_exception()
        self.stdout.write("Performing system checks...\n\n")
        self.check(display_num_errors=True)
        self.check_migrations()
        handler = self.get_handler(*args, **options)
        if not isinstance(handler, StaticFilesHandler):
            # A development server: serve static files even with DEBUG off.
            handler = StaticFilesHandler(handler)
        address = f"[{self.addr}]" if self._raw_ipv6 else self.addr
        self.stdout.write(
            f"Development server (gevent) at http://{address}:{self.port}/, "
            f"WebSockets under {get_settings().websocket_url}\nQuit with CONTROL-C.\n"
        )
        sys.stdout.flush()
        get_hub()
        server = WSGIServer((self.addr, int(self.port)), handler, handler_class=WebSocketHandler)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            server.stop(timeout=1)
