"""Which Redis a process talks to: one server (the default), a Sentinel-managed master, or a Redis
Cluster, read from the ``url`` of ``WS4REDIS_CONNECTION`` (or the demo site's ``REDIS_URL``).

    redis://host:port/db                                      one server (rediss://, unix:// too)
    redis+sentinel://[user:password@]host:port[,host:port...]/<service>[?db=N&...]
    redis+cluster://[user:password@]host:port[,host:port...][?...]

In a Sentinel URL the addresses are the sentinels', ``<service>`` is the master's name
(``sentinel monitor <service> ...``), the credentials are the Redis servers' and
``sentinel_password`` / ``sentinel_username`` in the query are the sentinels' own. In a Cluster
URL the addresses are startup nodes (any of the cluster's nodes; the others are discovered). The
query takes ``db`` (Sentinel only: a Cluster has only database 0) and the socket options of
redis-py (``socket_timeout``, ``socket_connect_timeout``, ``client_name``, ...), as redis-py's
own URLs do. Pure parsing: no I/O here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

SINGLE, SENTINEL, CLUSTER = "single", "sentinel", "cluster"
SCHEMES = {"redis+sentinel": SENTINEL, "rediss+sentinel": SENTINEL, "redis+cluster": CLUSTER,
           "rediss+cluster": CLUSTER}
_NUMBERS = {"socket_timeout": float, "socket_connect_timeout": float, "health_check_interval": float, "db": int}
_QUERY = {"db", "socket_timeout", "socket_connect_timeout", "health_check_interval", "client_name",
          "sentinel_password", "sentinel_username"}


@dataclass(frozen=True)
class RedisMode:
    """How to reach Redis: ``kind`` (``single``, ``sentinel``, ``cluster``), the sentinels' or
    the startup nodes' ``addresses``, the Sentinel ``service``, the options for the Redis
    connections (``options``) and for the sentinels' (``sentinel_options``)."""

    kind: str
    addresses: tuple[tuple[str, int], ...] = ()
    service: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    sentinel_options: dict[str, Any] = field(default_factory=dict)


def is_mode_url(url: Any) -> bool:
    """True if ``url`` is a Sentinel or Cluster URL (else it is redis-py's own kind)."""
    return isinstance(url, str) and urlsplit(url).scheme in SCHEMES


def parse(url: str) -> RedisMode:
    """Returns the mode of a ``redis+sentinel://`` or ``redis+cluster://`` URL; raises ValueError
    saying what is wrong with it."""
    parts = urlsplit(url)
    kind = SCHEMES.get(parts.scheme)
    if kind is None:
        raise ValueError(f"{url!r} is neither redis+sentinel:// nor redis+cluster://")
    netloc = parts.netloc
    credentials, _, hosts = netloc.rpartition("@")
    addresses = tuple(_address(url, item) for item in hosts.split(","))
    options: dict[str, Any] = {}
    if credentials:
        username, colon, password = credentials.partition(":")
        if username:
            options["username"] = unquote(username)
        if colon:
            options["password"] = unquote(password)
    sentinel_options: dict[str, Any] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in _QUERY:
            raise ValueError(f"{url!r}: unknown option {name!r} (one of {', '.join(sorted(_QUERY))})")
        if name.startswith("sentinel_"):
            sentinel_options[name[len("sentinel_"):]] = value
            continue
        convert = _NUMBERS.get(name)
        try:
            options[name] = convert(value) if convert else value
        except ValueError:
            raise ValueError(f"{url!r}: {name} must be a number, not {value!r}") from None
    if parts.scheme.startswith("rediss"):
        options["ssl"] = True
    path = parts.path.strip("/")
    if kind == SENTINEL:
        service, _, db = path.partition("/")
        if not service:
            raise ValueError(f"{url!r}: a Sentinel URL names the master's service: redis+sentinel://host:port/<service>")
        if db:
            if "db" in options:
                raise ValueError(f"{url!r}: give the database in the path or as ?db=, not both")
            if not db.isdigit():
                raise ValueError(f"{url!r}: the database must be a number, not {db!r}")
            options["db"] = int(db)
        if options.get("ssl"):
            sentinel_options.setdefault("ssl", True)
        return RedisMode(kind, addresses, service, options, sentinel_options)
    if path:
        raise ValueError(f"{url!r}: a Cluster URL has no path (a Cluster has only database 0)")
    if options.get("db", 0) != 0:
        raise ValueError(f"{url!r}: a Redis Cluster has only database 0")
    options.pop("db", None)
    if sentinel_options:
        raise ValueError(f"{url!r}: sentinel_* options are for redis+sentinel:// URLs")
    return RedisMode(kind, addresses, "", options)


def _address(url: str, item: str) -> tuple[str, int]:
    host, colon, port = item.strip().rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{url!r}: each address is host:port, not {item!r}")
    return host.strip("[]"), int(port)


def without_password(url: str) -> str:
    """Returns ``url`` for logs: its password, if any, replaced by ``***``."""
    parts = urlsplit(url)
    credentials, at, hosts = parts.netloc.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return parts._replace(netloc=f"{credentials.partition(':')[0]}:***@{hosts}").geturl()
