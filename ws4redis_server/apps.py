from typing import Any

from django.apps import AppConfig


def cache_identity(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """Caches the username and group names in Redis at login (identity.py), so the first
    handshake needs no database query; a login also refreshes them."""
    from .identity import remember

    remember(user)


class Ws4RedisConfig(AppConfig):
    name = "ws4redis_server"
    verbose_name = "WebSockets for Redis"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from . import checks, identity
        from .management import claim_runserver

        user_logged_in.connect(cache_identity, dispatch_uid="ws4redis_cache_identity")
        identity.connect_signals()
        checks.register_all()
        claim_runserver()
