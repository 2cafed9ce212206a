"""The Redis client of a process, shared by publishers and by the hub's commands.

One bounded, blocking connection pool per process (redis-py's default pool tops out at 100
connections and then raises): callers wait for a free connection instead of failing.
"""
from __future__ import annotations

import os
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .conf import Settings, get_settings

_clients: dict[tuple[int, str], redis.Redis] = {}


def make_client(settings: Settings, *, pool: bool = True, **extra: Any) -> redis.Redis:
    """Returns a new client for the configured Redis. Retries are left to the caller."""
    options = dict(settings.redis_options)
    url = options.pop("url", None)
    common: dict[str, Any] = {"retry": Retry(NoBackoff(), 0), "socket_keepalive": True, **extra}
    if not pool:
        return redis.Redis.from_url(url, **common) if url else redis.Redis(**options, **common)
    pool_options: dict[str, Any] = {"max_connections": settings.redis_max_connections, "timeout": 10, **common}
    if url:
        connection_pool = redis.BlockingConnectionPool.from_url(url, **pool_options)
    else:
        connection_pool = redis.BlockingConnectionPool(**options, **pool_options)
    return redis.Redis(connection_pool=connection_pool)


def get_redis() -> redis.Redis:
    """Returns this process's shared client (a new one after a fork or a settings change)."""
    settings = get_settings()
    key = (os.getpid(), repr(settings.redis_options))
    client = _clients.get(key)
    if client is None:
        _clients.clear()
        client = _clients[key] = make_client(settings)
    return client
