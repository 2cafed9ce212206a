"""The library's ``runserver`` wins wherever ``ws4redis_server`` sits in INSTALLED_APPS.

Django maps a command name to the first installed app providing it (``get_commands()``), so with
the app after ``django.contrib.staticfiles``, staticfiles' runserver (no WebSockets) would be
used. :func:`claim_runserver` (called from ``AppConfig.ready()``) wraps
``django.core.management.get_commands`` so that "runserver" maps to this app; both
``ManagementUtility.fetch_command`` and ``call_command`` look the function up in that module at
each call. A system check (``ws4redis_server.W004``) names any other app whose runserver is
replaced.
"""
from __future__ import annotations

import functools
from typing import Any

APP = "ws4redis_server"
COMMAND = "runserver"


def claim_runserver() -> None:
    """Makes ``runserver`` this app's command; idempotent."""
    from django.apps import apps
    from django.core import management

    current = management.get_commands
    if getattr(current, "ws4redis_claimed", False):
        return

    @functools.wraps(current)
    def get_commands() -> dict[str, Any]:
        commands = current()  # the cached dict itself: patching it once per cache fill is enough
        if commands.get(COMMAND) != APP and apps.is_installed(APP):
            commands[COMMAND] = APP
        return commands

    # Django's own code (e.g. when a test changes INSTALLED_APPS) clears the cache this way.
    get_commands.cache_clear = current.cache_clear  # type: ignore[attr-defined]
    get_commands.ws4redis_claimed = True  # type: ignore[attr-defined]
    management.get_commands = get_commands


def other_runservers() -> list[str]:
    """Installed apps other than Django's own and this one that also ship a runserver command."""
    import os

    from django.apps import apps
    from django.core.management import find_commands

    ours = {APP, "django.contrib.staticfiles"}
    return [
        config.name
        for config in apps.get_app_configs()
        if config.name not in ours and COMMAND in find_commands(os.path.join(config.path, "management"))
    ]
