"""Redis behind Sentinel (``redis+sentinel://``): a real master, replica and three sentinels on
loopback ports, the site through nginx and uWSGI on top. The master is SIGKILLed mid-stream: the
sentinels promote the replica, the hubs and the publishers follow it without any process
restarting, no socket is closed, and every socket gets every message published after the switch;
what was published before it arrives too (from the new master's history) or the socket is told
``gap`` (replication is asynchronous: the dead master may have taken some with it)."""
from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator

import pytest
import redis
from django.test import override_settings

from deploy.redis_ha import SentinelSet
from deploy.stack import Stack, free_port, private_dir
from tests.clients import all_workers, close_clients, open_clients
from tests.streams import Publisher, check, check_lost_tail_is_a_gap, read_frames
from ws4redis_server import RedisPublisher
from ws4redis_server.redis_modes import parse

pytestmark = pytest.mark.cluster
SOCKETS = 200
FACILITIES = 10


@pytest.fixture(scope="module")
def sentinel() -> Iterator[SentinelSet]:
    with SentinelSet(private_dir("ws4r-sentinel-")) as running:
        yield running


def test_sentinel_urls_parse() -> None:
    mode = parse("redis+sentinel://u:p%40ss@127.0.0.1:1,h2:2/mymaster?db=3&sentinel_password=s&socket_timeout=2")
    assert (mode.kind, mode.addresses, mode.service) == ("sentinel", (("127.0.0.1", 1), ("h2", 2)), "mymaster")
    assert mode.options == {"username": "u", "password": "p@ss", "db": 3, "socket_timeout": 2.0}
    assert mode.sentinel_options == {"password": "s"}


@pytest.mark.slow
def test_master_killed_sockets_keep_receiving(sentinel: SentinelSet) -> None:
    stack = Stack(free_port(), sentinel.url, run_dir=private_dir("ws4r-sentinel-run-"),
                  static_root=os.environ["STATIC_ROOT"], env={"WS_WORKERS": "2", "WS_GEVENT": "500"},
                  nginx_workers=1)
    facilities = [f"sentinel-{i}" for i in range(FACILITIES)]
    frames: list[list[str]] = [[] for _ in range(SOCKETS)]
    urls = [f"{stack.ws_url}/ws/{facilities[i % FACILITIES]}?subscribe-broadcast&ids" for i in range(SOCKETS)]

    def publish(facility: str, text: str) -> None:
        RedisPublisher(facility=facility, broadcast=True).publish_message(text, expire=0)

    async def scenario() -> tuple[Publisher, float, list]:
        callbacks = [lambda text, _, i=i: frames[i].append(text) for i in range(SOCKETS)]
        clients = await open_clients(urls, on_message=callbacks)
        try:
            with override_settings(WS4REDIS_CONNECTION={"url": sentinel.url}):
                publisher = Publisher(facilities, publish).start()
                await asyncio.sleep(1.5)
                old = await asyncio.to_thread(sentinel.kill_master)
                killed = time.monotonic()
                await asyncio.to_thread(sentinel.wait_promoted, old)
                promoted = time.monotonic() - killed
                await asyncio.sleep(3)
                publisher.stop()
            await asyncio.sleep(3)  # the last messages and any catch-up arrive
            return publisher, promoted, [client for client in clients if client.closed.done()]
        finally:
            await close_clients(clients)

    try:
        stack.start()
        workers = all_workers(stack, "websocket")
        publisher, promoted, closed = asyncio.run(scenario())
        assert not closed, f"{len(closed)} sockets closed during the failover"
        problems = {}
        for i in range(SOCKETS):
            facility = facilities[i % FACILITIES]
            got = read_frames([text for text in frames[i] if text.startswith(("@", "1"))])
            problem = check(publisher.sent[facility], got)
            if problem:
                problems[i] = problem
            # Messages published once the publisher reached the new master: never a gap.
            last = publisher.sent[facility][-1]
            assert last in got.numbers, f"socket {i} missed the last message {last}: {got.numbers[-5:]}"
        assert not problems, f"{len(problems)} sockets: {list(problems.items())[:3]}"
        assert all_workers(stack, "websocket") == workers  # nothing restarted
        print(f"promotion took {promoted:.1f}s; {publisher.failures} publishes refused during the switch")
    finally:
        stack.stop()


@pytest.mark.slow
def test_what_the_new_master_never_got_is_reported_as_a_gap() -> None:
    """Messages the master acknowledged but never passed to its replica (its link is cut while
    they are published) die with the master: the sockets that got them live are told
    ``gap`` once the replica is promoted, and keep receiving."""
    from ws4redis_server.testing import connect

    with SentinelSet(private_dir("ws4r-sentinel-gap-")) as sentinel:
        stack = Stack(free_port(), sentinel.url, run_dir=private_dir("ws4r-sentinel-gap-run-"),
                      static_root=os.environ["STATIC_ROOT"], env={"WS_WORKERS": "1", "WS_GEVENT": "100"},
                      nginx_workers=1)
        try:
            stack.start()
            old: list[int] = []
            with override_settings(WS4REDIS_CONNECTION={"url": sentinel.url}), \
                    connect(f"{stack.ws_url}/ws/gap?subscribe-broadcast&ids") as ws:
                host, port = sentinel.master_address()
                check_lost_tail_is_a_gap(ws, RedisPublisher(facility="gap", broadcast=True),
                                         redis.Redis(host=host, port=port),
                                         sentinel.procs.processes[sentinel.replica_port].pid,
                                         lambda: old.append(sentinel.kill_master()),
                                         lambda: sentinel.wait_promoted(old[0]))
        finally:
            stack.stop()
