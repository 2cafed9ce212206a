"""The demo site's own apps on a Redis Cluster (3 + 3), served by 3 WebSocket nodes behind nginx,
as ``make cluster`` serves them:

- a Game of Life run (its scripts keep every key of the runs in one slot) completes, cell
  sockets spread over the nodes, and matches the reference;
- chat presence snapshots (published by a script, SPUBLISH on a Cluster) reach the room's
  sockets;
- a broadcast sent from the admin reaches a page socket, and withdrawing it (its persisted
  copies read key by key) reaches it too;
- a second ``deploy.stack run`` on the run directory of running nodes is refused, naming each
  node, and the Cluster's servers leave pid files (``make cluster`` keeps them in its run
  directory, which refuses a second one for them too);
- a socket on three channels owned by three primaries (three clocks for their ids), reconnecting
  mid-stream with the newest id it has, gets every message of each channel once, in order.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from deploy import running
from deploy.nodes import NodesStack
from deploy.redis_ha import RedisClusterSet
from deploy.stack import ROOT, free_port
from tests.streams import Publisher
from webapp.broadcast.models import Broadcast
from webapp.broadcast.sending import FACILITY, publisher_for, withdraw
from webapp.chat.models import Room
from webapp.gameoflife.tests.reference import generations
from workers.gameoflife import play_game
from workers.patterns import load, place
from ws4redis_server import RedisPublisher, get_redis
from ws4redis_server.testing import connect
from ws4redis_server.wire import parse_frame, parse_id

from . import test_cluster_nodes

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

# The cluster and the nodes, as the several-nodes tests start them (one set for this module).
cluster, nodes = test_cluster_nodes.cluster, test_cluster_nodes.nodes
_on_the_cluster = test_cluster_nodes._on_the_cluster


def receive(ws: Any, timeout: float = 10) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=timeout))


def test_a_game_of_life_run_completes_on_the_cluster(nodes: NodesStack) -> None:
    start = place(load("blinker"), 6)
    for steps in (1, 2, 3):  # three runs in a row: each replaces the last one's counters
        final = play_game(nodes.ws_url, start, True, steps, None)
        assert final == generations(start, steps)
    assert final != start


def test_chat_presence_reaches_the_room_sockets(nodes: NodesStack, make_user: Any, login_cookie: Any) -> None:
    room = Room.objects.create(slug=f"cluster-{os.urandom(4).hex()}", title="On the cluster")
    alice, bob = make_user(), make_user()

    def wait_for(ws: Any, users: list[str]) -> dict[str, Any]:
        while (event := receive(ws))["type"] != "presence" or event["users"] != users:
            pass
        return event

    with connect(f"{nodes.ws_url}/ws/chat.{room.slug}?subscribe-broadcast") as observer, \
            connect(f"{nodes.ws_url}/ws/chat/presence/{room.slug}/", session=login_cookie(alice)) as tab:
        assert receive(tab)["users"] == [alice.username]
        wait_for(observer, [alice.username])
        with connect(f"{nodes.ws_url}/ws/chat/presence/{room.slug}/", session=login_cookie(bob)):
            joined = wait_for(observer, sorted([alice.username, bob.username]))
        left = wait_for(observer, [alice.username])
        assert left["version"] > joined["version"]


def test_an_admin_broadcast_reaches_a_page_socket_on_the_cluster(nodes: NodesStack, make_user: Any,
                                                                login_cookie: Any) -> None:
    admin = Client()
    admin.force_login(make_user(is_staff=True, is_superuser=True))
    alice, bob = make_user(), make_user()
    message = f"cluster note {os.urandom(4).hex()}"
    flags = "subscribe-broadcast&subscribe-user&subscribe-group"
    try:
        with connect(f"{nodes.ws_url}/ws/{FACILITY}?{flags}", session=login_cookie(alice)) as ws:
            # To two users: two channels, whose persisted copies are in two slots.
            response = admin.post("/admin/broadcast/broadcast/add/", {
                "message": message, "level": "info", "audience": "users", "users": [alice.pk, bob.pk]})
            assert response.status_code == 302, response.content.decode()[:2000]
            broadcast = Broadcast.objects.get(message=message)
            while (payload := receive(ws)).get("id") != broadcast.pk:
                pass  # a copy persisted by an earlier broadcast
            assert payload["message"] == message
            withdraw(broadcast)
            assert receive(ws) == {"id": broadcast.pk, "withdrawn": True}
        # Its persisted copies are gone: a page opened now does not show it.
        channels = publisher_for(broadcast).channels
        assert len(channels) == 2
        assert [get_redis().get(channel) for channel in channels] == [None, None]
    finally:
        Broadcast.objects.filter(message=message).delete()


def test_a_second_run_beside_running_nodes_is_refused(cluster: RedisClusterSet, nodes: NodesStack,
                                                      tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "deploy.stack", "run", "--port", str(free_port()), "--run-dir",
                           str(nodes.run_dir), "--redis", "cluster", "--nodes", "3"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    for node in (1, 2, 3):
        assert f"uwsgi PID {nodes.pid_of(f'websocket-{node}')} (websocket-{node}.pid)" in done.stderr
    # Each Redis server of the Cluster writes its pid file; in a run directory (`make cluster`
    # keeps its Cluster in <run dir>/redis-cluster/) they hold it.
    (tmp_path / "redis-cluster").symlink_to(cluster.procs.workdir)
    servers = running.live_servers(tmp_path) or ""
    assert servers.count("redis-server PID") == len(cluster.ports) == 6
    for port, process in cluster.procs.processes.items():
        assert f"redis-server PID {process.pid} (redis-cluster/{port}/redis.pid)" in servers


def test_a_socket_on_three_shards_resumes_with_nothing_lost_or_repeated(
        cluster: RedisClusterSet, nodes: NodesStack, make_user: Any, login_cookie: Any) -> None:
    # A socket on three channels (broadcast, user, group of one facility) owned by three
    # primaries, so three shard clocks give their ids; it reconnects mid-stream again and again
    # with the newest id it has (as the JS client does).
    facility, names = "resume-3", [f"shards-{os.urandom(3).hex()}-{i}" for i in range(100)]
    taken = {cluster.primary_of(f"broadcast:{facility}")}
    user_name = next(name for name in names if cluster.primary_of(f"user:{name}:{facility}") not in taken)
    taken.add(cluster.primary_of(f"user:{user_name}:{facility}"))
    group = next(name for name in names if cluster.primary_of(f"group:{name}:{facility}") not in taken)
    user = make_user(username=user_name, groups=(group,))
    session = login_cookie(user)
    publishers = {"broadcast": RedisPublisher(facility=facility, broadcast=True),
                  "user": RedisPublisher(facility=facility, users=[user.username]),
                  "group": RedisPublisher(facility=facility, groups=[group])}
    url = f"{nodes.ws_url}/ws/{facility}?subscribe-broadcast&subscribe-user&subscribe-group&ids"
    got: dict[str, list[int]] = {name: [] for name in publishers}
    last_id: str | None = None

    def read(ws: Any, seconds: float) -> None:
        nonlocal last_id
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                text = ws.recv(timeout=left)
            except TimeoutError:
                return
            frame = parse_frame(text.encode())
            if frame.message_id and (last_id is None or parse_id(frame.message_id) > parse_id(last_id)):
                last_id = frame.message_id
            assert not frame.gap, f"gap after {sum(map(len, got.values()))} messages"
            if not frame.position and frame.data:
                name, number = frame.data.decode().rsplit(" ", 1)
                got[name].append(int(number))

    publisher = Publisher(list(publishers), lambda name, text: publishers[name].publish_message(text, expire=0),
                          interval=0.005)
    ws = connect(url, session=session)
    publisher.start()
    try:
        for _ in range(12):
            read(ws, 0.4)
            ws.close()  # mid-stream: what was in flight to this socket is lost with it
            ws = connect(url + f"&last-id={last_id}", session=session)
        publisher.stop()
        read(ws, 3)
    finally:
        publisher.stop()
        ws.close()
    for name, numbers in got.items():
        assert numbers == publisher.sent[name], (name, [n for n in publisher.sent[name] if n not in numbers][:10],
                                                 len(numbers), len(publisher.sent[name]))
