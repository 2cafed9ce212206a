"""The systems under test, each started for one socket count and stopped afterwards:

- ``ws4redis``: the project's stack from the deployment files (deploy.stack: Redis, uWSGI from
  deploy/uwsgi.ini, nginx from deploy/nginx.conf);
- ``channels``: the peer, a Django Channels 4 app (bench/channels_peer) in daphne processes with
  channels_redis, behind nginx;
- ``external``: a ws4redis stack that is already running (``--url``); its memory is not measured.

Every target serves the broadcast facility ``bench`` and the ``/ws/echo/`` transcript.
"""
from __future__ import annotations

import asyncio
import functools
import math
import os
import signal
import subprocess
from pathlib import Path
from typing import Any, Protocol

import redis

from deploy.sizing import UWSGI_RESERVE_FILES, UWSGI_SPREAD_MARGIN
from deploy.stack import BIN, ROOT, RedisServer, Stack, can_connect, free_port, stop_pid, wait_for

from .fleet import HANDSHAKES_IN_FLIGHT
from .memory import with_children

PEER_DIR = Path(__file__).resolve().parent / "channels_peer"
FACILITY = "bench"
LISTEN_BACKLOG = 4096  # as uWSGI's listen in deploy/uwsgi.ini (and net.core.somaxconn here)
WORKERS_READY_TIMEOUT = 120.0  # seconds the WebSocket workers may take to load and reach Redis
# Seconds a channel layer call (a group_send to every socket) may take: at least this, and one
# per LAYER_SOCKETS_PER_SECOND sockets.
LAYER_TIMEOUT = 30.0
LAYER_SOCKETS_PER_SECOND = 2_000


class Target(Protocol):
    name: str
    idle_url: str
    echo_url: str

    def start(self) -> None: ...

    def publish(self, text: str) -> None: ...

    def pids(self) -> dict[str, list[int]]: ...

    def stop(self) -> None: ...


def _prefixed(name: str) -> str:
    """Returns the Redis key or channel ``name`` under WS4REDIS_PREFIX, if set (as webapp.settings)."""
    prefix = os.environ.get("WS4REDIS_PREFIX")
    return f"{prefix}:{name}" if prefix else name


def broadcast_channel() -> str:
    """The Redis channel of the ``bench`` facility's broadcasts."""
    return _prefixed(f"broadcast:{FACILITY}")


