"""Settings: defaults, validation with ImproperlyConfigured, hooks as callables or dotted paths."""
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
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


# -- WS4REDIS_CONNECTION: every redis-py option passes through -----------------------------------


def client_names(redis_server: Any) -> dict[str, list[str]]:
    """CLIENT LIST of the tests' Redis as {name: [last command of each connection so named]}."""
    found: dict[str, list[str]] = {}
    for client in redis_server.client().client_list():
        found.setdefault(client["name"], []).append(client["cmd"])
    return found


def test_connection_options_reach_the_publishers_pool_and_the_hubs_connection(redis_server: Any) -> None:
    from ws4redis_server.redis_client import get_redis, make_client

    name = f"ws4r-{uuid.uuid4().hex[:8]}"
    connection = {"url": redis_server.url, "client_name": name, "socket_timeout": 3, "socket_connect_timeout": 2,
                  "health_check_interval": 30, "retry_on_timeout": True}
    with override_settings(WS4REDIS_CONNECTION=connection):
        assert get_settings().redis_options == connection
        client = get_redis()
        assert client.ping()
        options = client.connection_pool.connection_kwargs
        assert {key: options[key] for key in connection if key != "url"} == {k: v for k, v in connection.items()
                                                                             if k != "url"}
        assert isinstance(client.connection_pool, redis.BlockingConnectionPool)
        connection_ = client.connection_pool.get_connection()
        assert connection_.retry.get_retries() == 1  # redis-py's own rule for retry_on_timeout
        client.connection_pool.release(connection_)
        # The hub's pub/sub connection, made as hub.py makes it.
        hub_client = make_client(get_settings(), pool=False, health_check_interval=0)
        pubsub = hub_client.pubsub()
        pubsub.subscribe("ws4r-test-channel")
        assert pubsub.get_message(timeout=5)["type"] == "subscribe"
        hub_options = hub_client.connection_pool.connection_kwargs
        assert hub_options["health_check_interval"] == 0 and "retry_on_timeout" not in hub_options
        assert pubsub.connection.retry.get_retries() == 0  # the hub reconnects by itself
        assert sorted(client_names(redis_server)[name]) == ["ping", "subscribe"]
        pubsub.close()
        hub_client.close()


def test_a_short_socket_timeout_does_not_cut_the_hubs_wait(redis_server: Any) -> None:
    from ws4redis_server.redis_client import PUBSUB_MIN_SOCKET_TIMEOUT, get_redis, make_client

    with override_settings(WS4REDIS_CONNECTION={"url": redis_server.url, "socket_timeout": 0.2}):
        assert get_redis().connection_pool.connection_kwargs["socket_timeout"] == 0.2  # publishers: as set
        hub_client = make_client(get_settings(), pool=False, health_check_interval=0)
        assert hub_client.connection_pool.connection_kwargs["socket_timeout"] == PUBSUB_MIN_SOCKET_TIMEOUT
        pubsub = hub_client.pubsub()
        pubsub.subscribe("ws4r-quiet")
        pubsub.get_message(timeout=5)
        started = time.monotonic()
        assert pubsub.get_message(timeout=1.0) is None  # waited, no TimeoutError after 0.2 s
        assert time.monotonic() - started >= 0.9
        pubsub.close()
        hub_client.close()
    with override_settings(WS4REDIS_CONNECTION={"url": redis_server.url, "socket_timeout": 30}):
        hub_client = make_client(get_settings(), pool=False)
        assert hub_client.connection_pool.connection_kwargs["socket_timeout"] == 30


def test_unix_socket_path_as_ws4redis(tmp_path: Path) -> None:
    from ws4redis_server import RedisPublisher
    from ws4redis_server.redis_client import get_redis, make_client
    from ws4redis_server.testing import RedisServer

    path = tmp_path / "redis.sock"
    with RedisServer(args=["--unixsocket", str(path), "--unixsocketperm", "700"]) as server:
        with override_settings(WS4REDIS_CONNECTION={"unix_socket_path": str(path), "db": 5, "client_name": "unix"}):
            assert get_settings().redis_url == f"unix://{path}"
            RedisPublisher(facility="f", broadcast=True).publish_message("over the unix socket", expire=30)
            assert redis.Redis(unix_socket_path=str(path), db=5).get("broadcast:f") == b"over the unix socket"
            assert server.client().get("broadcast:f") is None  # db 0
            assert "unix" in client_names(server)
            assert isinstance(get_redis().connection_pool.get_connection(), redis.UnixDomainSocketConnection)
            hub_client = make_client(get_settings(), pool=False)
            assert hub_client.ping()
            hub_client.close()


