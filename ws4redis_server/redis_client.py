"""The Redis client of a process, shared by publishers and by the hub's commands: a ``redis.Redis``
for one server, one whose pool asks the sentinels for the master (``redis+sentinel://``), or a
``RedisCluster`` (``redis+cluster://``); see ``redis_modes``.

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
from typing import Any, cast

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import UnixDomainSocketConnection
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from . import redis_modes
from .conf import Settings, get_settings, redis_connection

PUBSUB_MIN_SOCKET_TIMEOUT = 5.0
_RETRY_OPTIONS = ("retry", "retry_on_timeout", "retry_on_error")

_clients: dict[tuple[int, str], redis.Redis] = {}


class _SentinelBlockingPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """redis-py's Sentinel pool (it asks the sentinels for the master's address before each new
    connection and drops connections to a former master), blocking when all are in use like the
    single-server pool, instead of raising."""


def mode_kwargs(settings: Settings) -> dict[str, Any]:
    """The connection options of a Sentinel or Cluster set-up: WS4REDIS_CONNECTION's, then its
    url's, with the library's defaults (no retries, TCP keepalive) under them."""
    mode = settings.redis_mode
    options = {key: value for key, value in settings.redis_options.items() if key not in ("url", "max_connections")}
    options.update(mode.options)
    defaults: dict[str, Any] = {"socket_keepalive": True}
    if not any(name in options for name in _RETRY_OPTIONS):
        defaults["retry"] = Retry(NoBackoff(), 0)
    return {**defaults, **options}


def pubsub_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` for a hub's pub/sub connection: no retries, ``socket_timeout`` at least
    PUBSUB_MIN_SOCKET_TIMEOUT (see the module's docstring)."""
    kwargs = {key: value for key, value in kwargs.items() if key not in _RETRY_OPTIONS}
    kwargs["retry"] = Retry(NoBackoff(), 0)
    timeout = kwargs.get("socket_timeout")
    if timeout is not None and timeout < PUBSUB_MIN_SOCKET_TIMEOUT:
        kwargs["socket_timeout"] = PUBSUB_MIN_SOCKET_TIMEOUT
    return kwargs


def _sentinel_client(settings: Settings, pool: bool, extra: dict[str, Any]) -> redis.Redis:
    mode = settings.redis_mode
    kwargs = {**mode_kwargs(settings), **extra}
    sentinel_kwargs = {key: value for key, value in kwargs.items() if key.startswith("socket_")}
    sentinel_kwargs.update(mode.sentinel_options)
    sentinel = Sentinel(list(mode.addresses), sentinel_kwargs=sentinel_kwargs)
    if pool:
        return sentinel.master_for(mode.service, connection_pool_class=_SentinelBlockingPool,
                                   max_connections=settings.redis_max_connections, timeout=10, **kwargs)
    return sentinel.master_for(mode.service, **pubsub_kwargs(kwargs))


def make_cluster_client(settings: Settings, **extra: Any) -> RedisCluster:
    """Returns a new Redis Cluster client (redis-py's RedisCluster: it follows MOVED and ASK and
    refreshes its slot map), one blocking pool of ``WS4REDIS_REDIS_MAX_CONNECTIONS`` per node."""
    kwargs = {**mode_kwargs(settings), **extra}
    kwargs.pop("retry", None)  # RedisCluster retries cluster errors itself (MOVED, a failover)
    for name in _RETRY_OPTIONS:
        kwargs.pop(name, None)
    return RedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in settings.redis_mode.addresses],
                        connection_pool_class=redis.BlockingConnectionPool,
                        max_connections=settings.redis_max_connections, **kwargs)


def make_client(settings: Settings, *, pool: bool = True, **extra: Any) -> redis.Redis:
    """Returns a new client for the configured Redis, on a blocking pool of
    ``WS4REDIS_REDIS_MAX_CONNECTIONS`` connections, or with ``pool=False`` for the hub's pub/sub
    connection (see the module's docstring). ``extra`` options win over the settings'. With
    Sentinel the client finds the master through the sentinels and follows a failover; with a
    Cluster it is a RedisCluster, which has the same commands (the hub makes its own per-node
    pub/sub connections: ``shards``)."""
    kind = settings.redis_mode.kind
    if kind == redis_modes.SENTINEL:
        return _sentinel_client(settings, pool, extra)
    if kind == redis_modes.CLUSTER:
        return cast(redis.Redis, make_cluster_client(settings, **extra))
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
        connection_pool = redis.ConnectionPool(connection_class=connection_class, **pubsub_kwargs(kwargs))
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
