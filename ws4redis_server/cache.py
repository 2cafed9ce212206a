"""A Django cache backend on the library's own Redis client, for a site whose Redis is a Sentinel
set-up or a Redis Cluster (``WS4REDIS_CONNECTION`` with ``redis+sentinel://`` or
``redis+cluster://``), which Django's ``RedisCache`` cannot reach: its ``LOCATION`` is a list of
plain ``redis://`` servers, and it picks one by hashing nothing (reads) or writes to the first.

    CACHES = {"default": {"BACKEND": "ws4redis_server.cache.RedisCache", "KEY_PREFIX": "site"}}

Everything else is Django's ``RedisCache`` (serializer, timeouts, key prefix and versions); the
commands go through :func:`ws4redis_server.get_redis`, so the cache follows a Sentinel failover
and a Cluster's slots like the rest of the library. ``LOCATION`` is not used. On a Cluster,
``get_many``/``set_many``/``delete_many`` over keys of several slots are split by redis-py (not
atomic); sessions only use single keys.
"""
from __future__ import annotations

from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient

from .redis_client import get_redis


class _Client(RedisCacheClient):
    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        return get_redis()

    # Django's versions send MGET / MSET over every key at once, which a Cluster refuses for
    # keys of several slots.
    def get_many(self, keys: Any) -> Any:
        client = get_redis()
        keys = list(keys)
        values = client.mget_nonatomic(keys) if hasattr(client, "mget_nonatomic") else client.mget(keys)
        return {key: self._serializer.loads(value) for key, value in zip(keys, values, strict=True)
                if value is not None}

    def set_many(self, data: Any, timeout: Any) -> None:
        for key, value in data.items():
            self.set(key, value, timeout)


class RedisCache(DjangoRedisCache):
    """Django's RedisCache over the library's client (any Redis mode); ``LOCATION`` is ignored."""

    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server or "", params)
        self._class = _Client
