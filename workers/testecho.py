"""The C10k echo test of django-c10k-demo: many concurrent clients, each running the /ws/echo/
transcript, spread over worker processes.

Each client connects at a random moment within 2×DELAY seconds, reads ``Hello!``, then three
times waits DELAY seconds, sends ``Spam?`` / ``Eggs!`` / ``Python.`` and reads the numbered reply,
then reads ``Goodbye!``. With the defaults (10,000 clients, DELAY 60) every client is connected
between the 120th and the 180th second. ``run_testecho`` returns an :class:`EchoReport`; its
``ok`` is true only if every client saw the exact transcript.

Ctrl-C stops a run early: the load processes ignore SIGINT (they are started with it ignored, so
a terminal's Ctrl-C reaches only the parent), close their clients when told, and report what
they had; ``run_testecho`` prints the summary so far and raises :class:`Interrupted`, a
KeyboardInterrupt that carries the report.
"""
from __future__ import annotations

import asyncio
import math
import multiprocessing
import queue
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

from .echoload import TRANSCRIPT, load_process
from .wsload import (
    ConnectionDropped,
    HandshakeRejected,
    WsTarget,
    describe_error,
    endpoint,
    open_client,
    parse_ws_url,
    source_addresses,
)

ECHO_PATH = "/ws/echo/"  # the endpoint on a site given as ws://host:port
FAILURE_KINDS = ("refused", "timed out", "wrong reply", "dropped")
# Clients per load process: 10,000 take two processes, well under the ~20,000 files of one.
CLIENTS_PER_PROCESS = 5_000
# Seconds the load processes get to close their clients and report after a Ctrl-C.
STOP_GRACE = 10


class ServerUnavailable(ConnectionError):
    """No WebSocket could be opened at the URL before the test started."""


class Interrupted(KeyboardInterrupt):
    """The run was stopped by Ctrl-C (KeyboardInterrupt) after its clients had started;
    ``report`` holds what was measured until then."""

    def __init__(self, report: EchoReport) -> None:
        super().__init__("interrupted")
        self.report = report


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
    interrupted: bool = False
    unfinished: int = 0  # clients still running their transcript when the run was interrupted

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
        ]
        if self.interrupted:
            lines.append(f"  interrupted after {self.wall_s:.1f} s: {self.unfinished} clients had not finished")
        lines += [
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
    """Returns the target of ``url`` (a site, ``ws://host:port``, gets the echo endpoint's path);
    raises ValueError naming the bad option."""
    if clients < 1:
        raise ValueError(f"--clients must be at least 1 (got {clients})")
    if not (delay >= 0 and math.isfinite(delay)):
        raise ValueError(f"--delay must be a number of seconds >= 0 (got {delay})")
    # As given, so that an error names what was typed.
    target = parse_ws_url(url, example=f"ws://127.0.0.1:8000 or ws://127.0.0.1:8000{ECHO_PATH}")
    return WsTarget(endpoint(url, ECHO_PATH), target.ip, target.port)


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
                                "(start it with `make run`, or give its address with --url)") from None
    if hello != TRANSCRIPT[0]:
        raise ServerUnavailable(f"{target.url} greeted with {hello[:80]!r}, not {TRANSCRIPT[0]!r}: "
                                "is it the echo handler?")


