"""A fleet of idle WebSocket clients spread over load processes, driven from the benchmark.

Each load process holds its share of sockets (workers.wsload) in one asyncio loop and answers
commands over a pipe: connect, count, expect (wait for tagged broadcasts), close. Broadcasts carry
their publish time (``bench:<tag>:<monotonic>``); CLOCK_MONOTONIC is system-wide on Linux, so a
socket's delivery latency is its arrival time minus that stamp, whatever process published.
"""
from __future__ import annotations

import asyncio
import math
import multiprocessing
import time
from array import array
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from workers.wsload import HandshakeRejected, WebSocketClient, WsTarget, describe_error, open_client, source_addresses

# Sockets per load process: under the 20,000 files a process may hold (one per socket), with room
# for the interpreter's own files and the pipe.
SOCKETS_PER_PROCESS = 18_000
# Handshakes in flight over the whole fleet, shared by its processes: enough to keep the servers
# busy (opening is CPU-bound here), under nginx's and the servers' listen backlogs (4,096).
HANDSHAKES_IN_FLIGHT = 512
MIN_HANDSHAKES_PER_PROCESS = 64
PREFIX = "bench:"
# Seconds without a single delivery after which waiting for a broadcast stops: the sockets still
# missing it are not going to get it (a server process that does not relay, a dead consumer).
STALL = 15.0


def broadcast_text(tag: str, stamp: float) -> str:
    """Returns a broadcast payload carrying ``tag`` and ``stamp``, the time.monotonic() of its
    publication."""
    return f"{PREFIX}{tag}:{stamp:.6f}"


@dataclass
class ConnectResult:
    """How a fleet's sockets opened: count, failures by kind (with an example each), duration."""

    asked: int
    opened: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


