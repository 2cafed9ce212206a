"""The clients of one ``testecho`` load process (see :mod:`workers.testecho`, which starts these
processes and merges what they report): each client connects at a random moment within
2×DELAY, runs the echo transcript and tallies its round trips or how it failed.
"""
from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from typing import Any

from .wsload import ConnectionDropped, HandshakeRejected, WsTarget, describe_error, open_client

MESSAGES = ("Spam?", "Eggs!", "Python.")
TRANSCRIPT = ("Hello!", *(f"{i}. {m}" for i, m in enumerate(MESSAGES, 1)), "Goodbye!")
# How often a load process reports its connection count and looks for a stop.
TICK = 0.05


def load_process(index: int, target: WsTarget, sources: list[str | None], clients: int, delay: float,
                 timeout: float, budget: float, seed: int | None, inbox: Any, stop: Any) -> None:
    """Runs ``clients`` echo clients and sends ("count", index, n) ticks, then ("result", ...);
    closes them early once ``stop`` is set."""
    share = _Share(index, target, sources, clients, delay, timeout,
                   random.Random(None if seed is None else seed + index), inbox)
    inbox.put(("result", index, asyncio.run(share.run(budget, stop))))


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

    async def run(self, budget: float, stop: Any) -> dict[str, Any]:
        ticker = asyncio.create_task(self._tick(stop))
        tasks = [asyncio.create_task(self._client(i)) for i in range(self.clients)]
        every = asyncio.ensure_future(asyncio.wait(tasks))
        await asyncio.wait({every, ticker}, timeout=budget, return_when=asyncio.FIRST_COMPLETED)
        stopped = ticker.done()
        pending = [task for task in tasks if not task.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(every, *pending, return_exceptions=True)
        if not stopped:
            for _ in pending:
                self._fail("timed out", f"transcript unfinished after the {budget:g} s budget")
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                self._fail("dropped", repr(task.exception()))
        ticker.cancel()
        self.inbox.put(("count", self.index, self.connected))
        return {"completed": self.completed, "failures": dict(self.failures), "examples": self.examples,
                "rtts": self.rtts, "unfinished": len(pending) if stopped else 0}

    async def _tick(self, stop: Any) -> None:
        """Reports the connection count when it changes; returns once ``stop`` is set."""
        reported = -1
        while not stop.is_set():
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
