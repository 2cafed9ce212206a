"""Local Redis set-ups beyond one server, on free loopback ports, for `make cluster`, the tests and
the benchmarks: a Sentinel set-up (a master, a replica, three sentinels) and a Redis Cluster
(3 primaries + 3 replicas). Every process is started here and stopped by its PID (``stop()``, or
leaving the ``with`` block, even after an error); nothing is kept on disk beyond the work directory.

    with SentinelSet() as sentinel:   # sentinel.url: redis+sentinel://127.0.0.1:p1,.../ws4r
        ...
        sentinel.kill_master()        # SIGKILL; sentinel.wait_promoted() returns the new master
    with RedisClusterSet() as cluster:  # cluster.url: redis+cluster://127.0.0.1:p1,...
        cluster.kill_primary_of(b"broadcast:news")

Timings are tight for tests: a sentinel takes a master for down after 1 s, a cluster node after
2 s (``cluster-node-timeout``); production keeps Redis's defaults (30 s and 15 s).
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import redis
from redis.cluster import key_slot

from ws4redis_server.testing.redis_server import free_port

SERVICE = "ws4r"


class _Processes:
    """Processes started by one set-up, stopped by PID."""

    def __init__(self, workdir: Path | None) -> None:
        self.own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="ws4r-redis-ha-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.processes: dict[int, subprocess.Popen[bytes]] = {}  # port -> process

    def spawn(self, port: int, args: list[str], binary: str = "redis-server") -> None:
        path = shutil.which(binary)
        if path is None:
            raise RuntimeError(f"{binary} not found: apt-get install redis-server redis-sentinel "
                               "(deploy/install-system-deps.sh)")
        node_dir = self.workdir / str(port)
        node_dir.mkdir(exist_ok=True)
        self.processes[port] = subprocess.Popen(
            [path, *args], cwd=node_dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT)

    def wait_answers(self, port: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if redis.Redis(port=port, socket_timeout=1).ping():
                    return
            except redis.RedisError:
                pass
            process = self.processes.get(port)
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"redis process on port {port} exited with {process.returncode}"
                                   f" (log: {self.workdir / str(port)})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis process on port {port} does not answer")
            time.sleep(0.05)

    def kill(self, port: int) -> None:
        """SIGKILL, by PID, of the process on ``port``."""
        process = self.processes.pop(port, None)
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(5)
        self.processes.clear()
        if self.own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def cluster_port() -> int:
    """A free loopback port for a cluster node: at most 55535, its bus port (10,000 above) free too."""
    for _ in range(1000):
        port = random.randint(20000, 55535)
        if all(_bindable(candidate) for candidate in (port, port + 10000)):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _server_args(port: int) -> list[str]:
    return ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--logfile", "redis.log", "--pidfile", "redis.pid", "--maxclients", "10000"]


class _SetUp:
    """Stops its processes on leaving a ``with`` block, whatever happened."""

    procs: _Processes

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        self.procs.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


class SentinelSet(_SetUp):
    """A master, one replica and three sentinels monitoring them as ``SERVICE``."""

    def __init__(self, workdir: Path | None = None, down_after_ms: int = 1000) -> None:
        self.procs = _Processes(workdir)
        self.master_port = free_port()
        self.replica_port = free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.down_after_ms = down_after_ms

    @property
    def url(self) -> str:
        return "redis+sentinel://" + ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports) + f"/{SERVICE}"

    def start(self) -> SentinelSet:
        try:
            self.procs.spawn(self.master_port, _server_args(self.master_port))
            self.procs.spawn(self.replica_port, [*_server_args(self.replica_port), "--replicaof", "127.0.0.1",
                                                 str(self.master_port)])
            self.procs.wait_answers(self.master_port)
            self.procs.wait_answers(self.replica_port)
            for port in self.sentinel_ports:
                config = self.procs.workdir / f"sentinel-{port}.conf"
                config.write_text(
                    f"port {port}\nbind 127.0.0.1\ndaemonize no\nlogfile sentinel.log\n"
                    f"sentinel monitor {SERVICE} 127.0.0.1 {self.master_port} 2\n"
                    f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}\n"
                    f"sentinel failover-timeout {SERVICE} 10000\n"
                    f"sentinel parallel-syncs {SERVICE} 1\n")
                self.procs.spawn(port, [str(config), "--sentinel"])
            for port in self.sentinel_ports:
                self.procs.wait_answers(port)
            self._wait(lambda: self.replica_synced(), 20, "the replica to sync")
            self._wait(lambda: all(self._sentinel(p).sentinel_master(SERVICE).get("num-other-sentinels", 0) >= 2
                                   for p in self.sentinel_ports), 20, "the sentinels to see each other")
            # Sentinels learn of replicas from the master's INFO (every 10 s): a failover before
            # then aborts with "no good slave".
            self._wait(self.replica_known, 30, "the sentinels to know the replica")
        except BaseException:
            self.stop()
            raise
        return self

    def _sentinel(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=2, decode_responses=True)

    def replica_known(self) -> bool:
        """True once every sentinel lists the replica, up and linked to the master."""
        for port in self.sentinel_ports:
            replicas = self._sentinel(port).sentinel_slaves(SERVICE)
            if not any(int(replica.get("port", 0)) == self.replica_port and replica.get("master-link-status") == "ok"
                       and not replica.get("is_sdown") and not replica.get("is_disconnected") for replica in replicas):
                return False
        return True

    def wait_replicated(self, timeout: float = 10) -> None:
        """Waits until the replica has everything the master has written (WAIT)."""
        host, port = self.master_address()
        if redis.Redis(host=host, port=port, socket_timeout=timeout + 1).execute_command(
                "WAIT", 1, int(timeout * 1000)) < 1:
            raise RuntimeError("the replica did not catch up")

    def replica_synced(self) -> bool:
        info = redis.Redis(port=self.replica_port, socket_timeout=2).info("replication")
        return info.get("master_link_status") == "up"

    def master_address(self) -> tuple[str, int]:
        """Where the sentinels say the master is now."""
        for port in self.sentinel_ports:
            try:
                host, master = self._sentinel(port).sentinel_get_master_addr_by_name(SERVICE)
                return host, int(master)
            except (redis.RedisError, TypeError):
                continue
        raise RuntimeError("no sentinel answers")

    def kill_master(self) -> int:
        """SIGKILLs the current master; returns its port."""
        port = self.master_address()[1]
        self.procs.kill(port)
        return port

    def wait_promoted(self, old_port: int, timeout: float = 60) -> int:
        """Waits until the sentinels name a master other than ``old_port`` that answers as one;
        returns its port."""
        def promoted() -> bool:
            port = self.master_address()[1]
            if port == old_port:
                return False
            try:
                return redis.Redis(port=port, socket_timeout=1).info("replication")["role"] == "master"
            except redis.RedisError:
                return False

        self._wait(promoted, timeout, "a replica to be promoted")
        return self.master_address()[1]

    @staticmethod
    def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if condition():
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.1)



@dataclass(frozen=True)
class Node:
    """A line of CLUSTER NODES."""

    id: str
    port: int
    flags: list[str]
    master: str  # a replica's primary's id, "-" for a primary
    slots: list[str]

    @property
    def serving(self) -> bool:
        """A live primary with slots."""
        return "master" in self.flags and "fail" not in self.flags and bool(self.slots)


class RedisClusterSet(_SetUp):
    """``primaries`` primaries with ``replicas`` replicas each (3 + 3 by default), joined with
    ``redis-cli --cluster create``."""

    def __init__(self, primaries: int = 3, replicas: int = 1, workdir: Path | None = None,
                 node_timeout_ms: int = 2000) -> None:
        self.procs = _Processes(workdir)
        self.ports: list[int] = []
        while len(self.ports) < primaries * (1 + replicas):
            port = cluster_port()
            if not {port, port + 10000} & {n for p in self.ports for n in (p, p + 10000)}:
                self.ports.append(port)
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports[:3])

    def _node_args(self, port: int) -> list[str]:
        return [*_server_args(port), "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(self.node_timeout_ms), "--cluster-replica-validity-factor", "0",
                "--cluster-allow-replica-migration", "no"]

    def start(self) -> RedisClusterSet:
        try:
            for port in self.ports:
                self.procs.spawn(port, self._node_args(port))
            for port in self.ports:
                self.procs.wait_answers(port)
            subprocess.run(["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
                            "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=2)

    def nodes(self) -> list[Node]:
        """CLUSTER NODES as seen by a live node."""
        for port in self.ports:
            if port not in self.procs.processes:
                continue
            try:
                text = self.client(port).execute_command("CLUSTER", "NODES")
            except redis.RedisError:
                continue
            if isinstance(text, bytes):
                text = text.decode()
            nodes = []
            for line in str(text).splitlines():
                fields = line.split()
                nodes.append(Node(fields[0], int(fields[1].split("@")[0].rsplit(":", 1)[1]), fields[2].split(","),
                                  fields[3], fields[8:]))
            return nodes
        raise RuntimeError("no cluster node answers")

    def primaries(self) -> list[int]:
        return sorted(node.port for node in self.nodes() if node.serving)

    def replica_of(self, port: int) -> int | None:
        """The port of a live replica of the primary on ``port``, if it has one."""
        nodes = self.nodes()
        primary = next(node.id for node in nodes if node.port == port)
        return next((node.port for node in nodes if node.master == primary and "fail" not in node.flags
                     and node.port in self.procs.processes), None)

    def primary_of(self, channel: bytes | str) -> int:
        """The port of the primary that owns ``channel``'s slot now."""
        slot = key_slot(channel.encode() if isinstance(channel, str) else channel)
        for node in self.nodes():
            if not node.serving:
                continue
            for item in node.slots:
                low, _, high = item.partition("-")
                if low.isdigit() and int(low) <= slot <= int(high or low):
                    return node.port
        raise RuntimeError(f"no primary owns slot {slot}")

    def wait_healthy(self, timeout: float = 30) -> None:
        """Waits until every live node says cluster_state:ok and agrees on the primaries."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                infos = [self.client(p).execute_command("CLUSTER", "INFO") for p in self.procs.processes]
                if all(b"cluster_state:ok" in (info if isinstance(info, bytes) else str(info).encode())
                       for info in infos):
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not become healthy")
            time.sleep(0.1)

    def kill(self, port: int) -> None:
        """SIGKILLs the node on ``port``."""
        self.procs.kill(port)

    def wait_failover(self, old_port: int, timeout: float = 30) -> None:
        """Waits until the slots of the dead primary on ``old_port`` have a new, live owner."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                nodes = self.nodes()
                if not any(node.port == old_port and node.serving for node in nodes) \
                        and sum(node.serving for node in nodes) >= len(self.ports) // (1 + self.replicas):
                    self.wait_healthy(max(1.0, deadline - time.monotonic()))
                    return
            except (redis.RedisError, RuntimeError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("no replica took over")
            time.sleep(0.1)

    def add_primary(self) -> int:
        """Starts one more node and joins it as a primary without slots (``redis-cli --cluster
        add-node``); returns its port."""
        port = cluster_port()
        self.procs.spawn(port, self._node_args(port))
        self.procs.wait_answers(port)
        self.ports.append(port)
        subprocess.run(["redis-cli", "--cluster", "add-node", f"127.0.0.1:{port}", f"127.0.0.1:{self.primaries()[0]}"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        deadline = time.monotonic() + 30
        while sum(1 for node in self.nodes() if node.port == port) == 0 or not self._agree():
            if time.monotonic() > deadline:
                raise RuntimeError(f"node {port} did not join the cluster")
            time.sleep(0.1)
        self.wait_healthy()  # the new node too: before that it answers CLUSTERDOWN
        return port

    def _agree(self) -> bool:
        """True once every live node knows every other one."""
        counts = set()
        for port in self.procs.processes:
            text = self.client(port).execute_command("CLUSTER", "NODES")
            counts.add(len(str(text.decode() if isinstance(text, bytes) else text).splitlines()))
        return len(counts) == 1

    def reshard(self, source: int, target: int, slots: int) -> None:
        """Moves ``slots`` slots from the primary on ``source`` to the one on ``target`` with
        ``redis-cli --cluster reshard`` (keys migrate with them)."""
        ids = {node.port: node.id for node in self.nodes()}
        command = ["redis-cli", "--cluster", "reshard", f"127.0.0.1:{target}", "--cluster-from", ids[source],
                   "--cluster-to", ids[target], "--cluster-slots", str(slots), "--cluster-yes",
                   "--cluster-pipeline", "100"]
        deadline = time.monotonic() + 30
        while True:
            done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
            if done.returncode == 0:
                return
            # redis-cli refuses while the nodes' views differ (a node just added): try again.
            if b"don't agree" not in done.stdout or time.monotonic() > deadline:
                output = done.stdout.decode(errors="replace")[-2000:]
                raise RuntimeError(f"redis-cli --cluster reshard failed:\n{output}")
            time.sleep(0.5)

