"""Settings of ws4redis_server, with their defaults in one place.

Names are django-websocket-redis's (``WEBSOCKET_URL``, ``WS4REDIS_*``) so existing projects keep
their settings. Read lazily through :func:`get_settings`, validated once, refreshed when a test
overrides a setting. A bad value raises :class:`~django.core.exceptions.ImproperlyConfigured`.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from .security import OriginPolicy, anonymous_publish, origin_policy

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
_CONNECTION_KEYS = {"url", "host", "port", "db", "password", "username", "unix_socket_path", "ssl"}


@dataclass(frozen=True)
class Settings:
    websocket_url: str
    redis_url: str
    redis_options: dict[str, Any]
    prefix: str
    expire: int
    heartbeat: str | None
    allowed_channels: Callable[..., Any] | None
    process_request: Callable[..., Any] | None
    max_message_size: int
    redis_max_connections: int
    subscribe_timeout: float
    wake_interval: float
    allowed_origins: OriginPolicy
    anonymous_publish: bool | frozenset[str]
    rate_limit: float | None
    rate_burst: float
    outbox_messages: int
    outbox_bytes: int
    history_length: int
    history_seconds: int
    groups_cache_seconds: int


def _hook(name: str) -> Callable[..., Any] | None:
    value = getattr(django_settings, name, None)
    if value is None or callable(value):
        return value
    if isinstance(value, str):
        try:
            return import_string(value)
        except ImportError as exc:
            raise ImproperlyConfigured(f"{name}={value!r} cannot be imported: {exc}") from exc
    raise ImproperlyConfigured(f"{name} must be a callable or a dotted path, not {type(value).__name__}")


def _number(name: str, default: float, *, minimum: float, integer: bool = True) -> Any:
    value = getattr(django_settings, name, default)
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value < minimum:
        expected = "an integer" if integer else "a number"
        raise ImproperlyConfigured(f"{name} must be {expected} >= {minimum}, not {value!r}")
    return value


def _rate() -> tuple[float | None, float]:
    """Returns (messages per second or None for no limit, burst) of the inbound rate limit."""
    rate = getattr(django_settings, "WS4REDIS_RATE_LIMIT", None)
    if rate is None:
        return None, 0.0
    rate = _number("WS4REDIS_RATE_LIMIT", 0, minimum=0.001, integer=False)
    burst = _number("WS4REDIS_RATE_BURST", max(2 * rate, 1), minimum=1, integer=False)
    return rate, burst


def _redis(connection: Any) -> tuple[str, dict[str, Any]]:
    """Returns (url for logs, keyword arguments for redis.Redis) from WS4REDIS_CONNECTION."""
    if connection is None:
        url = getattr(django_settings, "REDIS_URL", None) or DEFAULT_REDIS_URL
        connection = {"url": url}
    if not isinstance(connection, dict):
        raise ImproperlyConfigured("WS4REDIS_CONNECTION must be a dict (host/port/db/password or url)")
    unknown = set(connection) - _CONNECTION_KEYS
    if unknown:
        raise ImproperlyConfigured(f"WS4REDIS_CONNECTION has unknown keys: {', '.join(sorted(unknown))}")
    options = dict(connection)
    url = options.pop("url", None)
    if url is not None:
        if urlparse(url).scheme not in ("redis", "rediss", "unix"):
            raise ImproperlyConfigured(f"WS4REDIS_CONNECTION url must be redis://, rediss:// or unix://, not {url!r}")
        if options:
            raise ImproperlyConfigured("WS4REDIS_CONNECTION: give either url or host/port/..., not both")
        return url, {"url": url}
    if "unix_socket_path" in options:
        shown = f"unix://{options['unix_socket_path']}"
    else:
        options.setdefault("host", "localhost")
        options.setdefault("port", 6379)
        shown = f"redis://{options['host']}:{options['port']}/{options.get('db', 0)}"
    if options.get("password") is None:
        options.pop("password", None)
    return shown, options


def _build() -> Settings:
    url = getattr(django_settings, "WEBSOCKET_URL", "/ws/")
    if not isinstance(url, str) or not url.startswith("/") or not url.endswith("/"):
        raise ImproperlyConfigured(f"WEBSOCKET_URL must start and end with '/', not {url!r}")
    prefix = getattr(django_settings, "WS4REDIS_PREFIX", None)
    if prefix is not None and (not isinstance(prefix, str) or ":" in prefix or not prefix):
        raise ImproperlyConfigured(f"WS4REDIS_PREFIX must be a non-empty string without ':', not {prefix!r}")
    heartbeat = getattr(django_settings, "WS4REDIS_HEARTBEAT", None)
    if heartbeat is not None and (not isinstance(heartbeat, str) or not heartbeat):
        raise ImproperlyConfigured(f"WS4REDIS_HEARTBEAT must be a non-empty string or None, not {heartbeat!r}")
    redis_url, redis_options = _redis(getattr(django_settings, "WS4REDIS_CONNECTION", None))
    rate_limit, rate_burst = _rate()
    return Settings(
        websocket_url=url,
        redis_url=redis_url,
        redis_options=redis_options,
        prefix=f"{prefix}:" if prefix else "",
        expire=_number("WS4REDIS_EXPIRE", 3600, minimum=0),
        heartbeat=heartbeat,
        allowed_channels=_hook("WS4REDIS_ALLOWED_CHANNELS"),
        process_request=_hook("WS4REDIS_PROCESS_REQUEST"),
        max_message_size=_number("WS4REDIS_MAX_MESSAGE_SIZE", 64 * 1024, minimum=1),
        redis_max_connections=_number("WS4REDIS_REDIS_MAX_CONNECTIONS", 50, minimum=2),
        subscribe_timeout=_number("WS4REDIS_SUBSCRIBE_TIMEOUT", 5.0, minimum=0, integer=False),
        wake_interval=_number("WS4REDIS_WAKE_INTERVAL", 20.0, minimum=0.05, integer=False),
        allowed_origins=origin_policy(
            getattr(django_settings, "WS4REDIS_ALLOWED_ORIGINS", None), django_settings.ALLOWED_HOSTS,
            getattr(django_settings, "CSRF_TRUSTED_ORIGINS", ()), django_settings.DEBUG),
        anonymous_publish=anonymous_publish(getattr(django_settings, "WS4REDIS_ANONYMOUS_PUBLISH", False)),
        rate_limit=rate_limit,
        rate_burst=rate_burst,
        outbox_messages=_number("WS4REDIS_OUTBOX_MESSAGES", 20_000, minimum=1),
        outbox_bytes=_number("WS4REDIS_OUTBOX_BYTES", 4 * 1024 * 1024, minimum=1024),
        history_length=_number("WS4REDIS_HISTORY_LENGTH", 1000, minimum=0),
        history_seconds=_number("WS4REDIS_HISTORY_SECONDS", 600, minimum=1),
        groups_cache_seconds=_number("WS4REDIS_GROUPS_CACHE_SECONDS", 300, minimum=0),
    )


@functools.cache
def get_settings() -> Settings:
    """Returns the validated settings; raises ImproperlyConfigured on a bad value."""
    return _build()


def _reset(**kwargs: Any) -> None:
    get_settings.cache_clear()


setting_changed.connect(_reset)
