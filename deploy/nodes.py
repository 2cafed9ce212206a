"""Several WebSocket nodes behind one nginx, Django on its own: the shape of a site on several
machines, on one box.

Each node is a uWSGI instance of its own (``uwsgi --ini deploy/uwsgi.ini:websocket`` with
``WS_NODE=<n>``: sockets ``ws-<n>-<w>.sock``, one per worker, pidfile ``websocket-<n>.pid``),
Django one more (``uwsgi --ini deploy/uwsgi.ini:django``), and nginx (``deploy/nginx.conf``) sends
``/ws/`` to an ``upstream`` of every node's worker sockets (least_conn): a handshake that cannot
reach a node (stopped, restarting) goes to the next one, and the node's sockets are left out for
``fail_timeout``. Nodes share nothing but Redis, so a client may reconnect to any of them and
resume from its last id. The peak (``max_sockets``) is shared: each node is sized for its share.

On real machines: one nginx (or a cloud load balancer that passes WebSocket upgrades) with one
``server host:port`` line per WebSocket machine, each machine running the websocket section with
a TCP ``socket`` (or ``http-socket`` behind a balancer), the Django machines likewise; see the
README's "Several WebSocket nodes".

    python -m deploy.cluster     # `make cluster`: a Redis Cluster, 3 nodes, the site
"""
from __future__ import annotations

import functools
import math
import signal
import subprocess
from pathlib import Path

from deploy.sizing import Sizing, plan
from deploy.stack import BIN, DEPLOY, ROOT, Stack, can_connect, stop_pid, wait_for


class NodesStack(Stack):
    """Django, ``nodes`` WebSocket instances and nginx on 127.0.0.1:``port`` (``Stack``'s other
    arguments; ``env``'s ``WS_WORKERS`` is per node, each node is sized for its share of
    ``max_sockets``)."""

    # A stopped node's sockets refuse handshakes: leave them out for a while.
    upstream_options = " max_fails=1 fail_timeout=5s"

    def __init__(self, port: int, redis_url: str, nodes: int = 3, **kwargs: object) -> None:
        self.nodes = nodes
        super().__init__(port, redis_url, **kwargs)  # type: ignore[arg-type]
        self.node_processes: dict[int, subprocess.Popen[bytes]] = {}

    def instance_sizing(self) -> Sizing:
        """One node's sizing: its share of the peak."""
        return plan(math.ceil(self.sizing.sockets / self.nodes), self.sizing.nofile)

    def ws_sockets(self) -> list[Path]:
        return [path for node in range(1, self.nodes + 1) for path in self.node_sockets(node)]

    def node_sockets(self, node: int) -> list[Path]:
        """Node ``node``'s worker sockets, ws-<node>-<w>.sock."""
        return [self.run_dir / f"ws-{node}-{worker}.sock" for worker in range(1, self.ws_workers + 1)]

    def start_uwsgi(self) -> None:
        log = self.run_dir / "uwsgi.log"
        with open(log, "ab") as out:
            self.uwsgi = subprocess.Popen([str(BIN / "uwsgi"), "--ini", f"{DEPLOY / 'uwsgi.ini'}:django"],
                                          cwd=ROOT, env=self.environ(), stdout=out, stderr=subprocess.STDOUT)
        for node in range(1, self.nodes + 1):
            self.start_node(node, wait=False)
        for path in [self.run_dir / "django.sock", *self.ws_sockets()]:
            wait_for(lambda path=path: can_connect(str(path)), 60, f"uWSGI {path.name}", log)

    def start_node(self, node: int, wait: bool = True) -> None:
        """Starts WebSocket node ``node`` (again)."""
        log = self.run_dir / "uwsgi.log"
        with open(log, "ab") as out:
            self.node_processes[node] = subprocess.Popen(
                [str(BIN / "uwsgi"), "--ini", f"{DEPLOY / 'uwsgi.ini'}:websocket"], cwd=ROOT,
                env={**self.environ(), "WS_NODE": str(node)}, stdout=out, stderr=subprocess.STDOUT)
        if wait:
            for path in self.node_sockets(node):
                wait_for(functools.partial(can_connect, str(path)), 60, f"WebSocket node {node} ({path.name})", log)

    def stop_node(self, node: int) -> None:
        """Stops node ``node`` as ``uwsgi --stop`` would (SIGINT): its sockets get 1001 first."""
        stop_pid(self.node_processes.pop(node, None), signal.SIGINT, 30)

    def pid_of(self, instance: str) -> int:
        """The master PID of ``django``, ``websocket-<n>``, or ``websocket`` (node 1)."""
        return super().pid_of("websocket-1" if instance == "websocket" else instance)

    def stop(self) -> None:
        try:
            for node in list(self.node_processes):
                self.stop_node(node)
        finally:
            super().stop()
