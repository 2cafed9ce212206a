"""Redis Cluster with sharded pub/sub: a real 3-primary + 3-replica cluster on loopback ports
(``deploy/redis_ha.py``), the site through nginx and uWSGI on top, publishers in this process
(``RedisPublisher`` over ``redis+cluster://``).

- 1,000 sockets over 100 channels spread over every shard get every message, and each WebSocket
  worker holds exactly one pub/sub connection per primary;
- slots migrated mid-stream (``redis-cli --cluster reshard``) keep every subscription alive;
- a primary SIGKILLed mid-stream fails over to its replica and its sockets keep receiving, with
  what was published in between replayed, or reported as a gap.
"""
from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import redis
from django.test import override_settings
from redis.crc import key_slot

from deploy.redis_ha import RedisClusterSet
from deploy.stack import Stack, free_port, private_dir
from tests.clients import all_workers, close_clients, next_messages, open_clients
from tests.streams import Publisher, check, check_lost_tail_is_a_gap, read_frames
from ws4redis_server import RedisPublisher
from ws4redis_server.testing import connect

pytestmark = [pytest.mark.slow, pytest.mark.cluster]
WORKERS = 2


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterSet]:
    with RedisClusterSet(workdir=private_dir("ws4r-cluster-")) as running:
        yield running


@pytest.fixture(scope="module")
def cluster_stack(cluster: RedisClusterSet) -> Iterator[Stack]:
    stack = Stack(free_port(), cluster.url, run_dir=private_dir("ws4r-cluster-run-"),
                  static_root=os.environ["STATIC_ROOT"], env={"WS_WORKERS": str(WORKERS), "WS_GEVENT": "2000"},
                  nginx_workers=2)
    try:
        stack.start()
        all_workers(stack, "websocket")
        yield stack
    finally:
        stack.stop()


@pytest.fixture(autouse=True)
def _publish_to_the_cluster(cluster: RedisClusterSet) -> Iterator[None]:
    with override_settings(WS4REDIS_CONNECTION={"url": cluster.url}):
        yield


def publish(facility: str, text: str) -> None:
    RedisPublisher(facility=facility, broadcast=True).publish_message(text, expire=0)


def sharded_subscribers(cluster: RedisClusterSet, port: int) -> int:
    """Connections with shard-channel subscriptions on the node on ``port``."""
    return sum(1 for client in redis.Redis(port=port).client_list() if int(client.get("ssub", 0)) > 0)


def test_1000_sockets_over_100_channels_on_every_shard(cluster: RedisClusterSet, cluster_stack: Stack) -> None:
    facilities = [f"spread-{i}" for i in range(100)]
    shards = Counter(cluster.primary_of(f"broadcast:{facility}") for facility in facilities)
    assert len(shards) == 3, shards
    urls = [f"{cluster_stack.ws_url}/ws/{facilities[i % 100]}?subscribe-broadcast" for i in range(1000)]

    async def scenario() -> None:
        clients = await open_clients(urls)
        try:
            for round_ in range(3):
                for facility in facilities:
                    publish(facility, f"{facility} {round_}")
                got = await next_messages(clients, 30)
                missing = [i for i, text in enumerate(got) if text != f"{facilities[i % 100]} {round_}"]
                assert not missing, f"round {round_}: {len(missing)} sockets missed, e.g. {got[missing[0]]!r}"
            # One pub/sub connection per primary and WebSocket worker: never per socket or channel.
            assert {port: sharded_subscribers(cluster, port) for port in cluster.primaries()} == \
                {port: WORKERS for port in cluster.primaries()}
        finally:
            await close_clients(clients)

    asyncio.run(scenario())


