"""The live server's child process: pages, static files and WebSockets on one loopback port, served
as ``manage.py runserver`` serves them, for tests running in another process (:class:`LiveServer`).

:class:`LiveServer` starts it as ``python -c COMMAND``, so that gevent's monkey patching comes
before anything else is imported, and only in this process. What passes between the two:

- the environment: DJANGO_SETTINGS_MODULE, the parent's import path in PYTHONPATH, and
  ``WS4REDIS_LIVE_SERVER``: JSON ``{"databases": {alias: NAME}, "settings": {name: value}}``,
  applied over the settings module before ``django.setup()`` (the test databases the parent
  switched to, and its overrides);
- stdout: one line ``ws4redis-live-server port <port>`` once the server listens, and nothing
  after it (later output goes to stderr, which is the parent's);
- SIGTERM, or the end of stdin (the parent has gone): every socket is closed with 1001 and the
  process exits.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sys
from typing import Any

import django
import gevent
from django.conf import settings
from gevent import monkey
from gevent.event import Event
from gevent.socket import wait_read

from ..devserver import dev_server
from ..server import close_all
from .live import COMMAND, ENVIRON, HOST, READY

CLOSE_GRACE = 2.0  # seconds open sockets get to finish their closing handshakes at the end


def configure(config: dict[str, Any]) -> None:
    """Applies the parent's databases and settings over the settings module, and lets requests
    for HOST in."""
    for alias, name in config.get("databases", {}).items():
        settings.DATABASES[alias]["NAME"] = name
    for name, value in config.get("settings", {}).items():
        setattr(settings, name, value)
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, HOST]


def main() -> None:
    """Serves until SIGTERM or the end of stdin. See the module's docstring."""
    if not monkey.is_module_patched("socket"):
        raise SystemExit(f"the live server needs gevent's monkey patching first: python -c {COMMAND!r}")
    configure(json.loads(os.environ.get(ENVIRON, "{}")))
    django.setup()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, 0))
    listener.listen(128)
    server = dev_server(listener, log=None)
    server.start()
    sys.stdout.write(f"{READY}{listener.getsockname()[1]}\n")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    stopping = Event()
    gevent.signal_handler(signal.SIGTERM, stopping.set)
    gevent.spawn(_set_at_eof, sys.stdin.fileno(), stopping)
    stopping.wait()
    close_all(grace=CLOSE_GRACE)
    server.stop(timeout=1)


def _set_at_eof(fd: int, event: Event) -> None:
    while True:
        wait_read(fd)
        if not os.read(fd, 4096):
            event.set()
            return
