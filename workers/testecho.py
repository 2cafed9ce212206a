"""The C10k echo test of django-c10k-demo: many concurrent clients, each running the /ws/echo/
transcript, spread over worker processes.

Each client connects at a random moment within 2×DELAY seconds, reads ``Hello!``, then three
times waits DELAY seconds, sends ``Spam?`` / ``Eggs!`` / ``Python.`` and reads the numbered reply,
then reads ``Goodbye!``. With the defaults (10,000 clients, DELAY 60) every client is connected
between the 120th and the 180th second. ``run_testecho`` returns an :class:`EchoReport`; its
``ok`` is true only if every client saw the exact transcript.
"""
from __future__ import annotations

import asyncio
import math
import multiprocessing
import queue
import random
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

from .wsload import (
    ConnectionDropped,
    HandshakeRejected,
    WsTarget,
    describe_error,
    open_client,
    parse_ws_url,
    source_addresses,
)

DEFAULT_URL = "ws://127.0.0.1:8000/ws/echo/"
MESSAGES = ("Spam?", "Eggs!", "Python.")
TRANSCRIPT = ("Hello!", *(f"{i}. {m}" for i, m in enumerate(MESSAGES, 1)), "Goodbye!")
FAILURE_KINDS = ("refused", "timed out", "wrong reply", "dropped")
# Clients per load process: 10,000 take two processes, well under the ~20,000 files of one.
CLIENTS_PER_PROCESS = 5_000
# How often a load process reports its connection count.
TICK = 0.05


class ServerUnavailable(ConnectionError):
    """No WebSocket could be opened at the URL before the test started."""


@dataclass
class EchoReport:
    """What a run measured. ``rtt_ms`` holds p50/p90/p99/max of the echo round trips (send to
    numbered reply), ``failures`` the number of clients per failure kind."""

    url: str
    clients: int
    delay: float
    processes: int
    completed: int = 0
    peak_connections: int = 0
    failures: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAILURE_KINDS, 0))
    failure_examples: dict[str, str] = field(default_factory=dict)
    replies: int = 0
    rtt_ms: dict[str, float | None] = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.completed == self.clients

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}

    def summary(self) -> list[str]:
        """Returns the summary as printable lines."""
        failures = ", ".join(f"{kind} {self.failures.get(kind, 0)}" for kind in FAILURE_KINDS)
        rtt = self.rtt_ms
        lines = [
            f"Summary: {self.completed} of {self.clients} clients saw the exact transcript "
            f"({self.url}, delay {self.delay:g} s, {self.processes} load process(es))",
            f"  peak concurrent connections: {self.peak_connections}",
            f"  failures: {failures}",
        ]
        lines += [f"    {kind}, e.g.: {example}" for kind, example in self.failure_examples.items()]
        if self.replies:
            lines.append(f"  echo round trip ({self.replies} replies): p50 {rtt['p50']:.2f} ms, "
                         f"p90 {rtt['p90']:.2f} ms, p99 {rtt['p99']:.2f} ms, max {rtt['max']:.2f} ms")
        else:
            lines.append("  echo round trip: no reply received")
        lines.append(f"  wall time: {self.wall_s:.1f} s")
        return lines


def latency_summary(seconds: list[float]) -> dict[str, float | None]:
    """Returns p50/p90/p99/max of ``seconds`` in milliseconds (nearest rank), None when empty."""
    ordered = sorted(seconds)
    if not ordered:
        return dict.fromkeys(("p50", "p90", "p99", "max"))

    def rank(pct: float) -> float:
        return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)] * 1000

    return {"p50": rank(50), "p90": rank(90), "p99": rank(99), "max": ordered[-1] * 1000}


def check_options(url: str, clients: int, delay: float) -> WsTarget:
    """Returns the target of ``url``; raises ValueError naming the bad option."""
    if clients < 1:
        raise ValueError(f"--clients must be at least 1 (got {clients})")
    if not (delay >= 0 and math.isfinite(delay)):
        raise ValueError(f"--delay must be a number of seconds >= 0 (got {delay})")
    return parse_ws_url(url)


