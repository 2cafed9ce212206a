"""Counters of the WebSocket loop, per worker process, gathered over every worker through Redis.

Each worker counts in a plain dict (no locks: one gevent thread) and writes it every
``REPORT_INTERVAL`` seconds to a Redis hash of its own that expires when the worker is gone.
Django reads every worker's hash: :func:`snapshot` for the stats page, :func:`exposition` for
Prometheus. Nothing here is on the per-message path but integer increments.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

import gevent
import redis

from .conf import get_settings
from .redis_client import get_redis

logger = logging.getLogger("ws4redis_server.metrics")

REPORT_INTERVAL = 2.0  # seconds between a worker's writes to Redis
REPORT_TTL = 15  # seconds a worker's figures outlive its last write

# Per process. Gauges: sockets_open, outbox_high_water. Everything else only grows.
STATS: dict[str, int] = {
    "sockets_open": 0,
    "sockets_accepted": 0,
    "messages_received": 0,   # from clients
    "messages_sent": 0,       # to clients
    "outbox_high_water": 0,   # most messages ever queued for one socket
    "closed_slow_consumer": 0,
    "closed_rate_limit": 0,
    "closed_too_big": 0,
    "closed_invalid_data": 0,
    "closed_protocol_error": 0,
    "dropped_messages": 0,    # queued for a slow consumer and never sent
    "refused_full": 0,        # handshakes answered 503: the process was at its file limit
}
# What the hub counts (Hub.stats), exported beside STATS.
HUB_STATS = ("messages_in", "deliveries", "reconnects", "outages")
GAUGES = {"sockets_open", "outbox_high_water", "redis_connected"}
HELP = {
    "sockets_open": "WebSockets open",
    "sockets_accepted": "WebSockets accepted since the worker started",
    "messages_received": "messages received from clients",
    "messages_sent": "messages sent to clients",
    "outbox_high_water": "most messages queued for one socket at once",
    "closed_slow_consumer": "sockets closed with 4000 (outbox full)",
    "closed_rate_limit": "sockets closed with 1008 (inbound rate limit)",
    "closed_too_big": "sockets closed with 1009 (message too big)",
    "closed_invalid_data": "sockets closed with 1007 (invalid UTF-8)",
    "closed_protocol_error": "sockets closed with 1002 (protocol error)",
    "dropped_messages": "messages dropped with a slow consumer's outbox",
    "refused_full": "handshakes refused with 503: the worker held as many sockets as its file limit allows",
    "messages_in": "messages read from Redis pub/sub",
    "deliveries": "messages handed to sockets (one per socket per message)",
    "reconnects": "reconnections to Redis after an outage",
    "outages": "Redis outages seen",
    "redis_connected": "1 if the worker's pub/sub connection to Redis is up",
}
# When the worker wrote its figures (seconds, and milliseconds for the live page's rates).
TIMESTAMPS = {"updated", "updated_ms"}
CLOSE_COUNTERS = {4000: "closed_slow_consumer", 1008: "closed_rate_limit", 1009: "closed_too_big",
                  1007: "closed_invalid_data", 1002: "closed_protocol_error"}


def key_prefix() -> str:
    return f"{get_settings().prefix}ws4redis:stats:"


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


_stopped = False


def report_forever(hub: Any) -> None:
    """Writes this worker's figures to Redis every REPORT_INTERVAL seconds (run in a greenlet)
    until :func:`forget`."""
    key = key_prefix() + worker_name()
    while not _stopped:
        now = time.time()
        figures = {**STATS, **{name: hub.stats[name] for name in HUB_STATS},
                   "redis_connected": int(hub.connected), "updated": int(now), "updated_ms": int(now * 1000)}
        try:
            with get_redis().pipeline(transaction=False) as pipe:
                pipe.hset(key, mapping=figures)  # type: ignore[arg-type]
                pipe.expire(key, REPORT_TTL)
                pipe.execute()
        except redis.RedisError as exc:
            logger.debug("stats not reported: %s", exc)
        gevent.sleep(REPORT_INTERVAL)


def forget() -> None:
    """Stops reporting and removes this worker's figures at once (the worker is going away), so
    the totals and the list of workers do not count it for REPORT_TTL more seconds."""
    global _stopped
    _stopped = True
    try:
        get_redis().delete(key_prefix() + worker_name())
    except redis.RedisError as exc:  # they expire by themselves
        logger.debug("stats not removed: %s", exc)


def snapshot() -> dict[str, dict[str, int]]:
    """Returns every live worker's figures, by worker name ("host:pid"); raises RedisError."""
    client = get_redis()
    prefix = key_prefix()
    keys = sorted(client.scan_iter(match=prefix + "*", count=1000))
    workers: dict[str, dict[str, int]] = {}
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hgetall(key)
        for key, values in zip(keys, pipe.execute(), strict=True):
            if values:
                name = key.decode("utf-8", "replace")[len(prefix):]
                workers[name] = {field.decode(): int(value) for field, value in values.items()}
    return workers


class PrometheusMissing(ImportError):
    """prometheus_client is not installed (``pip install django-ws4redis-server[prometheus]``)."""


def exposition(workers: dict[str, dict[str, int]]) -> bytes:
    """Returns ``workers`` (from :func:`snapshot`) in Prometheus's text format, one series per
    worker (label ``worker``); counters get the ``_total`` suffix. Raises PrometheusMissing
    without prometheus_client (the extra ``[prometheus]``); nothing else here needs it."""
    try:
        from prometheus_client import CollectorRegistry, generate_latest
    except ImportError as exc:
        raise PrometheusMissing("prometheus_client is not installed: "
                                "pip install 'django-ws4redis-server[prometheus]'") from exc
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    class Collector:
        def collect(self) -> Any:
            for name, help_text in HELP.items():
                family: Any
                if name in GAUGES:
                    family = GaugeMetricFamily(f"ws4redis_{name}", help_text, labels=["worker"])
                else:
                    family = CounterMetricFamily(f"ws4redis_{name}", help_text, labels=["worker"])
                for worker, figures in workers.items():
                    if name in figures:
                        family.add_metric([worker], figures[name])
                yield family

    registry = CollectorRegistry()
    registry.register(Collector())
    return generate_latest(registry)