class Fleet:
    """``processes`` load processes; use as a context manager so they are always stopped."""

    def __init__(self, processes: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes = []
        self.processes = []
        for index in range(processes):
            parent, child = context.Pipe()
            process = context.Process(target=_serve, args=(child,), daemon=True, name=f"bench-fleet-{index}")
            process.start()
            child.close()
            self.pipes.append(parent)
            self.processes.append(process)

    @classmethod
    def for_sockets(cls, sockets: int) -> Fleet:
        return cls(processes_for(sockets))

    @property
    def pids(self) -> list[int]:
        """The load processes' PIDs (for their memory and CPU)."""
        return [process.pid for process in self.processes if process.pid is not None]

    def _ask(self, commands: list[tuple[Any, ...]], timeout: float) -> list[Any]:
        for pipe, command in zip(self.pipes, commands, strict=True):
            pipe.send(command)
        replies = []
        for pipe, process in zip(self.pipes, self.processes, strict=True):
            if not pipe.poll(timeout):
                raise TimeoutError(f"load process {process.pid} did not answer {commands[0][0]!r} in {timeout:g} s")
            replies.append(pipe.recv())
        return replies

    def connect(self, target: WsTarget, sockets: int, timeout: float) -> ConnectResult:
        """Opens ``sockets`` sockets to ``target`` (given up after ``timeout`` s) and keeps them."""
        sources = source_addresses(target, sockets)
        count = len(self.pipes)
        shares = [sockets // count + (i < sockets % count) for i in range(count)]
        in_flight = max(MIN_HANDSHAKES_PER_PROCESS, HANDSHAKES_IN_FLIGHT // count)
        started = time.monotonic()
        replies = self._ask([("connect", target, sources, share, timeout, in_flight) for share in shares],
                            timeout + 30)
        result = ConnectResult(asked=sockets, seconds=time.monotonic() - started)
        failures: Counter[str] = Counter()
        for opened, failed, examples in replies:
            result.opened += opened
            failures.update(failed)
            for kind, example in examples.items():
                result.examples.setdefault(kind, example)
        result.failures = dict(failures)
        return result

    def open_sockets(self) -> int:
        """Returns how many of the fleet's sockets are still open."""
        return sum(self._ask([("count",)] * len(self.pipes), 30))

    def expect(self, tags: list[str], timeout: float, stall: float = STALL) -> dict[str, array]:
        """Waits until every open socket received the broadcasts ``tags``, or ``timeout`` s passed,
        or no delivery came for ``stall`` s; returns each tag's delivery latencies in seconds, one
        per socket reached."""
        latencies: dict[str, array] = {tag: array("d") for tag in tags}
        for reply in self._ask([("expect", tags, timeout, stall)] * len(self.pipes), timeout + 30):
            for tag, values in reply.items():
                latencies[tag].extend(values)
        return latencies

    def close_all(self, timeout: float = 30) -> None:
        """Closes every socket (closing handshake, then TCP) and forgets received broadcasts."""
        self._ask([("close", timeout)] * len(self.pipes), timeout + 30)

    def stop(self) -> None:
        for pipe in self.pipes:
            try:
                pipe.send(("stop",))
            except OSError:
                pass
        for process in self.processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join(5)

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def processes_for(sockets: int) -> int:
    """Returns how many load processes hold ``sockets`` sockets (SOCKETS_PER_PROCESS each at most)."""
    return max(1, math.ceil(sockets / SOCKETS_PER_PROCESS))


# -- in each load process -------------------------------------------------------------------------

def _serve(pipe: Any) -> None:
    asyncio.run(_Share(pipe).serve())


class _Share:
    """One load process: its sockets and the broadcasts they received."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        self.clients: list[WebSocketClient] = []
        self.received: defaultdict[str, array] = defaultdict(lambda: array("d"))
        self.arrived = asyncio.Event()

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        commands: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()

        def read_command() -> None:
            try:
                commands.put_nowait(self.pipe.recv())
            except EOFError:  # the benchmark is gone: so is this process
                loop.remove_reader(self.pipe.fileno())
                commands.put_nowait(("stop",))

        loop.add_reader(self.pipe.fileno(), read_command)
        while True:
            name, *args = await commands.get()
            if name == "stop":
                await self.close(5)
                return
            self.pipe.send(await getattr(self, name)(*args))

    def on_message(self, text: str, arrival: float) -> None:
        if text.startswith(PREFIX):
            tag, _, stamp = text[len(PREFIX):].rpartition(":")
            self.received[tag].append(arrival - float(stamp))
            self.arrived.set()

    async def connect(self, target: WsTarget, sources: list[str | None], sockets: int, timeout: float,
                      in_flight: int) -> tuple[int, dict[str, int], dict[str, str]]:
        failures: Counter[str] = Counter()
        examples: dict[str, str] = {}
        gate = asyncio.Semaphore(in_flight)
        deadline = time.monotonic() + timeout

        async def one(number: int) -> None:
            async with gate:
                left = deadline - time.monotonic()
                try:
                    if left <= 0:
                        raise TimeoutError
                    client = await open_client(target, sources[number % len(sources)], min(left, 30), self.on_message)
                except TimeoutError:
                    kind, detail = "timed out", "no handshake in time"
                except (OSError, HandshakeRejected) as exc:
                    kind, detail = "refused", describe_error(exc)
                else:
                    self.clients.append(client)
                    return
                failures[kind] += 1
                examples.setdefault(kind, detail)

        opened_before = len(self.clients)
        await asyncio.gather(*(one(number) for number in range(sockets)))
        return len(self.clients) - opened_before, dict(failures), examples

    async def count(self) -> int:
        return sum(client.is_open for client in self.clients)

    async def expect(self, tags: list[str], timeout: float, stall: float) -> dict[str, array]:
        deadline = time.monotonic() + timeout
        last_progress = time.monotonic()
        # Counting open sockets is O(sockets): do it again only when deliveries pause.
        wanted = await self.count()
        while not all(len(self.received[tag]) >= wanted for tag in tags):
            now = time.monotonic()
            left = min(deadline, last_progress + stall) - now
            if left <= 0:
                break
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), min(0.5, left))
            except TimeoutError:
                wanted = await self.count()
            else:
                last_progress = time.monotonic()
        return {tag: self.received.pop(tag, array("d")) for tag in tags}

    async def close(self, timeout: float) -> None:
        clients, self.clients = self.clients, []
        await asyncio.gather(*(client.close(timeout) for client in clients))
        self.received.clear()