def probe(target: WsTarget, timeout: float = 10) -> None:
    """Opens one WebSocket and reads the greeting; raises ServerUnavailable saying why no echo
    server answers at ``target``."""
    async def greeting() -> str:
        client = await open_client(target, timeout=timeout)
        try:
            return await client.recv(timeout)
        finally:
            await client.close(timeout=2)

    try:
        hello = asyncio.run(greeting())
    except TimeoutError:
        raise ServerUnavailable(f"no greeting from {target.url} within {timeout:g} s") from None
    except HandshakeRejected as exc:
        raise ServerUnavailable(f"{target.url} refused the WebSocket ({exc})") from None
    except ConnectionDropped as exc:
        raise ServerUnavailable(f"{target.url} closed the socket before greeting ({exc})") from None
    except OSError as exc:
        raise ServerUnavailable(f"cannot connect to {target.url}: {describe_error(exc)}. Is the site running? "
                                f"(`make run` serves {DEFAULT_URL})") from None
    if hello != TRANSCRIPT[0]:
        raise ServerUnavailable(f"{target.url} greeted with {hello[:80]!r}, not {TRANSCRIPT[0]!r}: "
                                "is it the echo handler?")


def run_testecho(url: str = DEFAULT_URL, clients: int = 10_000, delay: float = 60, *,
                 processes: int | None = None, timeout: float = 10, out: TextIO = sys.stdout,
                 progress: bool | None = None, seed: int | None = None) -> EchoReport:
    """Runs the test and returns its report, printing progress and the summary on ``out``.

    Raises ValueError for bad options and ServerUnavailable if no socket opens at all. Every
    client gives up on a reply after ``timeout`` s, so a run ends within about 5×DELAY + 4×timeout.
    ``progress`` (default: ``out`` is a terminal) draws a bar instead of the count lines.
    """
    target = check_options(url, clients, delay)
    if processes is None:
        processes = math.ceil(clients / CLIENTS_PER_PROCESS)
    if processes < 1:
        raise ValueError(f"--processes must be at least 1 (got {processes})")
    processes = min(processes, clients)
    probe(target, timeout)
    if progress is None:
        progress = out.isatty()
    report = EchoReport(url=url, clients=clients, delay=delay, processes=processes)
    display = Progress(clients, delay, out, bar=progress)
    sources = source_addresses(target, clients)
    shares = [clients // processes + (i < clients % processes) for i in range(processes)]
    budget = 5 * delay + 4 * timeout + 10
    context = multiprocessing.get_context("spawn")
    inbox = context.Queue()
    workers = [context.Process(target=_load_process, daemon=True, name=f"testecho-{i}",
                               args=(i, target, sources, share, delay, timeout, budget, seed, inbox))
               for i, share in enumerate(shares)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    counts = [0] * processes
    results: dict[int, dict[str, Any]] = {}
    try:
        while len(results) < processes:
            try:
                kind, index, payload = inbox.get(timeout=0.2)
            except queue.Empty:
                _check_workers(workers, results, shares, started + budget + 20)
                continue
            if kind == "count":
                counts[index] = payload
                display.update(sum(counts))
            else:
                results[index] = payload
    finally:
        display.close()
        for worker in workers:
            worker.join(5)
            if worker.is_alive():
                worker.terminate()
    _merge(report, results.values(), display.peak)
    report.wall_s = time.monotonic() - started
    for line in report.summary():
        out.write(line + "\n")
    out.flush()
    return report


def _check_workers(workers: list[Any], results: dict[int, dict[str, Any]], shares: list[int],
                   deadline: float) -> None:
    """Accounts for load processes that died or overran the time budget: their clients fail."""
    for index, worker in enumerate(workers):
        if index in results:
            continue
        overdue = time.monotonic() > deadline
        if worker.exitcode is None and not overdue:
            continue
        if worker.exitcode is None:
            worker.terminate()
        why = "overran the time budget" if overdue else f"exited with code {worker.exitcode}"
        results[index] = {"completed": 0, "failures": {"dropped": shares[index]}, "rtts": [],
                          "examples": {"dropped": f"load process {index} {why}"}}


def _merge(report: EchoReport, results: Any, peak: int) -> None:
    rtts: list[float] = []
    for result in results:
        report.completed += result["completed"]
        for kind, count in result["failures"].items():
            report.failures[kind] = report.failures.get(kind, 0) + count
        for kind, example in result["examples"].items():
            report.failure_examples.setdefault(kind, example)
        rtts.extend(result["rtts"])
    report.peak_connections = peak
    report.replies = len(rtts)
    report.rtt_ms = latency_summary(rtts)


class Progress:
    """Prints ``> N connections`` / ``< N connections`` every CLIENTS*3//DELAY connections and
    ``N clients are connected!`` at the peak, or moves a progress bar instead of the count lines."""

    def __init__(self, clients: int, delay: float, out: TextIO, bar: bool) -> None:
        self.clients = clients
        self.step = max(1, int(clients * 3 // delay) if delay > 0 else clients)
        self.out = out
        self.count = self.peak = 0
        self.announced = False
        self.bar = None
        if bar:
            from tqdm import tqdm

            # The count rises and falls: a rate or an ETA would mean nothing.
            self.bar = tqdm(total=clients, desc="connections", file=out, dynamic_ncols=True,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}]")

    def update(self, count: int) -> None:
        previous, self.count = self.count, count
        self.peak = max(self.peak, count)
        if self.bar is not None:
            self.bar.n = count
            self.bar.refresh()
        elif count > previous:
            for mark in range(previous // self.step * self.step + self.step, count + 1, self.step):
                self._line(f"> {mark} connections")
        else:
            for mark in range((previous - 1) // self.step * self.step, count - 1, -self.step):
                self._line(f"< {mark} connections")
        if count == self.clients and not self.announced:
            self.announced = True
            self._line(f"{self.clients} clients are connected!")

    def _line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.out)
        else:
            self.out.write(text + "\n")
            self.out.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# -- in each load process -------------------------------------------------------------------------

def _load_process(index: int, target: WsTarget, sources: list[str | None], clients: int, delay: float,
                  timeout: float, budget: float, seed: int | None, inbox: Any) -> None:
    """Runs ``clients`` echo clients and sends ("count", index, n) ticks, then ("result", ...)."""
    share = _Share(index, target, sources, clients, delay, timeout,
                   random.Random(None if seed is None else seed + index), inbox)
    inbox.put(("result", index, asyncio.run(share.run(budget))))


class _Share:
    """One load process's clients and their tallies."""

    def __init__(self, index: int, target: WsTarget, sources: list[str | None], clients: int,
                 delay: float, timeout: float, rng: random.Random, inbox: Any) -> None:
        self.index, self.target, self.sources = index, target, sources
        self.clients, self.delay, self.timeout = clients, delay, timeout
        self.rng, self.inbox = rng, inbox
        self.connected = self.completed = 0
        self.failures: Counter[str] = Counter()
        self.examples: dict[str, str] = {}
        self.rtts: list[float] = []

    async def run(self, budget: float) -> dict[str, Any]:
        ticker = asyncio.create_task(self._tick())
        tasks = [asyncio.create_task(self._client(i)) for i in range(self.clients)]
        done, pending = await asyncio.wait(tasks, timeout=budget)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for _ in pending:
            self._fail("timed out", f"transcript unfinished after the {budget:g} s budget")
        for task in done:
            if task.exception() is not None:
                self._fail("dropped", repr(task.exception()))
        ticker.cancel()
        self.inbox.put(("count", self.index, self.connected))
        return {"completed": self.completed, "failures": dict(self.failures), "examples": self.examples,
                "rtts": self.rtts}

    async def _tick(self) -> None:
        reported = -1
        while True:
            if self.connected != reported:
                reported = self.connected
                self.inbox.put(("count", self.index, reported))
            await asyncio.sleep(TICK)

    def _fail(self, kind: str, detail: str) -> None:
        self.failures[kind] += 1
        self.examples.setdefault(kind, detail)

    async def _client(self, number: int) -> None:
        await asyncio.sleep(2 * self.delay * self.rng.random())
        source = self.sources[number % len(self.sources)]
        try:
            client = await open_client(self.target, source, self.timeout)
        except TimeoutError:
            return self._fail("timed out", f"no handshake within {self.timeout:g} s")
        except (OSError, HandshakeRejected) as exc:
            return self._fail("refused", describe_error(exc))
        self.connected += 1
        try:
            kind, detail = await self._transcript(client)
        finally:
            await client.close()
            self.connected -= 1
        if kind is None:
            self.completed += 1
        else:
            self._fail(kind, detail)

    async def _transcript(self, client: Any) -> tuple[str | None, str]:
        """Runs the transcript; returns (None, "") or the failure kind and what happened."""
        want = TRANSCRIPT[0]
        try:
            for step, message in enumerate((None, *MESSAGES, None)):
                want = TRANSCRIPT[step]
                if message is not None:
                    await asyncio.sleep(self.delay)
                    sent = time.monotonic()
                    client.send(message)
                reply = await client.recv(self.timeout)
                if reply != want:
                    return "wrong reply", f"expected {want!r}, got {reply[:80]!r}"
                if message is not None:
                    self.rtts.append(time.monotonic() - sent)
        except TimeoutError:
            return "timed out", f"no {want!r} within {self.timeout:g} s"
        except ConnectionDropped as exc:
            return "dropped", f"{exc} while waiting for {want!r}"
        return None, ""