def stream_through(cluster_stack: Stack, facilities: list[str], sockets: int, fault: object) -> dict[str, object]:
    """Opens ``sockets`` sockets with ids over ``facilities``, publishes on every facility every
    20 ms, runs ``fault()`` (in a thread) mid-stream, and checks what every socket received.
    Returns figures: the fault's duration, refused publishes, sockets told of a gap, and the
    longest time a socket went without a message from the fault's start."""
    frames: list[list[tuple[str, float]]] = [[] for _ in range(sockets)]
    urls = [f"{cluster_stack.ws_url}/ws/{facilities[i % len(facilities)]}?subscribe-broadcast&ids"
            for i in range(sockets)]

    async def scenario() -> tuple[Publisher, float, float, list]:
        callbacks = [lambda text, arrival, i=i: frames[i].append((text, arrival)) for i in range(sockets)]
        clients = await open_clients(urls, on_message=callbacks)
        try:
            publisher = Publisher(facilities, publish).start()
            await asyncio.sleep(1.5)
            started = time.monotonic()
            await asyncio.to_thread(fault)  # type: ignore[arg-type]
            ended = time.monotonic()
            await asyncio.sleep(3)
            publisher.stop()
            await asyncio.sleep(3)
            return publisher, started, ended, [client for client in clients if client.closed.done()]
        finally:
            await close_clients(clients)

    publisher, started, ended, closed = asyncio.run(scenario())
    assert not closed, f"{len(closed)} sockets closed"
    problems, gaps, silences = {}, 0, []
    for i in range(sockets):
        facility = facilities[i % len(facilities)]
        got = read_frames([text for text, _ in frames[i]])
        gaps += bool(got.gaps)
        problem = check(publisher.sent[facility], got)
        if problem:
            problems[i] = problem
        last = publisher.sent[facility][-1]
        assert last in got.numbers, f"socket {i} ({facility}) missed the last message {last}: {got.numbers[-5:]}"
        arrivals = [started] + [arrival for _, arrival in frames[i] if arrival >= started]
        silences.append(max(b - a for a, b in zip(arrivals, arrivals[1:], strict=False)) if len(arrivals) > 1 else 0)
    assert not problems, f"{len(problems)} sockets: {list(problems.items())[:3]}"
    figures = {"fault_s": round(ended - started, 1), "refused_publishes": publisher.failures,
               "sockets_with_gap": gaps, "longest_silence_s": round(max(silences), 2)}
    print(figures)
    return figures


def channels_in_lowest_slots(cluster: RedisClusterSet, port: int, slots: int, prefix: str) -> list[str]:
    """10 facilities whose broadcast channel is in the ``slots`` lowest slots of the primary on
    ``port``: those ``redis-cli --cluster reshard`` moves first."""
    low = min(int(item.partition("-")[0]) for node in cluster.nodes() if node.port == port for item in node.slots
              if item[0].isdigit())
    facilities, n = [], 0
    while len(facilities) < 10:
        n += 1
        if low <= key_slot(f"broadcast:{prefix}-{n}".encode()) < low + slots:
            facilities.append(f"{prefix}-{n}")
    return facilities


def test_slots_migrated_mid_stream_keep_every_subscription(cluster: RedisClusterSet, cluster_stack: Stack) -> None:
    source, target = cluster.primaries()[:2]
    facilities = channels_in_lowest_slots(cluster, source, 300, "migrate")
    others = [f"stay-{i}" for i in range(10)]
    stream_through(cluster_stack, facilities + others, 200, lambda: cluster.reshard(source, target, 300))
    assert {cluster.primary_of(f"broadcast:{facility}") for facility in facilities} == {target}


def test_a_node_added_and_given_slots_mid_stream(cluster: RedisClusterSet, cluster_stack: Stack) -> None:
    source = cluster.primaries()[0]
    facilities = channels_in_lowest_slots(cluster, source, 300, "added")
    added: list[int] = []

    def grow() -> None:
        added.append(cluster.add_primary())
        cluster.reshard(source, added[0], 300)

    stream_through(cluster_stack, facilities + [f"stay-{i}" for i in range(10)], 200, grow)
    assert {cluster.primary_of(f"broadcast:{facility}") for facility in facilities} == {added[0]}


