"""Settings of ws4redis_server, with their defaults in one place.

Names are django-websocket-redis's (``WEBSOCKET_URL``, ``WS4REDIS_*``) so existing projects keep
their settings. Read lazily through :func:`get_settings`, validated once, refreshed when a test
overrides a setting. A bad value raises :class:`~django.core.exceptions.ImproperlyConfigured`.
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from . import redis_modes
from .security import OriginPolicy, anonymous_publish, origin_policy

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


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
    compression: bool
    redis_mode: redis_modes.RedisMode = redis_modes.RedisMode(redis_modes.SINGLE)


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


# WS4REDIS_CONNECTION takes every option of redis.Redis and of redis-py's connection classes (as
# ws4redis handed the dict to redis-py's ConnectionPool and StrictRedis), found by introspection so
# that options of newer redis-py versions pass too. These few are the library's to decide:
_MANAGED = {
    "connection_pool": "ws4redis_server makes its own pools (sized by WS4REDIS_REDIS_MAX_CONNECTIONS)",
    "single_connection_client": "ws4redis_server makes its own pools (sized by WS4REDIS_REDIS_MAX_CONNECTIONS)",
    "cache": "client-side caching needs RESP3 (protocol=3), which ws4redis_server does not use",
    "cache_config": "client-side caching needs RESP3 (protocol=3), which ws4redis_server does not use",
}
# Options that a url already decides.
_URL_DECIDES = ("host", "port", "unix_socket_path", "path", "ssl")
_NUMBERS = ("socket_timeout", "socket_connect_timeout", "health_check_interval")


def _init_parameters(cls: type) -> set[str]:
    """Names of the keyword arguments ``cls(...)`` accepts, following ``**kwargs`` up the MRO."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        parameters = inspect.signature(init).parameters.values()
        names |= {p.name for p in parameters
                  if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return names


@functools.cache
def _redis_parameters() -> tuple[frozenset[str], dict[type, frozenset[str]]]:
    """(what redis.Redis accepts, what each connection class accepts), from redis-py itself."""
    import redis
    from redis.connection import Connection, SSLConnection, UnixDomainSocketConnection

    classes: dict[type, frozenset[str]] = {
        cls: frozenset(_init_parameters(cls)) for cls in (Connection, SSLConnection, UnixDomainSocketConnection)}
    return frozenset(_init_parameters(redis.Redis)), classes


def redis_connection(options: dict[str, Any]) -> tuple[type, dict[str, Any]]:
    """Returns (redis-py connection class, its keyword arguments) for WS4REDIS_CONNECTION's
    ``options`` (as in ``Settings.redis_options``), the way redis.Redis turns its own arguments
    into a pool's: ``url`` parsed (its values win, as in redis-py's from_url), ``ssl`` picks
    SSLConnection, ``unix_socket_path`` (or ``path``) UnixDomainSocketConnection; everything
    else is passed on. ``max_connections`` sizes the pool and is left out. Raises ValueError."""
    from redis.connection import Connection, SSLConnection, UnixDomainSocketConnection, parse_url

    kwargs = {key: value for key, value in options.items() if key not in ("url", "max_connections")}
    url = options.get("url")
    if url is not None:
        url_options = parse_url(url)
        cls = url_options.pop("connection_class", Connection)
        kwargs.update(url_options)
        return cls, kwargs
    if kwargs.pop("ssl", False):
        cls = SSLConnection
    else:
        cls = Connection
    path = kwargs.pop("unix_socket_path", None)
    if path is not None or "path" in kwargs:
        if path is not None and "path" in kwargs:
            raise ValueError("give unix_socket_path or path, not both")
        if cls is SSLConnection:
            raise ValueError("ssl does not apply with unix_socket_path")
        kwargs.setdefault("path", path)
        cls = UnixDomainSocketConnection
    return cls, kwargs


def _redis(connection: Any) -> tuple[str, dict[str, Any]]:
    """Returns (url for logs, the checked WS4REDIS_CONNECTION) from WS4REDIS_CONNECTION."""
    if connection is None:
        url = getattr(django_settings, "REDIS_URL", None) or DEFAULT_REDIS_URL
        connection = {"url": url}
    if not isinstance(connection, dict):
        raise ImproperlyConfigured("WS4REDIS_CONNECTION must be a dict (host/port/db/password or url)")
    redis_accepts, classes = _redis_parameters()
    accepted = redis_accepts.union({"url"}, *classes.values())
    unknown = sorted(str(key) for key in connection if key not in accepted)
    if unknown:
        raise ImproperlyConfigured(
            f"WS4REDIS_CONNECTION has unknown keys: {', '.join(unknown)} (neither redis.Redis nor redis-py's "
            "connection classes take them)")
    for key, reason in _MANAGED.items():
        if key in connection:
            raise ImproperlyConfigured(f"WS4REDIS_CONNECTION: {key} is not supported: {reason}")
    if connection.get("decode_responses"):
        raise ImproperlyConfigured("WS4REDIS_CONNECTION: decode_responses must stay off: messages are bytes")
    if connection.get("protocol") not in (None, 2, "2"):
        raise ImproperlyConfigured("WS4REDIS_CONNECTION: protocol must be 2 (RESP2), the one ws4redis_server "
                                   f"reads pub/sub and scripts with, not {connection['protocol']!r}")
    for key in _NUMBERS:
        value = connection.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise ImproperlyConfigured(f"WS4REDIS_CONNECTION: {key} must be a number >= 0 or None, not {value!r}")
    options = dict(connection)
    url = options.get("url")
    if redis_modes.is_mode_url(url):
        return _redis_mode(options)
    if url is not None:
        if not isinstance(url, str) or urlparse(url).scheme not in ("redis", "rediss", "unix"):
            raise ImproperlyConfigured("WS4REDIS_CONNECTION url must be redis://, rediss://, unix://, "
                                       f"redis+sentinel:// or redis+cluster://, not {url!r}")
        decided = [key for key in _URL_DECIDES if key in options]
        if decided:
            raise ImproperlyConfigured(f"WS4REDIS_CONNECTION: give either url or {', '.join(decided)}, not both")
        shown = url
    elif "unix_socket_path" in options or "path" in options:
        shown = f"unix://{options.get('unix_socket_path') or options.get('path')}"
    else:
        options.setdefault("host", "localhost")
        options.setdefault("port", 6379)
        shown = f"redis://{options['host']}:{options['port']}/{options.get('db', 0)}"
    if options.get("password") is None:
        options.pop("password", None)
    try:
        cls, kwargs = redis_connection(options)
    except ValueError as exc:
        raise ImproperlyConfigured(f"WS4REDIS_CONNECTION: {exc}") from exc
    misplaced = sorted(key for key in kwargs if key not in classes[cls])
    if misplaced:
        kind = {"SSLConnection": "an SSL", "UnixDomainSocketConnection": "a unix socket"}.get(cls.__name__, "a TCP")
        verb = "does" if len(misplaced) == 1 else "do"
        raise ImproperlyConfigured(f"WS4REDIS_CONNECTION: {', '.join(misplaced)} {verb} not apply to {kind} connection"
                                   + (" (ssl_* options need ssl: True or a rediss:// url)"
                                      if any(key.startswith("ssl_") for key in misplaced) else ""))
    try:
        cls(**kwargs)  # redis-py's own checks of the values; connects nowhere
    except Exception as exc:  # TypeError, ValueError, redis.RedisError, ...
        raise ImproperlyConfigured(f"WS4REDIS_CONNECTION is refused by redis-py: {exc}") from exc
    return shown, options


def _redis_mode(options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Checks a WS4REDIS_CONNECTION whose url is redis+sentinel:// or redis+cluster://; returns
    it as ``_redis`` does (the url shown without its password)."""
    url = options["url"]
    try:
        mode = redis_modes.parse(url)
    except ValueError as exc:
        raise ImproperlyConfigured(f"WS4REDIS_CONNECTION url: {exc}") from exc
    decided = [key for key in ("host", "port", "unix_socket_path", "path", "db", "username", "password")
               if key in options and (key in mode.options or key not in ("db", "username", "password"))]
    if decided:
        raise ImproperlyConfigured(f"WS4REDIS_CONNECTION: give either url or {', '.join(decided)}, not both")
    from redis.connection import Connection

    kwargs = {key: value for key, value in options.items() if key not in ("url", "max_connections")}
    kwargs.update(mode.options)
    if mode.kind == redis_modes.CLUSTER and kwargs.get("db", 0) != 0:
        raise ImproperlyConfigured("WS4REDIS_CONNECTION: a Redis Cluster has only database 0, not db "
                                   f"{kwargs['db']!r}")
    kwargs.pop("ssl", None)
    misplaced = sorted(key for key in kwargs if key not in _redis_parameters()[1][Connection]
                       and not key.startswith("ssl_"))
    if misplaced:
        raise ImproperlyConfigured(f"WS4REDIS_CONNECTION: {', '.join(misplaced)} not supported with {mode.kind}")
    try:
        Connection(**{key: value for key, value in kwargs.items() if not key.startswith("ssl_")})
    except Exception as exc:
        raise ImproperlyConfigured(f"WS4REDIS_CONNECTION is refused by redis-py: {exc}") from exc
    shown = redis_modes.without_password(url)
    return shown, options


def _max_connections(options: dict[str, Any]) -> int:
    """The size of each process's pool: WS4REDIS_REDIS_MAX_CONNECTIONS, or the ``max_connections``
    of WS4REDIS_CONNECTION (which sized ws4redis's publishers' pool)."""
    if "max_connections" not in options:
        return _number("WS4REDIS_REDIS_MAX_CONNECTIONS", 50, minimum=2)
    value = options["max_connections"]
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise ImproperlyConfigured(f"WS4REDIS_CONNECTION: max_connections must be an integer >= 2, not {value!r}")
    setting = getattr(django_settings, "WS4REDIS_REDIS_MAX_CONNECTIONS", None)
    if setting is not None and setting != value:
        raise ImproperlyConfigured("WS4REDIS_CONNECTION's max_connections and WS4REDIS_REDIS_MAX_CONNECTIONS differ: "
                                   "keep one of them")
    return value


def _compression() -> bool:
    """WS4REDIS_COMPRESSION: negotiate permessage-deflate with clients that offer it."""
    value = getattr(django_settings, "WS4REDIS_COMPRESSION", False)
    if not isinstance(value, bool):
        raise ImproperlyConfigured(f"WS4REDIS_COMPRESSION must be True or False, not {value!r}")
    return value


def _no_subscriber_class() -> None:
    value = getattr(django_settings, "WS4REDIS_SUBSCRIBER", None)
    if value is not None:
        raise ImproperlyConfigured(
            f"WS4REDIS_SUBSCRIBER ({value!r}) is not supported: ws4redis_server has no per-socket subscriber "
            "class to replace (each process shares one Redis pub/sub connection among all its sockets). Remove "
            "the setting; to choose or refuse a socket's channels use WS4REDIS_ALLOWED_CHANNELS, to set "
            "request.user/request.session use WS4REDIS_PROCESS_REQUEST, and for channels or protocols of your "
            "own write a @websocket handler (ws.subscribe, ws.publish).")


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
    _no_subscriber_class()
    redis_url, redis_options = _redis(getattr(django_settings, "WS4REDIS_CONNECTION", None))
    mode_url = redis_options.get("url")
    redis_mode = (redis_modes.parse(mode_url) if isinstance(mode_url, str) and redis_modes.is_mode_url(mode_url)
                  else redis_modes.RedisMode(redis_modes.SINGLE))
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
        redis_max_connections=_max_connections(redis_options),
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
        compression=_compression(),
        redis_mode=redis_mode,
    )


@functools.cache
def get_settings() -> Settings:
    """Returns the validated settings; raises ImproperlyConfigured on a bad value."""
    return _build()


def _reset(**kwargs: Any) -> None:
    get_settings.cache_clear()


setting_changed.connect(_reset)