def test_ssl_options_pass_to_an_ssl_connection(redis_server: Any) -> None:
    from ws4redis_server.redis_client import get_redis

    for connection in ({"host": "127.0.0.1", "port": redis_server.port, "ssl": True, "ssl_cert_reqs": "none",
                        "ssl_ca_certs": "/etc/ssl/certs/ca-certificates.crt"},
                       {"url": f"rediss://127.0.0.1:{redis_server.port}/0", "ssl_cert_reqs": "none"}):
        with override_settings(WS4REDIS_CONNECTION=connection):
            pool = get_redis().connection_pool
            assert pool.connection_class is redis.SSLConnection  # built only: this Redis speaks no TLS
            assert pool.connection_kwargs["ssl_cert_reqs"] == "none"


def test_max_connections_of_ws4redis_sizes_the_pool(redis_server: Any) -> None:
    from ws4redis_server.redis_client import get_redis

    with override_settings(WS4REDIS_CONNECTION={"url": redis_server.url, "max_connections": 7}):
        assert get_settings().redis_max_connections == 7
        assert get_redis().connection_pool.max_connections == 7
    with override_settings(WS4REDIS_CONNECTION={"url": redis_server.url, "max_connections": 7},
                           WS4REDIS_REDIS_MAX_CONNECTIONS=9):
        with pytest.raises(ImproperlyConfigured, match="differ"):
            get_settings()


@pytest.mark.parametrize("connection, message", [
    ({"url": "redis://127.0.0.1/0", "sockettimeout": 1, "bogus": 2}, "unknown keys: bogus, sockettimeout"),
    ({"url": "redis://127.0.0.1/0", "host": "other"}, "either url or host"),
    ({"host": "127.0.0.1", "ssl_ca_certs": "/x"}, "ssl_ca_certs does not apply to a TCP connection.*ssl: True"),
    ({"unix_socket_path": "/tmp/r.sock", "host": "h", "port": 1}, "host, port do not apply to a unix socket"),
    ({"unix_socket_path": "/tmp/r.sock", "ssl": True}, "ssl does not apply with unix_socket_path"),
    ({"connection_pool": object()}, "connection_pool is not supported: ws4redis_server makes its own pools"),
    ({"decode_responses": True}, "decode_responses must stay off"),
    ({"protocol": 3}, "protocol must be 2"),
    ({"socket_timeout": "5"}, "socket_timeout must be a number"),
    ({"max_connections": 1}, "max_connections must be an integer >= 2"),
    ({"url": "redis://127.0.0.1/0?db=x"}, "refused by redis-py|WS4REDIS_CONNECTION"),
    ({"password": "p", "credential_provider": redis.UsernamePasswordCredentialProvider("u", "p")},
     "refused by redis-py: 'username' and 'password' cannot be passed along with 'credential_provider'"),
])
def test_connection_options_redis_py_would_refuse(connection: dict[str, Any], message: str) -> None:
    with override_settings(WS4REDIS_CONNECTION=connection):
        with pytest.raises(ImproperlyConfigured, match=message):
            get_settings()


def test_ws4redis_settings_of_a_0_6_0_site(redis_server: Any) -> None:
    """A settings block as ws4redis's docs wrote it is accepted as it is."""
    ws4redis_site = {
        "WEBSOCKET_URL": "/ws/",
        "WS4REDIS_CONNECTION": {"host": "127.0.0.1", "port": redis_server.port, "db": 0, "password": None},
        "WS4REDIS_EXPIRE": 7200,
        "WS4REDIS_PREFIX": "demo",
        "WS4REDIS_HEARTBEAT": "--heartbeat--",
        "WS4REDIS_ALLOWED_CHANNELS": "test_conf.deny_all",
        "WS4REDIS_PROCESS_REQUEST": deny_all,
        "WSGI_APPLICATION": "ws4redis_server.django_runserver.application",
    }
    with override_settings(**ws4redis_site):
        settings = get_settings()
        assert (settings.websocket_url, settings.expire, settings.prefix, settings.heartbeat) == \
            ("/ws/", 7200, "demo:", "--heartbeat--")
        assert settings.allowed_channels is deny_all and settings.process_request is deny_all
        from ws4redis_server.redis_client import get_redis

        assert get_redis().ping()


@pytest.mark.parametrize("value", ["ws4redis.subscriber.RedisSubscriber", "myapp.subscriber.RedisSubscriber"])
def test_ws4redis_subscriber_is_refused_with_what_to_use_instead(value: str) -> None:
    with override_settings(WS4REDIS_SUBSCRIBER=value):
        with pytest.raises(ImproperlyConfigured) as raised:
            get_settings()
    text = str(raised.value)
    assert text.startswith(f"WS4REDIS_SUBSCRIBER ({value!r}) is not supported")
    assert all(hint in text for hint in ("WS4REDIS_ALLOWED_CHANNELS", "WS4REDIS_PROCESS_REQUEST", "@websocket"))