def test_primary_killed_mid_stream_fails_over(cluster: RedisClusterSet, cluster_stack: Stack) -> None:
    facilities = [f"failover-{i}" for i in range(30)]
    victim = Counter(cluster.primary_of(f"broadcast:{facility}") for facility in facilities).most_common(1)[0][0]
    workers = all_workers(cluster_stack, "websocket")

    def kill() -> None:
        cluster.kill(victim)
        cluster.wait_failover(victim)

    stream_through(cluster_stack, facilities, 300, kill)
    assert victim not in cluster.primaries()
    assert all_workers(cluster_stack, "websocket") == workers  # no worker restarted


def test_persisted_messages_across_slots(cluster: RedisClusterSet) -> None:
    from ws4redis_server import get_redis
    from ws4redis_server.publisher import persisted_messages

    facilities = [f"persist-{i}" for i in range(12)]
    assert len({cluster.primary_of(f"broadcast:{facility}") for facility in facilities}) == 3
    for facility in facilities:
        RedisPublisher(facility=facility, broadcast=True).publish_message(f"kept {facility}", expire=60)
    channels = [f"broadcast:{facility}" for facility in facilities]
    assert persisted_messages(get_redis(), "", channels) == [(f"kept {f}".encode(), True) for f in facilities]
    assert RedisPublisher().fetch_message(None, facilities[5]) == b"kept persist-5"


def test_a_socket_on_channels_of_several_slots_gets_their_persisted_messages(
        cluster: RedisClusterSet, cluster_stack: Stack) -> None:
    facilities = [f"kept-{i}" for i in range(12)]
    assert len({cluster.primary_of(f"broadcast:{facility}") for facility in facilities}) == 3
    for facility in facilities:
        RedisPublisher(facility=facility, broadcast=True).publish_message(f"kept {facility}", expire=60)
    # One socket per channel (a facility is one channel per audience), across all three shards.
    for facility in facilities:
        with connect(f"{cluster_stack.ws_url}/ws/{facility}?subscribe-broadcast") as ws:
            assert ws.recv(timeout=10) == f"kept {facility}"


def test_what_a_failover_lost_is_reported_as_a_gap(cluster: RedisClusterSet, cluster_stack: Stack) -> None:
    """Messages a primary acknowledged but never passed to its replica (the replica's link cut
    while they are published) die with it: once the replica has taken over, a socket that got
    them live is told ``gap``, and keeps receiving."""
    primary, replica = next((port, r) for port in cluster.primaries() if (r := cluster.replica_of(port)))
    facility = next(f"lostgap-{n}" for n in range(10_000) if cluster.primary_of(f"broadcast:lostgap-{n}") == primary)
    with connect(f"{cluster_stack.ws_url}/ws/{facility}?subscribe-broadcast&ids") as ws:
        check_lost_tail_is_a_gap(ws, RedisPublisher(facility=facility, broadcast=True), redis.Redis(port=primary),
                                 cluster.procs.processes[replica].pid, lambda: cluster.kill(primary),
                                 lambda: cluster.wait_failover(primary))


def test_the_sessions_cache_on_the_cluster(cluster: RedisClusterSet) -> None:
    """ws4redis_server.cache.RedisCache, which the demo site's sessions use on a Cluster: keys of
    every slot, one by one and many at once."""
    from ws4redis_server.cache import RedisCache

    cache = RedisCache("", {"KEY_PREFIX": "clustertest"})
    values = {f"key-{i}": {"n": i} for i in range(30)}
    cache.set_many(values, timeout=60)
    assert cache.get_many(list(values)) == values
    cache.set("one", [1], timeout=60)
    assert cache.get("one") == [1]
    assert cache.add("counter", 1, timeout=60) and cache.incr("counter") == 2
    cache.delete_many(list(values))
    assert cache.get_many(list(values)) == {}
