from typing import Any

from django.apps import AppConfig


def cache_identity(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """Caches the username and group names in the session at login, so the WebSocket loop
    identifies the socket without querying the database."""
    from .handshake import SESSION_GROUPS, SESSION_USERNAME

    if request is None or not hasattr(request, "session"):
        return
    request.session[SESSION_USERNAME] = user.get_username()
    groups = getattr(user, "groups", None)
    request.session[SESSION_GROUPS] = list(groups.values_list("name", flat=True)) if groups is not None else []


class Ws4RedisConfig(AppConfig):
    name = "ws4redis_server"
    verbose_name = "WebSockets for Redis"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        user_logged_in.connect(cache_identity, dispatch_uid="ws4redis_cache_identity")
