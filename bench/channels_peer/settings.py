"""Settings of the Channels peer: no database, no middleware, one channel layer on REDIS_URL.

CHANNEL_LAYER picks the layer: ``core`` (channels_redis.core.RedisChannelLayer, the default and
the one most deployments use) or ``pubsub`` (channels_redis.pubsub.RedisPubSubChannelLayer).
"""
import os

from django.core.exceptions import ImproperlyConfigured

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["channels"]
DATABASES: dict = {}
USE_TZ = True
ASGI_APPLICATION = "bench.channels_peer.asgi.application"

LAYERS = {
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}
_layer = os.environ.get("CHANNEL_LAYER", "core")
if _layer not in LAYERS:
    raise ImproperlyConfigured(f"CHANNEL_LAYER must be one of {sorted(LAYERS)}, not {_layer!r}")
# Two redis-py 8 defaults break channels_redis under load, so both are set:
# - pools raise past 100 connections: with ~1,000 sockets connecting at once group_add fails and
#   consumers die. CHANNEL_LAYER_MAX_CONNECTIONS per daphne process (bench/targets.py shares
#   8,000 among them: under Redis's maxclients of 10,000 however many processes there are);
# - asyncio connections time out reads after 5 s, exactly the layer's blocking BZPOPMIN timeout:
#   the race kills a few consumers every 5 s (their sockets close). No read timeout here.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": LAYERS[_layer],
        "CONFIG": {"hosts": [{"address": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
                              "max_connections": int(os.environ.get("CHANNEL_LAYER_MAX_CONNECTIONS", "2000")),
                              "socket_timeout": None}]},
    }
}