def run_testecho(url: str, clients: int = 10_000, delay: float = 60, *,
                 processes: int | None = None, timeout: float = 10, out: TextIO = sys.stdout,
                 progress: bool | None = None, seed: int | None = None) -> EchoReport:
    """Runs the test and returns its report, printing progress and the summary on ``out``.

    Raises ValueError for bad options and ServerUnavailable if no socket opens at all. Every
    client gives up on a reply after ``timeout`` s, so a run ends within about 5×DELAY + 4×timeout.
    ``progress`` (default: ``out`` is a terminal) draws a bar instead of the count lines. A
    KeyboardInterrupt during the run (Ctrl-C) closes the clients, prints the summary so far and
    raises Interrupted with the report (a second one stops waiting for the load processes).
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
    report = EchoReport(url=target.url, clients=clients, delay=delay, processes=processes)
    display = Progress(clients, delay, out, bar=progress)
    sources = source_addresses(target, clients)
    shares = [clients // processes + (i < clients % processes) for i in range(processes)]
    budget = 5 * delay + 4 * timeout + 10
    context = multiprocessing.get_context("spawn")
    inbox, stop = context.Queue(), context.Event()
    workers = [context.Process(target=load_process, daemon=True, name=f"testecho-{i}",
                               args=(i, target, sources, share, delay, timeout, budget, seed, inbox, stop))
               for i, share in enumerate(shares)]
    started = time.monotonic()
    with _sigint_ignored():
        for worker in workers:
            worker.start()
    results: dict[int, dict[str, Any]] = {}
    try:
        report.interrupted = _collect(inbox, stop, workers, shares, results, display, started + budget + 20)
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
    if report.interrupted:
        raise Interrupted(report)
    return report


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignores SIGINT in this process meanwhile (in the main thread; signals go nowhere else).
    Processes started meanwhile keep it ignored: Python installs its own handler only where
    SIGINT has its default action."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _collect(inbox: Any, stop: Any, workers: list[Any], shares: list[int], results: dict[int, dict[str, Any]],
             display: Progress, deadline: float) -> bool:
    """Gathers the load processes' counts and results until every one has reported. On a
    KeyboardInterrupt it tells them to stop and waits STOP_GRACE seconds more for their
    results (a second one stops waiting). Returns whether the run was interrupted."""
    counts = [0] * len(workers)
    interrupted = False
    while len(results) < len(workers):
        try:
            try:
                kind, index, payload = inbox.get(timeout=0.2)
            except queue.Empty:
                _check_workers(workers, results, shares, deadline, interrupted)
                continue
            if kind == "count":
                counts[index] = payload
                display.update(sum(counts))
            else:
                results[index] = payload
        except KeyboardInterrupt:
            if interrupted:
                break
            interrupted = True
            stop.set()
            deadline = time.monotonic() + STOP_GRACE
            display.note("Interrupted: closing the clients (Ctrl-C again to stop waiting)")
    if interrupted:
        for index, share in enumerate(shares):
            results.setdefault(index, {"completed": 0, "failures": {}, "rtts": [], "examples": {},
                                       "unfinished": share})
    return interrupted


def _check_workers(workers: list[Any], results: dict[int, dict[str, Any]], shares: list[int],
                   deadline: float, interrupted: bool) -> None:
    """Accounts for load processes that died or overran their time: their clients fail, or
    count as unfinished after an interruption."""
    for index, worker in enumerate(workers):
        if index in results:
            continue
        overdue = time.monotonic() > deadline
        if worker.exitcode is None and not overdue:
            continue
        if worker.exitcode is None:
            worker.terminate()
        if interrupted:
            results[index] = {"completed": 0, "failures": {}, "rtts": [], "examples": {}, "unfinished": shares[index]}
            continue
        why = "overran the time budget" if overdue else f"exited with code {worker.exitcode}"
        results[index] = {"completed": 0, "failures": {"dropped": shares[index]}, "rtts": [],
                          "examples": {"dropped": f"load process {index} {why}"}}


def _merge(report: EchoReport, results: Any, peak: int) -> None:
    rtts: list[float] = []
    for result in results:
        report.completed += result["completed"]
        report.unfinished += result.get("unfinished", 0)
        for kind, count in result["failures"].items():
            report.failures[kind] = report.failures.get(kind, 0) + count
        for kind, example in result["examples"].items():
            report.failure_examples.setdefault(kind, example)
        rtts.extend(result["rtts"])
    report.peak_connections = peak
    report.replies = len(rtts)
    report.rtt_ms = latency_summary(rtts)


class Progress:
    """Prints ``N connections open`` (rising) / ``N connections still open`` (falling) every
    CLIENTS*3//DELAY connections, ``All N clients are connected`` at the peak and ``All
    connections closed`` at the end, or moves a progress bar instead of the count lines."""

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
                self._line(f"{_connections(mark)} open")
        else:
            for mark in range((previous - 1) // self.step * self.step, count - 1, -self.step):
                self._line(f"{_connections(mark)} still open" if mark else "All connections closed")
        if count == self.clients and not self.announced:
            self.announced = True
            self._line(f"All {self.clients} clients are connected")

    def note(self, text: str) -> None:
        """Prints a line of its own, above the bar if there is one."""
        self._line(text)

    def _line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.out)
        else:
            self.out.write(text + "\n")
            self.out.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _connections(count: int) -> str:
    return f"{count} connection" if count == 1 else f"{count} connections"
