"""WS4REDIS_CONNECTION's Sentinel and Cluster URLs: parsed without I/O, refused with
ImproperlyConfigured naming what is wrong, reported by ``manage.py check`` as E001."""
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from ws4redis_server.checks import check_settings
from ws4redis_server.conf import get_settings
from ws4redis_server.redis_modes import CLUSTER, SENTINEL, SINGLE, parse, without_password


def test_single_server_is_the_default() -> None:
    assert get_settings().redis_mode.kind == SINGLE


@pytest.mark.parametrize(("url", "kind", "addresses", "service", "options"), [
    ("redis+sentinel://127.0.0.1:26379/mymaster", SENTINEL, (("127.0.0.1", 26379),), "mymaster", {}),
    ("redis+sentinel://a:1,b:2,[::1]:3/m/4", SENTINEL, (("a", 1), ("b", 2), ("::1", 3)), "m", {"db": 4}),
    ("redis+sentinel://:pw@a:1/m?db=2&socket_timeout=1.5", SENTINEL, (("a", 1),), "m",
     {"password": "pw", "db": 2, "socket_timeout": 1.5}),
    ("redis+cluster://u:p@a:7000,b:7001", CLUSTER, (("a", 7000), ("b", 7001)), "", {"username": "u", "password": "p"}),
    ("rediss+cluster://a:7000?client_name=x", CLUSTER, (("a", 7000),), "", {"ssl": True, "client_name": "x"}),
])
def test_urls(url: str, kind: str, addresses: tuple, service: str, options: dict) -> None:
    mode = parse(url)
    assert (mode.kind, mode.addresses, mode.service, mode.options) == (kind, addresses, service, options)
    with override_settings(WS4REDIS_CONNECTION={"url": url, "socket_connect_timeout": 2}):
        settings = get_settings()
        assert settings.redis_mode.kind == kind
        assert "p@" not in settings.redis_url and "pw@" not in settings.redis_url


@pytest.mark.parametrize(("connection", "error"), [
    ({"url": "redis+sentinel://a:1"}, "names the master's service"),
    ({"url": "redis+sentinel://a/m"}, "each address is host:port, not 'a'"),
    ({"url": "redis+sentinel://a:1,b:x/m"}, "each address is host:port, not 'b:x'"),
    ({"url": "redis+sentinel://a:1/m?dbx=1"}, "unknown option 'dbx'"),
    ({"url": "redis+sentinel://a:1/m?socket_timeout=soon"}, "socket_timeout must be a number"),
    ({"url": "redis+sentinel://a:1/m/x"}, "the database must be a number"),
    ({"url": "redis+cluster://a:1/2"}, "a Cluster URL has no path"),
    ({"url": "redis+cluster://a:1?db=2"}, "only database 0"),
    ({"url": "redis+cluster://a:1", "db": 3}, "only database 0"),
    ({"url": "redis+cluster://a:1", "host": "b"}, "give either url or host"),
    ({"url": "redis+cluster://a:1?sentinel_password=x"}, "sentinel_\\* options are for redis\\+sentinel"),
    ({"url": "redis+cluster://a:1", "socket_timeout": "x"}, "socket_timeout must be a number"),
    ({"url": "redis+gossip://a:1"}, "must be redis://"),
])
def test_bad_urls_are_improperly_configured(connection: dict, error: str) -> None:
    with override_settings(WS4REDIS_CONNECTION=connection):
        with pytest.raises(ImproperlyConfigured, match=error):
            get_settings()
        assert [message.id for message in check_settings(None)] == ["ws4redis_server.E001"]


def test_logs_never_show_the_password() -> None:
    assert without_password("redis+sentinel://u:secret@a:1/m") == "redis+sentinel://u:***@a:1/m"
    assert without_password("redis+cluster://a:1") == "redis+cluster://a:1"