class RunningStack:
    """A ws4redis stack already serving at ``base_url`` (ws://host:port), publishing to ``redis_url``."""

    name = "external"

    def __init__(self, base_url: str, redis_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.redis_url = redis_url
        self.redis: redis.Redis | None = None

    @property
    def idle_url(self) -> str:
        return f"{self.base_url}/ws/{FACILITY}?subscribe-broadcast"

    @property
    def echo_url(self) -> str:
        return f"{self.base_url}/ws/echo/"

    def start(self) -> None:
        self.redis = redis.Redis.from_url(self.redis_url)
        self.redis.ping()

    def publish(self, text: str) -> None:
        assert self.redis is not None
        self.redis.publish(broadcast_channel(), text)

    def pids(self) -> dict[str, list[int]]:
        """Returns the processes of each part: none, this stack is not ours to watch."""
        return {}

    def stop(self) -> None:
        if self.redis is not None:
            self.redis.close()


class Ws4RedisStack(RunningStack):
    """The project's stack sized for ``sockets`` by deploy/sizing.py, as ``make run`` sizes it:
    WebSocket workers and nginx workers from the per-process file limit."""

    name = "ws4redis"

    def __init__(self, sockets: int) -> None:
        super().__init__("", "")
        self.sockets = sockets
        self.redis_server: RedisServer | None = None
        self.stack: Stack | None = None

    def start(self) -> None:
        self.redis_server = RedisServer().start()
        self.stack = Stack(free_port(), self.redis_server.url, max_sockets=self.sockets)
        self.stack.start()
        self.base_url, self.redis_url = self.stack.ws_url, self.redis_server.url
        super().start()
        self._wait_until_every_worker_relays()

    def _wait_until_every_worker_relays(self, timeout: float = WORKERS_READY_TIMEOUT) -> None:
        """Waits until every WebSocket worker has loaded the application (lazy-apps) and connected
        its hub to Redis, as the figures each worker writes to Redis say. The master accepts
        sockets before that, and a socket that waits longer than WS4REDIS_SUBSCRIBE_TIMEOUT for its
        subscription is served unsubscribed for a while: it would miss the first broadcasts."""
        assert self.stack is not None and self.redis is not None
        stack, client = self.stack, self.redis
        workers_of = functools.partial(stack.worker_pids, "websocket")
        prefix = _prefixed("ws4redis:stats:")

        def relaying() -> set[int]:
            ready = set()
            for key in client.scan_iter(match=prefix + "*", count=1000):
                pid = int(key.decode().rsplit(":", 1)[1])
                if client.hget(key, "redis_connected") == b"1":
                    ready.add(pid)
            return ready

        wait_for(lambda: set(workers_of()) <= relaying(), timeout,
                 "every WebSocket worker connected to Redis", stack.run_dir / "uwsgi.log")

    def pids(self) -> dict[str, list[int]]:
        """Returns the processes of each part: the WebSocket instance's master and workers, nginx's
        master and workers, Redis."""
        assert self.stack is not None and self.redis_server is not None
        return _parts(with_children(self.stack.pid_of("websocket")), self.stack, self.redis_server)

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            _stop_servers(self.stack, self.redis_server)
            self.stack = self.redis_server = None


def _parts(server: list[int], stack: Stack, redis_server: RedisServer) -> dict[str, list[int]]:
    assert stack.nginx is not None and redis_server.process is not None
    return {"server": server, "nginx": with_children(stack.nginx.pid), "redis": [redis_server.process.pid]}


def _stop_servers(stack: Stack | None, redis_server: RedisServer | None) -> None:
    """Stops the front (nginx and what it proxies to), then Redis, whatever fails first."""
    try:
        if stack is not None:
            stack.stop()
    finally:
        if redis_server is not None:
            redis_server.stop()


# A daphne process's channel layer may open this many Redis connections (redis-py's pool raises
# past its size): one per handshake in flight at most, and the receive loop's. Each is a file too.
LAYER_MAX_CONNECTIONS = HANDSHAKES_IN_FLIGHT + 64
# Never fewer daphne processes than this (what the peer always ran with): one asyncio loop takes
# a connect burst's handshakes one by one, and daphne rejects a socket its application has not
# accepted within 5 s (--websocket_connect_timeout). With a single process at 10,000 sockets, 3 in
# 10 were rejected, their consumers' Redis connects timing out.
MIN_DAPHNE_PROCESSES = 4


def daphne_processes(sockets: int, nofile: int) -> int:
    """Returns how many daphne processes hold ``sockets`` sockets under ``nofile`` files each: one
    file per socket, as a uWSGI WebSocket worker (with the same margin for an uneven spread), plus
    the channel layer's Redis connections and the same reserve for the rest; MIN_DAPHNE_PROCESSES
    at least."""
    room = nofile - UWSGI_RESERVE_FILES - LAYER_MAX_CONNECTIONS
    return max(MIN_DAPHNE_PROCESSES, math.ceil(sockets * UWSGI_SPREAD_MARGIN / room))


class DaphneStack(Stack):
    """deploy.stack's nginx handling and sizing (the same nginx workers and limits as the
    ws4redis stack's for ``sockets``), with daphne processes instead of uWSGI behind it."""

    def __init__(self, port: int, redis_url: str, sockets: int, layer: str) -> None:
        super().__init__(port, redis_url, env={"DJANGO_SETTINGS_MODULE": "bench.channels_peer.settings",
                                               "CHANNEL_LAYER": layer,
                                               "CHANNEL_LAYER_MAX_CONNECTIONS": str(LAYER_MAX_CONNECTIONS)},
                         max_sockets=sockets)
        processes = daphne_processes(sockets, self.sizing.nofile)
        self.sockets = [self.run_dir / f"daphne-{i}.sock" for i in range(processes)]
        self.daphnes: list[subprocess.Popen] = []

    def start_uwsgi(self) -> None:
        log = self.run_dir / "daphne.log"
        with open(log, "ab") as out:
            for path in self.sockets:
                self.daphnes.append(subprocess.Popen(
                    # Twisted's default listen backlog (50) overflows under a connect burst.
                    [str(BIN / "daphne"), "-e", f"unix:{path}:backlog={LISTEN_BACKLOG}",
                     "bench.channels_peer.asgi:application"],
                    cwd=ROOT, env=self.environ(), stdout=out, stderr=subprocess.STDOUT))
        for path in self.sockets:
            wait_for(functools.partial(can_connect, str(path)), 60, f"daphne on {path.name}", log)

    def render_nginx(self) -> Path:
        # max_fails=0: a refused connect during a burst must not take a daphne out of rotation.
        upstreams = "\n        ".join(f"server unix:{path} max_fails=0;" for path in self.sockets)
        text = (PEER_DIR / "nginx.conf").read_text()
        for name, value in {"RUN_DIR": self.run_dir, "PORT": self.port, **self.sizing.nginx(),
                            "NGINX_WORKERS": self.nginx_workers, "UPSTREAMS": upstreams}.items():
            text = text.replace(f"${{{name}}}", str(value))
        path = self.run_dir / "nginx.conf"
        path.write_text(text)
        return path

    def stop(self) -> None:
        try:
            stop_pid(self.nginx, signal.SIGQUIT, 10)
        finally:
            for process in self.daphnes:
                stop_pid(process)
            self.nginx, self.daphnes = None, []


class ChannelsPeer:
    """The Channels peer: daphne processes (one channel layer each) behind nginx, as many as
    ``sockets`` need under the file limit (daphne_processes)."""

    def __init__(self, sockets: int, layer: str = "core") -> None:
        self.name = "channels" if layer == "core" else f"channels-{layer}"
        self.sockets, self.layer = sockets, layer
        self.redis_server: RedisServer | None = None
        self.stack: DaphneStack | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.channel_layer: Any = None

    @property
    def idle_url(self) -> str:
        assert self.stack is not None
        return f"{self.stack.ws_url}/ws/{FACILITY}"

    @property
    def echo_url(self) -> str:
        assert self.stack is not None
        return f"{self.stack.ws_url}/ws/echo/"

    def start(self) -> None:
        from channels_redis.core import RedisChannelLayer
        from channels_redis.pubsub import RedisPubSubChannelLayer

        self.redis_server = RedisServer().start()
        self.stack = DaphneStack(free_port(), self.redis_server.url, self.sockets, self.layer)
        self.stack.start()
        layer_class = RedisChannelLayer if self.layer == "core" else RedisPubSubChannelLayer
        self.loop = asyncio.new_event_loop()  # one per start: stop() closes it
        self.channel_layer = layer_class(hosts=[self.redis_server.url])
        # The first send opens the layer's Redis connections: not part of any measurement.
        self._run(self.channel_layer.group_send("warm-up", {"type": "bench.message", "text": ""}))

    def _run(self, step: Any) -> None:
        """Runs one channel layer call to its end, or raises TimeoutError once it took too long."""
        assert self.loop is not None
        timeout = max(LAYER_TIMEOUT, self.sockets / LAYER_SOCKETS_PER_SECOND)
        self.loop.run_until_complete(asyncio.wait_for(step, timeout))

    def publish(self, text: str) -> None:
        assert self.channel_layer is not None
        self._run(self.channel_layer.group_send(FACILITY, {"type": "bench.message", "text": text}))

    def pids(self) -> dict[str, list[int]]:
        """Returns the processes of each part: the daphne processes, nginx's master and workers, Redis."""
        assert self.stack is not None and self.redis_server is not None
        return _parts([process.pid for process in self.stack.daphnes], self.stack, self.redis_server)

    def stop(self) -> None:
        try:
            if self.channel_layer is not None:
                # The Redis server is ours and about to stop: flushing only closes the connections.
                self._run(self.channel_layer.flush())
        finally:
            if self.loop is not None:
                self.loop.close()
            self.loop = self.channel_layer = None
            _stop_servers(self.stack, self.redis_server)
            self.stack = self.redis_server = None
