"""WSGI entry point of the WebSocket instance: ``module = ws4redis_server.wsgi:application``.

Run under uWSGI with ``--gevent N`` (see deploy/uwsgi.ini); DJANGO_SETTINGS_MODULE must be set.
The process's hub connects to Redis as soon as the worker loads this module, and keeps retrying
(logged once per outage) while Redis is unreachable.

Stopping or reloading the instance closes every socket with 1001 (going away) and a reason, so
clients reconnect, instead of cutting TCP. uWSGI's gevent loop tells a worker in two ways:

- SIGINT or SIGTERM (the master stops: ``uwsgi --stop``, SIGTERM/SIGINT with die-on-term, the
  emperor stopping its vassals): the loop kills its control greenlet at once and calls
  ``uwsgi.atexit`` while the gevent hub still runs; the sockets are closed there.
- SIGHUP (graceful reload: ``uwsgi --reload``, touch-reload, the emperor reloading a vassal or,
  with emperor-graceful-shutdown, stopping it): the loop stops accepting and waits for the
  running requests (only handshakes in flight: an open socket is no request, see
  transports/uwsgi.py), then ends and calls ``uwsgi.atexit``. A SIGHUP handler of our own starts
  closing the sockets at once; ``uwsgi.atexit`` waits for them (``close_all``) before the worker
  exits.

uWSGI's own "goodbye cruel world" (max-requests, reload-on-rss and the like) takes the SIGHUP way
without a signal; those options stay off here.
"""
from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Iterable
from typing import Any

import django
import gevent

django.setup()

import uwsgi  # noqa: E402

from .hub import get_hub  # noqa: E402
from .metrics import forget, report_forever  # noqa: E402
from .server import close_all, serve  # noqa: E402
from .transports.uwsgi import UwsgiTransport  # noqa: E402

logger = logging.getLogger("ws4redis_server")


def _watch_sighup() -> None:
    # Runs once the hub runs, i.e. after uWSGI's gevent loop has set up its own SIGHUP watcher.
    # Started at import instead, it would be libev's first watcher of the signal; the worker then
    # installs uWSGI's C handler over libev's (after loading the app), no watcher ever fires, and
    # the C handler ends the worker at once: every socket cut without a close frame.
    gevent.signal_handler(signal.SIGHUP, _going_away)


def _going_away() -> None:
    """The worker stops or reloads: every socket gets 1001, then its figures leave the stats."""
    try:
        close_all()
    finally:
        forget()


# Options that recycle a worker (and close every socket it holds) after so many requests, so
# much memory or so long: each socket's handshake is one request of the WebSocket instance.
RECYCLING_OPTIONS = ("max-requests", "reload-on-rss", "reload-on-as", "max-worker-lifetime", "harakiri")


def recycling_options(options: dict[Any, Any]) -> list[str]:
    """The options of ``options`` (uwsgi.opt) set in a way that closes sockets."""
    found = []
    for name in RECYCLING_OPTIONS:
        value = options.get(name) or options.get(name.encode())
        if value not in (None, b"0", "0", 0, False):
            found.append(name)
    return found


_recycling = recycling_options(dict(uwsgi.opt))
if _recycling:
    logger.warning("uWSGI option(s) %s set on the WebSocket instance: a worker they recycle closes every "
                   "socket it holds (each socket's handshake counts as a request); remove them here",
                   ", ".join(_recycling))
uwsgi.atexit = _going_away
gevent.spawn(_watch_sighup)
logger.info("WebSocket worker ready")
gevent.spawn(report_forever, get_hub())


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    return serve(environ, start_response, lambda env, settings: UwsgiTransport(env))
