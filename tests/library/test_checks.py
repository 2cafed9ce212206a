"""System checks (``manage.py check``): each fires on the settings it is about, with its id, and
stays silent on good settings."""
from __future__ import annotations

import copy

import pytest
from django.conf import settings
from django.core import checks
from django.test import override_settings

from ws4redis_server import checks as ws4redis_checks

REDIS_CACHE = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                           "LOCATION": "redis://127.0.0.1:1/0"}}
LOCMEM_CACHE = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
DUMMY_CACHE = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
GOOD = {"SESSION_ENGINE": "django.contrib.sessions.backends.cached_db", "CACHES": REDIS_CACHE}


def ids(messages: list[checks.CheckMessage]) -> list[str]:
    return [message.id for message in messages]


def ours() -> list[checks.CheckMessage]:
    """Every registered check's messages that belong to ws4redis_server."""
    return [m for m in checks.run_checks() if (m.id or "").startswith("ws4redis_server.")]


def test_every_check_is_registered_and_silent_on_good_settings() -> None:
    registered = checks.registry.registry.get_checks()
    for check in (ws4redis_checks.check_settings, ws4redis_checks.check_sessions,
                  ws4redis_checks.check_templates, ws4redis_checks.check_runserver):
        assert check in registered
    with override_settings(**GOOD):
        assert ours() == []


@pytest.mark.parametrize(("name", "value"), [
    ("WEBSOCKET_URL", "ws"),
    ("WS4REDIS_HEARTBEAT", ""),
    ("WS4REDIS_PREFIX", "a:b"),
    ("WS4REDIS_EXPIRE", -1),
    ("WS4REDIS_CONNECTION", {"url": "http://example.com"}),
    ("WS4REDIS_ALLOWED_CHANNELS", "no.such.module.function"),
])
def test_a_bad_setting_is_an_error_naming_it_instead_of_a_crash(name: str, value: object) -> None:
    with override_settings(**GOOD, **{name: value}):
        messages = ours()
    assert ids(messages) == ["ws4redis_server.E001"]
    assert isinstance(messages[0], checks.Error)
    assert name in messages[0].msg and messages[0].hint


def test_database_sessions_warn() -> None:
    with override_settings(SESSION_ENGINE="django.contrib.sessions.backends.db", CACHES=REDIS_CACHE):
        messages = ours()
    assert ids(messages) == ["ws4redis_server.W001"]
    assert isinstance(messages[0], checks.Warning)
    assert "every WebSocket handshake" in messages[0].msg
    assert "cached_db" in messages[0].hint


@pytest.mark.parametrize("caches", [LOCMEM_CACHE, DUMMY_CACHE])
def test_cache_sessions_on_a_process_local_cache_are_an_error(caches: dict) -> None:
    with override_settings(SESSION_ENGINE="django.contrib.sessions.backends.cache", CACHES=caches):
        messages = ours()
    assert ids(messages) == ["ws4redis_server.E002"]
    assert isinstance(messages[0], checks.Error) and caches["default"]["BACKEND"] in messages[0].msg


@pytest.mark.parametrize("caches", [LOCMEM_CACHE, DUMMY_CACHE])
def test_cached_db_sessions_on_a_process_local_cache_warn(caches: dict) -> None:
    with override_settings(SESSION_ENGINE="django.contrib.sessions.backends.cached_db", CACHES=caches):
        assert ids(ours()) == ["ws4redis_server.W002"]


def test_the_sessions_cache_alias_is_the_one_checked() -> None:
    caches = {**REDIS_CACHE, "sessions": LOCMEM_CACHE["default"]}
    with override_settings(SESSION_ENGINE="django.contrib.sessions.backends.cache", CACHES=caches):
        assert ours() == []
        with override_settings(SESSION_CACHE_ALIAS="sessions"):
            assert ids(ours()) == ["ws4redis_server.E002"]


@pytest.mark.parametrize("engine", ["django.contrib.sessions.backends.cache",
                                    "django.contrib.sessions.backends.signed_cookies",
                                    "django.contrib.sessions.backends.file"])
def test_sessions_readable_without_the_database_pass(engine: str) -> None:
    with override_settings(SESSION_ENGINE=engine, CACHES=REDIS_CACHE):
        assert ours() == []


def test_the_context_processor_missing_from_every_django_backend_warns() -> None:
    templates = copy.deepcopy(settings.TEMPLATES)
    templates[0]["OPTIONS"]["context_processors"].remove(ws4redis_checks.CONTEXT_PROCESSOR)
    with override_settings(**GOOD, TEMPLATES=templates):
        messages = ours()
    assert ids(messages) == ["ws4redis_server.W003"]
    assert "{% ws4redis_config %}" in messages[0].hint
    # One DjangoTemplates backend with it is enough; only Jinja2 backends: nothing to say.
    with override_settings(**GOOD, TEMPLATES=[*templates, {**copy.deepcopy(settings.TEMPLATES[0]), "NAME": "other"}]):
        assert ours() == []
    jinja = [{"BACKEND": "django.template.backends.jinja2.Jinja2", "DIRS": [], "APP_DIRS": False}]
    with override_settings(**GOOD, TEMPLATES=jinja):
        assert ids(ws4redis_checks.check_templates()) == []


def test_another_app_with_a_runserver_command_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    from ws4redis_server import management

    monkeypatch.setattr(management, "other_runservers", lambda: ["daphne"])
    messages = ws4redis_checks.check_runserver()
    assert ids(messages) == ["ws4redis_server.W004"]
    assert "'daphne'" in messages[0].msg and "replaces it" in messages[0].msg


def test_no_other_app_ships_runserver_here() -> None:
    from ws4redis_server.management import other_runservers

    assert other_runservers() == []


def test_gevent_or_wsproto_missing_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wsproto" else real(name, *a))
    messages = ws4redis_checks.check_runserver()
    assert ids(messages) == ["ws4redis_server.E003"]
    assert "wsproto" in messages[0].msg and "gevent" not in messages[0].msg


def test_runserver_is_the_librarys_wherever_the_app_sits() -> None:
    from django.core.management import get_commands, load_command_class

    assert settings.INSTALLED_APPS[-1] == "ws4redis_server"
    apps = settings.INSTALLED_APPS
    assert apps.index("django.contrib.staticfiles") < apps.index("ws4redis_server")
    assert get_commands()["runserver"] == "ws4redis_server"
    get_commands.cache_clear()  # as Django does when a test changes INSTALLED_APPS
    assert get_commands()["runserver"] == "ws4redis_server"
    command = load_command_class(get_commands()["runserver"], "runserver")
    assert type(command).__module__ == "ws4redis_server.management.commands.runserver"
