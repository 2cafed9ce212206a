"""The site's ``WS4REDIS_ALLOWED_CHANNELS`` hook: each app's own hook, one after the other.

ws4redis takes a single hook; every app here guards its own facilities and passes the others
through unchanged, so chaining them gives each facility exactly its app's rules. Each hook gets
the flags the previous one kept; the first PermissionDenied refuses the socket (403).
"""
from __future__ import annotations

from typing import Any

from django.utils.module_loading import import_string

HOOKS = (
    "webapp.broadcast.permissions.allowed_channels",
    "webapp.chat.security.allowed_channels",
)


def allowed_channels(request: Any, flags: list[str]) -> list[str]:
    """Returns the flags every app's hook allows; raises PermissionDenied as they do."""
    for hook in HOOKS:
        flags = list(import_string(hook)(request, flags))
    return flags
