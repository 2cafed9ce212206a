"""The Redis client of a process, shared by publishers and by the hub's commands.

One bounded, blocking connection pool per process (redis-py's default pool tops out at 100
connections and then raises): callers wait for a free connection instead of failing.

Every option of ``WS4REDIS_CONNECTION`` reaches the connections (conf.redis_connection turns
them into a connection class and its arguments, as redis.Redis would). The library's defaults,
which an option of the same name replaces: TCP keepalive on, and no retries (a failed command
raises at once; the hub reconnects by itself) unless ``retry``, ``retry_on_timeout`` or
``retry_on_error`` is given.

The hub's pub/sub connection (``pool=False``) differs on purpose:

- it never retries (the hub replaces a broken connection from its reader greenlet; redis-py's
  retries would reconnect from whichever greenlet met the error), so the retry options and
  ``health_check_interval`` apply to the publishers' pool only (the hub pings Redis itself after
  15 s without traffic);
- ``socket_timeout`` does not bound its wait for the next message (redis-py waits for a reply
  with the timeout the hub asks for), only reading a reply once it has begun and writing
  SUBSCRIBEs; there it is at least ``PUBSUB_MIN_SOCKET_TIMEOUT`` seconds, so that a worker busy
  with a burst for a moment is not taken for a dead Redis, which would resubscribe every channel.
"""
from __future__ import annotations

import os
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.connection import UnixDomainSocketConnection
from redis.retry import Retry

from .conf import Settings, get_settings, redis_connection

PUBSUB_MIN_SOCKET_TIMEOUT = 5.0
_RETRY_OPTIONS = ("retry", "retry_on_timeout", "retry_on_error")

_clients: dict[tuple[int, str], redis.Redis] = {}


def make_client(settings: Settings, *, pool: bool = True, **extra: Any) -> redis.Redis:
    """Returns a new client for the configured Redis, on a blocking pool of
    ``WS4REDIS_REDIS_MAX_CONNECTIONS`` connections, or with ``pool=False`` for the hub's pub/sub
    connection (see the module's docstring). ``extra`` options win over the settings'."""
    connection_class, options = redis_connection(settings.redis_options)
    defaults: dict[str, Any] = {}
    if not any(name in options for name in _RETRY_OPTIONS):
        defaults["retry"] = Retry(NoBackoff(), 0)
    if not issubclass(connection_class, UnixDomainSocketConnection):
        defaults["socket_keepalive"] = True
    kwargs = {**defaults, **options, **extra}
    if pool:
        connection_pool: redis.ConnectionPool = redis.BlockingConnectionPool(
            connection_class=connection_class, max_connections=settings.redis_max_connections, timeout=10, **kwargs)
    else:
        for name in _RETRY_OPTIONS:
            kwargs.pop(name, None)
        kwargs["retry"] = Retry(NoBackoff(), 0)
        timeout = kwargs.get("socket_timeout")
        if timeout is not None and timeout < PUBSUB_MIN_SOCKET_TIMEOUT:
            kwargs["socket_timeout"] = PUBSUB_MIN_SOCKET_TIMEOUT
        connection_pool = redis.ConnectionPool(connection_class=connection_class, **kwargs)
    client = redis.Redis(connection_pool=connection_pool)
    client.auto_close_connection_pool = True  # as redis.Redis(...) and from_url(): the client owns its pool
    return client


def get_redis() -> redis.Redis:
    """Returns this process's shared client (a new one after a fork or a settings change)."""
    settings = get_settings()
    key = (os.getpid(), repr((settings.redis_options, settings.redis_max_connections)))
    client = _clients.get(key)
    if client is None:
        _clients.clear()
        client = _clients[key] = make_client(settings)
    return client
