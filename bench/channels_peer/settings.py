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
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": LAYERS[_layer],
        "CONFIG": {"hosts": [os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")]},
    }
}
