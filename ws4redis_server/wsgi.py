"""WSGI entry point of the WebSocket instance: ``module = ws4redis_server.wsgi:application``.

Run under uWSGI with ``--gevent N`` (see deploy/uwsgi.ini); DJANGO_SETTINGS_MODULE must be set.
The process's hub connects to Redis as soon as the worker loads this module, and keeps retrying
(logged once per outage) while Redis is unreachable.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterable

import django
import gevent

django.setup()

from .hub import get_hub  # noqa: E402
from .metrics import report_forever  # noqa: E402
from .server import serve  # noqa: E402
from .transports.uwsgi import UwsgiTransport  # noqa: E402

logging.getLogger("ws4redis_server").info("WebSocket worker ready")
gevent.spawn(report_forever, get_hub())


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    return serve(environ, start_response, lambda env, settings: UwsgiTransport(env, settings.max_message_size))
