"""Several WebSocket nodes on a Redis Cluster: Django, 3 WebSocket nodes (separate uWSGI
instances, ``deploy/nodes.py``) and nginx with one upstream for them, over a 3 + 3 Redis Cluster
on loopback ports.

- every audience (broadcast, user, group, session) delivers through nginx across the 3 nodes,
  and a group change closes the user's group sockets on every node (4001, through the sharded
  control channel);
- a node stopped mid-stream: its clients get 1001, reconnect through nginx to the others with
  their last id and miss nothing, in order, none twice.
"""
from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings
from websockets.exceptions import ConnectionClosed

from deploy.nodes import NodesStack
from deploy.redis_ha import RedisClusterSet
from deploy.stack import free_port, private_dir, wait_for
from tests.streams import Publisher, check, read_frames
from workers.wsload import HandshakeRejected, open_client, parse_ws_url
from ws4redis_server import RedisPublisher, metrics
from ws4redis_server.testing import connect
from ws4redis_server.wire import parse_frame

pytestmark = [pytest.mark.slow, pytest.mark.cluster]
NODES = 3


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterSet]:
    with RedisClusterSet(workdir=private_dir("ws4r-nodes-cluster-")) as running:
        yield running


@pytest.fixture(scope="module")
def nodes(cluster: RedisClusterSet) -> Iterator[NodesStack]:
    stack = NodesStack(free_port(), cluster.url, NODES, run_dir=private_dir("ws4r-nodes-run-"),
                       static_root=os.environ["STATIC_ROOT"], env={"WS_WORKERS": "1", "WS_GEVENT": "1000"},
                       nginx_workers=2)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(autouse=True)
def _on_the_cluster(cluster: RedisClusterSet) -> Iterator[None]:
    with override_settings(WS4REDIS_CONNECTION={"url": cluster.url}):
        yield


def sockets_per_worker() -> dict[str, int]:
    """Open sockets by WebSocket worker, as the workers report them to Redis (every 2 s)."""
    return {name: figures.get("sockets_open", 0) for name, figures in metrics.snapshot().items()}


def test_every_audience_through_nginx_across_the_nodes(nodes: NodesStack, make_user: Any,
                                                       login_cookie: Any) -> None:
    user = make_user(groups=("cluster-staff",))
    cookies = [login_cookie(user) for _ in range(3)]
    flags = "subscribe-broadcast&subscribe-user&subscribe-group&subscribe-session"
    count = 30  # spread over the nodes by nginx
    sockets = [connect(f"{nodes.ws_url}/ws/audiences?{flags}", session=cookies[i % 3]) for i in range(count)]
    try:
        wait_for(lambda: sum(sockets_per_worker().values()) >= count, 15, "the workers' figures")
        spread = sockets_per_worker()
        assert len([n for n in spread.values() if n]) == NODES, spread
        for audience, publisher in [
            ("broadcast", RedisPublisher(facility="audiences", broadcast=True)),
            ("user", RedisPublisher(facility="audiences", users=[user.username])),
            ("group", RedisPublisher(facility="audiences", groups=["cluster-staff"])),
        ]:
            publisher.publish_message(audience, expire=0)
            assert [ws.recv(timeout=20) for ws in sockets] == [audience] * count
        RedisPublisher(facility="audiences", sessions=[cookies[1]]).publish_message("session", expire=0)
        assert [ws.recv(timeout=20) for ws in sockets[1::3]] == ["session"] * len(sockets[1::3])
        # A group change reaches every node (the control channel is sharded too): the user's
        # group sockets are closed with 4001.
        user.groups.clear()
        codes = set()
        for ws in sockets:
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=20)
            codes.add(closed.value.rcvd.code if closed.value.rcvd else None)
        assert codes == {4001}
    finally:
        for ws in sockets:
            ws.close()


class ResumingClient:
    """A client that reconnects whenever it is closed, with ``last-id`` (as the JS client does)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.frames: list[str] = []
        self.last_id: str | None = None
        self.closes: list[int | None] = []
        self.client: Any = None

    def on_message(self, text: str, _arrival: float) -> None:
        self.frames.append(text)
        frame = parse_frame(text.encode())
        if frame.message_id:
            self.last_id = frame.message_id

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            url = self.url + (f"&last-id={self.last_id}" if self.last_id else "")
            try:
                self.client = await open_client(parse_ws_url(url), on_message=self.on_message, timeout=20)
            except (OSError, TimeoutError, HandshakeRejected):
                self.closes.append(None)
                await asyncio.sleep(0.2)
                continue
            closed = asyncio.ensure_future(asyncio.shield(self.client.closed))
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait([closed, stopping], return_when=asyncio.FIRST_COMPLETED)
            if closed.done():
                received = self.client.protocol.close_rcvd
                self.closes.append(int(received.code) if received is not None else None)
            stopping.cancel()
        if self.client is not None:
            await self.client.close(timeout=5)


def test_a_node_stopped_mid_stream_loses_nothing(nodes: NodesStack) -> None:
    facilities = [f"nodes-{i}" for i in range(10)]
    clients = [ResumingClient(f"{nodes.ws_url}/ws/{facilities[i % 10]}?subscribe-broadcast&ids") for i in range(150)]

    def publish(facility: str, text: str) -> None:
        RedisPublisher(facility=facility, broadcast=True).publish_message(text, expire=0)

    async def scenario() -> Publisher:
        stop = asyncio.Event()
        runs = [asyncio.ensure_future(client.run(stop)) for client in clients]
        try:
            await asyncio.sleep(2)
            publisher = Publisher(facilities, publish).start()
            await asyncio.sleep(1.5)
            await asyncio.to_thread(nodes.stop_node, 2)
            await asyncio.sleep(4)
            publisher.stop()
            await asyncio.sleep(3)
            return publisher
        finally:
            stop.set()
            await asyncio.gather(*runs, return_exceptions=True)
            await asyncio.to_thread(nodes.start_node, 2)

    publisher = asyncio.run(scenario())
    moved = [client for client in clients if client.closes]
    assert moved and all(client.closes == [1001] for client in moved), [client.closes for client in moved][:5]
    problems = {}
    for i, client in enumerate(clients):
        facility = facilities[i % 10]
        got = read_frames(client.frames)
        problem = check(publisher.sent[facility], got) or ("gap reported" if got.gaps else None)
        if problem:
            problems[i] = problem
        assert publisher.sent[facility][-1] in got.numbers
    assert not problems, f"{len(problems)} sockets: {list(problems.items())[:3]}"
    print(f"{len(moved)} of {len(clients)} clients moved to another node; "
          f"{sum(len(v) for v in publisher.sent.values())} messages, none lost or repeated")
