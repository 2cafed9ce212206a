"""System checks (``manage.py check``): settings, sessions the WebSocket loop can read cheaply,
template configuration and the runserver integration. Fast and free of network I/O: nothing
here connects to Redis, a cache or the database.

=======================  ========================================================================
``ws4redis_server.E001``  a WEBSOCKET_URL / WS4REDIS_* setting has a bad value
``ws4redis_server.E002``  SESSION_ENGINE "cache" on a process-local cache (LocMemCache, DummyCache)
``ws4redis_server.E003``  gevent or wsproto cannot be imported (runserver cannot serve WebSockets)
``ws4redis_server.W001``  SESSION_ENGINE "db": a database query on every WebSocket handshake
``ws4redis_server.W002``  SESSION_ENGINE "cached_db" on a process-local cache
``ws4redis_server.W003``  no DjangoTemplates backend has the context processor
``ws4redis_server.W004``  another installed app ships a runserver command, which this one replaces
=======================  ========================================================================
"""
from __future__ import annotations

import importlib.util
from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

CONTEXT_PROCESSOR = "ws4redis_server.context_processors.default"
DJANGO_TEMPLATES = "django.template.backends.django.DjangoTemplates"
SHARED_CACHE_HINT = ("Use a cache shared by every process, e.g. django.core.cache.backends.redis.RedisCache, "
                     "for the sessions' cache (SESSION_CACHE_ALIAS).")


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from .conf import get_settings

    try:
        get_settings()
    except ImproperlyConfigured as exc:
        return [checks.Error(
            str(exc),
            hint="Fix the setting named above; see the ws4redis_server settings table for its allowed values.",
            id="ws4redis_server.E001",
        )]
    return []


def _process_local_cache(alias: str) -> str | None:
    """The backend's path if the cache ``alias`` lives in each process's memory, else None."""
    from django.core.cache.backends.dummy import DummyCache
    from django.core.cache.backends.locmem import LocMemCache

    caches = getattr(settings, "CACHES", {}) or {}
    backend = (caches.get(alias) or {}).get("BACKEND")
    if not backend:
        return None
    try:
        cls = import_string(backend)
    except ImportError:
        return None  # Django's own checks report a backend that does not import
    return backend if isinstance(cls, type) and issubclass(cls, (LocMemCache, DummyCache)) else None


def check_sessions(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from django.apps import apps

    engine = settings.SESSION_ENGINE
    try:
        store = importlib.import_module(engine).SessionStore
    except (ImportError, AttributeError):
        return []
    from django.contrib.sessions.backends.cache import SessionStore as CacheStore

    alias = getattr(settings, "SESSION_CACHE_ALIAS", "default")
    if not apps.is_installed("django.contrib.sessions") and not issubclass(store, CacheStore):
        return []  # the database engines need the sessions app: no sessions in use
    from django.contrib.sessions.backends.cached_db import SessionStore as CachedDbStore
    from django.contrib.sessions.backends.db import SessionStore as DbStore

    if issubclass(store, CachedDbStore):
        local = _process_local_cache(alias)
        if local:
            return [checks.Warning(
                f"SESSION_ENGINE {engine!r} keeps sessions in the cache {alias!r} ({local}), which lives "
                "in each process: the WebSocket processes miss it and read every session from the database.",
                hint=SHARED_CACHE_HINT, id="ws4redis_server.W002")]
        return []
    if issubclass(store, CacheStore):
        local = _process_local_cache(alias)
        if local:
            return [checks.Error(
                f"SESSION_ENGINE {engine!r} keeps sessions only in the cache {alias!r} ({local}), which lives "
                "in each process: the WebSocket processes never see the sessions of the Django processes, "
                "so every socket is anonymous.",
                hint=SHARED_CACHE_HINT, id="ws4redis_server.E002")]
        return []
    if issubclass(store, DbStore):
        return [checks.Warning(
            f"SESSION_ENGINE {engine!r} reads the session from the database on every WebSocket handshake.",
            hint='Use "django.contrib.sessions.backends.cached_db", or "django.contrib.sessions.backends.cache", '
                 "with a cache shared across processes (e.g. RedisCache).",
            id="ws4redis_server.W001")]
    return []


def check_templates(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    backends = [b for b in settings.TEMPLATES if b.get("BACKEND") == DJANGO_TEMPLATES]
    if not backends:
        return []
    if any(CONTEXT_PROCESSOR in (b.get("OPTIONS") or {}).get("context_processors", ()) for b in backends):
        return []
    return [checks.Warning(
        f"No DjangoTemplates backend has the context processor {CONTEXT_PROCESSOR!r}: templates have no "
        "WEBSOCKET_URI or WS4REDIS_HEARTBEAT.",
        hint=f"Add {CONTEXT_PROCESSOR!r} to TEMPLATES[...]['OPTIONS']['context_processors'], or write "
             "{% load ws4redis %}{% ws4redis_config %} in the page for the JavaScript client "
             "(silence this check then).",
        id="ws4redis_server.W003")]


def check_runserver(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from .management import other_runservers

    messages: list[checks.CheckMessage] = []
    missing = [name for name in ("gevent", "wsproto") if importlib.util.find_spec(name) is None]
    if missing:
        messages.append(checks.Error(
            f"{' and '.join(missing)} cannot be imported: runserver cannot serve WebSockets.",
            hint="Install ws4redis_server's dependencies (pip install gevent wsproto).",
            id="ws4redis_server.E003"))
    for name in other_runservers():
        messages.append(checks.Warning(
            f"The app {name!r} also provides a runserver command; ws4redis_server's runserver "
            "(pages and WebSockets on one port) replaces it.",
            hint=f"Remove one of them from INSTALLED_APPS, or run {name}'s server by its own command.",
            id="ws4redis_server.W004"))
    return messages


def register_all() -> None:
    """Registers every check (called from ``AppConfig.ready()``; registering twice is harmless)."""
    for check in (check_settings, check_sessions, check_templates, check_runserver):
        checks.register(check)
