"""Settings: defaults, validation with ImproperlyConfigured, hooks as callables or dotted paths."""
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from ws4redis_server.conf import get_settings


def deny_all(request, flags):  # noqa: ANN001, ANN201 - a hook for the tests below
    return []


def test_defaults() -> None:
    """The library's own defaults: library_settings sets nothing but WS4REDIS_CONNECTION."""
    settings = get_settings()
    assert settings.websocket_url == "/ws/"
    assert settings.prefix == ""
    assert settings.expire == 3600
    assert settings.max_message_size == 64 * 1024
    assert settings.heartbeat is None
    assert settings.allowed_channels is None and settings.process_request is None
    assert settings.rate_limit is None
    assert settings.wake_interval == 20.0


def test_prefix_gets_its_colon() -> None:
    with override_settings(WS4REDIS_PREFIX="p"):
        assert get_settings().prefix == "p:"


def test_hooks_as_dotted_paths_and_callables() -> None:
    with override_settings(WS4REDIS_ALLOWED_CHANNELS="test_conf.deny_all"):
        assert get_settings().allowed_channels is deny_all
    with override_settings(WS4REDIS_PROCESS_REQUEST=deny_all):
        assert get_settings().process_request is deny_all


@pytest.mark.parametrize("name, value, message", [
    ("WEBSOCKET_URL", "ws/", "must start and end with '/'"),
    ("WS4REDIS_PREFIX", "a:b", "without ':'"),
    ("WS4REDIS_EXPIRE", -1, "WS4REDIS_EXPIRE must be an integer >= 0"),
    ("WS4REDIS_EXPIRE", "3600", "WS4REDIS_EXPIRE must be an integer"),
    ("WS4REDIS_HEARTBEAT", "", "non-empty string"),
    ("WS4REDIS_ALLOWED_CHANNELS", "no.such.module.hook", "cannot be imported"),
    ("WS4REDIS_PROCESS_REQUEST", 42, "callable or a dotted path"),
    ("WS4REDIS_CONNECTION", {"hostname": "x"}, "unknown keys: hostname"),
    ("WS4REDIS_CONNECTION", {"url": "http://x"}, "must be redis://"),
    ("WS4REDIS_CONNECTION", "redis://x", "must be a dict"),
    ("WS4REDIS_MAX_MESSAGE_SIZE", 0, "WS4REDIS_MAX_MESSAGE_SIZE must be an integer >= 1"),
])
def test_bad_settings_raise_improperly_configured(name: str, value: object, message: str) -> None:
    with override_settings(**{name: value}):
        with pytest.raises(ImproperlyConfigured, match=message):
            get_settings()


def test_connection_dict_form() -> None:
    with override_settings(WS4REDIS_CONNECTION={"host": "127.0.0.1", "port": 6380, "db": 2, "password": None}):
        settings = get_settings()
    assert settings.redis_options == {"host": "127.0.0.1", "port": 6380, "db": 2}
    assert settings.redis_url == "redis://127.0.0.1:6380/2"
